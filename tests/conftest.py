"""Shared test fixtures and helpers: the London set location and CI's no-skip rule,
dataset directories written from tables, the tiny pair dataset, random-weight
tiny models, checkpoint comparison, and running the binaries in subprocesses.

Test modules import the helpers from here (`from conftest import ...`), never
from one another.
"""

import os
import pathlib
import shutil
import subprocess
import sys

# Before TensorFlow is imported (below, and by the library): quiet its C++ log.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import keras
import matplotlib.cbook
import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from PIL import Image

from fvae_tf.data import color_transfer, records
from fvae_tf.face_template import canonical_template
from fvae_tf.model.config import get_config
from fvae_tf.model.fvae import FVAE, ConfidenceModel
from fvae_tf.warp import sampler

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY_SIZE = 64  # side of the tiny dataset's images
TINY_EXPRESSIONS = (0, 1, 2)  # neutral, smile, surprise: one image of each per identity


def _london_dir() -> pathlib.Path:
    default = REPO_ROOT.parent / "shared" / "data" / "london_set"
    return pathlib.Path(os.environ.get("FVAE_LONDON_DIR", default))


@pytest.fixture(scope="session")
def london_dir() -> pathlib.Path:
    """The London set; skipped when absent, except under CI=true where it fails."""
    path = _london_dir()
    if not (path / "neutral").is_dir() or not (path / "smiling").is_dir():
        reason = f"London set not found at {path} (set FVAE_LONDON_DIR)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        print(reason)
        pytest.skip(reason)
    return path


def _tiny_image(rng: np.random.Generator, size: int = TINY_SIZE) -> np.ndarray:
    """A smooth random uint8 [size, size, 3] picture."""
    coarse = rng.uniform(0, 255, (8, 8, 3)).astype(np.float32)
    return np.clip(cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC),
                   0, 255).astype(np.uint8)


def write_dataset(root: pathlib.Path, tables: dict, *, size: int, hr_size: int,
                  source: str = "synthetic", shard_size: int = 4) -> records.Manifest:
    """A dataset directory holding the given tables, as `builder.build_dataset` lays it out.

    Args:
      tables: {split: (list of `records.ImageRecord`, list of `records.PairRecord`)}.
      source: the manifest's source; "synthetic" marks the pairs as carrying ground truth.

    Returns:
      The manifest written.
    """
    root.mkdir(parents=True, exist_ok=True)
    splits = {}
    for split, (images, pairs) in tables.items():
        splits[split] = records.SplitInfo(
            identities=sorted({image.identity for image in images}), num_images=len(images),
            num_pairs=len(pairs), images_per_expression={}, pairs_per_expression={},
            image_shards=records.write_shards(root, f"{split}-images",
                                              map(records.serialize_image, images), shard_size),
            shards=records.write_shards(root, f"{split}-pairs",
                                        map(records.serialize_pair, pairs), shard_size))
    manifest = records.Manifest(
        source=source, size=size, hr_size=hr_size, has_ground_truth=source == "synthetic",
        alignment="test", flags={}, splits=splits, failures=[], identities_without_pairs=[],
        has_frame=all(image.frame is not None for images, _ in tables.values() for image in images))
    records.write_manifest(root, manifest)
    return manifest


def write_tiny_dataset(root: pathlib.Path, train_ids: int = 4, val_ids: int = 2,
                       size: int = TINY_SIZE) -> dict:
    """A dataset directory of size x size crops: one image per identity and TINY_EXPRESSIONS.

    Every ordered pair of an identity's images is a pair; its ground-truth field
    is the identity grid shifted by 0.05 * (target - source expression) in x and y,
    and the landmarks (the canonical face moved by -0.05 * expression) agree with it.

    Returns:
      {split: [(source uint8 colour-transferred to the target, target uint8,
      target expression, target id)]} in storage order, and "images":
      {image id: (uint8 image, expression)} of the training split.
    """
    rng = np.random.default_rng(0)
    identity = sampler.identity_grid(size, size).numpy()
    out, tables = {"images": {}}, {}
    for split, names in (("train", [f"t{i}" for i in range(train_ids)]),
                         ("val", [f"v{i}" for i in range(val_ids)])):
        images, pairs, described = [], [], []
        for name in names:
            first = len(images)
            for e in TINY_EXPRESSIONS:
                image = _tiny_image(rng, size)
                images.append(records.ImageRecord(
                    crop=image, crop_hr=image, landmarks=canonical_template() - 0.05 * e,
                    expression=e,
                    identity=name, image_id=f"{name}/{e}"))
                if split == "train":
                    out["images"][f"{name}/{e}"] = (image, e)
            for s in TINY_EXPRESSIONS:
                for t in TINY_EXPRESSIONS:
                    if s != t:
                        pairs.append(records.PairRecord(
                            source=first + s, target=first + t,
                            gt_coords=identity + 0.05 * (t - s),
                            gt_visibility=np.ones((size, size), np.float32)))
                        source, target = images[first + s].crop, images[first + t].crop
                        described.append((color_transfer.transfer_color(source, target), target,
                                          t, f"{name}/{t}"))
        out[split] = described
        tables[split] = (images, pairs)
    write_dataset(root, tables, size=size, hr_size=size, shard_size=16)
    return out


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> tuple[pathlib.Path, dict]:
    """(directory, `write_tiny_dataset`'s description) of one tiny dataset per session."""
    root = tmp_path_factory.mktemp("tiny_data")
    return root, write_tiny_dataset(root)


def random_models(seed: int = 0, gain: float = 1.0) -> tuple[FVAE, ConfidenceModel]:
    """A tiny FVAE and confidence model whose weights are large enough to matter.

    The 0.01 initialisation makes every latent decode to nearly the same
    field; weights redrawn with stddev gain / sqrt(fan-in) make the tests able
    to tell latents apart.
    """
    keras.utils.set_random_seed(seed)
    fvae = FVAE(get_config("tiny"))
    fvae.build_for_inference()
    mask_model = ConfidenceModel(fvae)
    mask_model.build_for_inference()
    rng = np.random.default_rng(seed)
    for variable in fvae.weights + mask_model.mask_net.weights:
        if "moving_variance" in variable.path:
            continue
        fan_in = int(np.prod(variable.shape[:-1])) if len(variable.shape) > 1 else 1
        stddev = gain / np.sqrt(fan_in)
        variable.assign(rng.normal(0.0, stddev, variable.shape).astype(np.float32))
    return fvae, mask_model


SHIFT = 3  # pixels: in `shift_batch` the target is the source moved right by SHIFT


def shift_batch(n: int = 8, seed: int = 0) -> dict:
    """A batch of pairs whose target is the source moved right by SHIFT pixels.

    Smooth random textures, float32 [n, 64, 64, 3] in [-1, 1]: the motion an
    FVAE must learn is a known constant flow of -2 * SHIFT / 64 in x.
    """
    rng = np.random.default_rng(seed)
    noise = rng.uniform(-1, 1, (n, 64 + 2 * SHIFT, 64 + 2 * SHIFT, 3)).astype(np.float32)
    smooth = np.stack([cv2.GaussianBlur(img, (0, 0), 2.0) for img in noise])
    smooth /= np.abs(smooth).max()
    source = smooth[:, SHIFT:-SHIFT, SHIFT:-SHIFT]
    target = smooth[:, SHIFT:-SHIFT, :-2 * SHIFT]
    return {"source": source, "target": target}


def random_faces(n: int, seed: int = 0, size: int = 64) -> tf.Tensor:
    """float32 [n, size, size, 3] smooth random pictures in [-1, 1]."""
    coarse = np.random.default_rng(seed).uniform(-1, 1, (n, 8, 8, 3)).astype(np.float32)
    return tf.image.resize(coarse, (size, size), method="bicubic")


def checkpoint_values(path: str) -> dict[str, np.ndarray]:
    """Every saved value of a checkpoint but its bookkeeping, by checkpoint key."""
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if not name.startswith(("save_counter", "_CHECKPOINTABLE"))}


def assert_same_checkpoints(a: str, b: str, atol: float = 1e-6) -> None:
    """Two checkpoints hold the same keys with values equal to within `atol`."""
    values_a, values_b = checkpoint_values(a), checkpoint_values(b)
    assert values_a.keys() == values_b.keys()
    for name in values_a:
        np.testing.assert_allclose(values_a[name], values_b[name], atol=atol, rtol=0, err_msg=name)


def experiment_command(binary: str, *flags) -> list[str]:
    """The command line of `python -m experiments.<binary> <flags>`."""
    return [sys.executable, "-m", f"experiments.{binary}", *map(str, flags)]


def run_experiment(binary: str, *flags) -> subprocess.CompletedProcess:
    """Runs `experiments.<binary>` from the repository root; captures its output."""
    return subprocess.run(experiment_command(binary, *flags), cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)


def experiment_ok(binary: str, *flags) -> str:
    """Runs `experiments.<binary>`, asserts it succeeded, returns its stdout."""
    result = run_experiment(binary, *flags)
    assert result.returncode == 0, result.stderr
    return result.stdout


def fails_cleanly(result: subprocess.CompletedProcess, *messages: str) -> None:
    """A binary failed with every one of `messages` on stderr and no traceback."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    for message in messages:
        assert message in result.stderr, result.stderr


@pytest.fixture(scope="session")
def run_dir(tiny_dataset, tmp_path_factory) -> pathlib.Path:
    """A tiny FVAE run of the binaries, with latent statistics and a mask stage.

    The learning rate is high enough that three steps move the flow visibly
    away from the identity (the pictures are nonsense; what is tested is the
    plumbing).
    """
    root = tmp_path_factory.mktemp("edit_run")
    common = [f"--workdir={root / 'run'}", f"--dataset_dir={tiny_dataset[0]}", "--preset=tiny"]
    experiment_ok("train", *common, "--num_steps=3", "--eval_every=3", "--learning_rate=0.05")
    experiment_ok("train_mask", *common, "--num_steps=1", "--eval_every=1")
    return root / "run"


@pytest.fixture(scope="session")
def package_photos(tmp_path_factory) -> list[pathlib.Path]:
    """scikit-image's astronaut (PNG) and matplotlib's Grace Hopper (JPEG) as files."""
    root = tmp_path_factory.mktemp("photos")
    astronaut = root / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(astronaut)
    hopper = root / "grace_hopper.jpg"
    shutil.copy(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), hopper)
    return [astronaut, hopper]
