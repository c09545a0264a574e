"""The import graph follows the architecture: every import points down the layers.

Layers of `fvae_tf`, bottom to top (a module may import its own layer and
those below):

  0 warp       the sampler, coordinates, flow upsampling: numpy and TensorFlow only
  1 leaves     atomic_io, progress, metrics, viz, expressions, face_template, errors
  2 model, synthetic
  3 data       everything before tf.data
  4 train
  5 edit
  6 eval       uses everything below

Library modules never import `absl.flags`, the binaries (`experiments`,
`data_prep`, `benchmarks`) or the tests; a binary (a module with a
`__main__` block) never imports another binary. Imports are read from the
source with `ast`, including those inside functions.
"""

import ast
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
LAYERS = {
    "warp": 0,
    "atomic_io": 1, "progress": 1, "metrics": 1, "viz": 1, "expressions": 1,
    "face_template": 1, "errors": 1,
    "model": 2, "synthetic": 2,
    "data": 3,
    "train": 4,
    "edit": 5,
    "eval": 6,
}
# What warp may import besides the standard library and itself (Keras is TensorFlow's).
WARP_THIRD_PARTY = {"numpy", "tensorflow", "keras"}
APPLICATION_PACKAGES = ("experiments", "data_prep", "benchmarks", "tests")
BINARY_FOLDERS = ("experiments", "data_prep", "benchmarks")


def imported_modules(source: str, package: str) -> list[str]:
    """Dotted names of the modules `source` imports (relative imports resolved).

    `from fvae_tf import viz` yields "fvae_tf.viz"; `from a.b import c` yields "a.b".
    """
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            if base in ("fvae_tf", "absl") or base in APPLICATION_PACKAGES:
                names += [f"{base}.{alias.name}" for alias in node.names]
            else:
                names.append(base)
    return names


def layer(module: str) -> int | None:
    """The layer of an `fvae_tf` module (None for the package itself and other modules)."""
    parts = module.split(".")
    if parts[0] != "fvae_tf" or len(parts) < 2:
        return None
    return LAYERS.get(parts[1])


def library_violations(module: str, source: str, package: str) -> list[str]:
    """What is wrong with the imports of library module `module`."""
    found = []
    own = layer(module)
    for name in imported_modules(source, package):
        top = name.split(".")[0]
        if name.startswith("absl.flags"):
            found.append(f"{module} imports {name}: the library never reads flags")
        elif top in APPLICATION_PACKAGES:
            found.append(f"{module} imports {name}: the library never imports binaries or tests")
        elif own is not None and layer(name) is not None and layer(name) > own:
            found.append(f"{module} (layer {own}) imports {name} (layer {layer(name)}): "
                         "an import up the layers")
        elif (own == 0 and top != "fvae_tf" and top not in WARP_THIRD_PARTY
              and top not in sys.stdlib_module_names):
            found.append(f"{module} imports {name}: warp uses only numpy and TensorFlow")
    return found


def is_binary(source: str) -> bool:
    """Whether a module runs as a program (has an `if __name__ == "__main__":` block)."""
    return any(isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
               for node in ast.parse(source).body)


def binary_violations(module: str, source: str, binaries: set[str]) -> list[str]:
    """A binary that imports another binary."""
    return [f"{module} imports the binary {name}" for name in imported_modules(source, "")
            if name in binaries and name != module]


def _modules(folder: str) -> dict[str, tuple[str, str]]:
    """{dotted name: (source, package)} of the Python files under REPO/folder."""
    out = {}
    for path in sorted((REPO / folder).rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        package = ".".join(parts[:-1])
        if parts[-1] == "__init__":
            parts = parts[:-1]
            package = ".".join(parts)
        out[".".join(parts)] = (path.read_text(), package)
    return out


def test_every_library_module_is_in_a_layer():
    for module in _modules("fvae_tf"):
        assert module == "fvae_tf" or layer(module) is not None, (
            f"{module} is in no layer: add it to LAYERS (and the README's layout table)")


def test_library_imports_point_down_the_layers():
    found = [problem for module, (source, package) in _modules("fvae_tf").items()
             for problem in library_violations(module, source, package)]
    assert not found, "\n".join(found)


def test_binaries_do_not_import_binaries():
    modules = {}
    for folder in BINARY_FOLDERS:
        modules.update(_modules(folder))
    binaries = {name for name, (source, _) in modules.items() if is_binary(source)}
    assert {"experiments.train", "experiments.edit", "data_prep.build_dataset"} <= binaries
    found = [problem for module, (source, _) in modules.items() if module in binaries
             for problem in binary_violations(module, source, binaries)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("module, source, expected", [
    ("fvae_tf.model.fvae", "from fvae_tf.train import loop\n", "an import up the layers"),
    ("fvae_tf.data.builder", "def f():\n    from fvae_tf.edit import photo\n",
     "an import up the layers"),
    ("fvae_tf.metrics", "from fvae_tf import viz, eval\n", "(layer 6)"),
    ("fvae_tf.warp.sampler", "import cv2\n", "warp uses only numpy and TensorFlow"),
    ("fvae_tf.warp.coordinates", "from fvae_tf import metrics\n", "an import up the layers"),
    ("fvae_tf.train.loop", "from absl import flags\n", "the library never reads flags"),
    ("fvae_tf.edit.photo", "import absl.flags\n", "the library never reads flags"),
    ("fvae_tf.eval.report", "from experiments import train\n", "never imports binaries"),
    ("fvae_tf.data.builder", "import data_prep.align_faces\n", "never imports binaries"),
    ("fvae_tf.data.builder", "from ..train import loop\n", "an import up the layers"),
])
def test_a_planted_upward_import_is_caught(module, source, expected):
    package = module.rsplit(".", 1)[0]
    found = library_violations(module, source, package)
    assert len(found) == 1 and expected in found[0], found


def test_downward_imports_pass():
    source = ("import numpy as np\nfrom fvae_tf import metrics, viz\n"
              "from fvae_tf.warp import sampler\nfrom . import loop\n")
    assert library_violations("fvae_tf.train.step", source, "fvae_tf.train") == []
    assert library_violations("fvae_tf.warp.sampler", "import enum\nimport keras\n"
                              "from fvae_tf.warp import coordinates\n", "fvae_tf.warp") == []


def test_a_binary_importing_a_binary_is_caught():
    binaries = {"experiments.train", "experiments.edit"}
    assert binary_violations("experiments.edit", "from experiments import train\n", binaries)
    assert binary_violations("experiments.edit", "import experiments.train\n", binaries)
    assert not binary_violations("experiments.edit", "from experiments import photo_flags\n",
                                 binaries)
    assert is_binary('def main():\n    pass\n\n\nif __name__ == "__main__":\n    main()\n')
    assert not is_binary("X = 1\n")
