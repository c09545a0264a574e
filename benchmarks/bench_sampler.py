"""Our bilinear sampler against tensorflow-addons, cv2.remap and keras map_coordinates.

    python -m benchmarks.bench_sampler [--batch 64 --size 64 --repeats 10 --rounds 5]

All methods sample the same saved inputs (batch 64 of 64x64x3, coordinates
reaching 10% beyond the image) in one run, forward and forward+backward (the
gradient of sum(output * upstream) with respect to images and coordinates).
tensorflow-addons runs in its own environment (`benchmarks/.venv_tfa`, TF
2.15 with Keras 2; `make bench` builds it) through `benchmarks.tfa_sampler`,
twice (before and after ours, fastest kept), so machine load hits both sides
alike. Times are the fastest of `rounds` rounds (wall and CPU ms per call);
ratios are to `tfa.image.resampler`'s (CPU time: all threads of the
process, steadier than wall time on a busy machine). Differences: our `border="zeros"`
against `resampler` (both read zeros outside), our clamp border against
`dense_image_warp` (which clamps; the flow conversion is in tfa_sampler.py),
cv2.remap and map_coordinates. Results: benchmarks/results/sampler.{json,md}.
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile

import cv2
import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from benchmarks import harness, timing
from fvae_tf.warp import sampler

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch", 64, "Images per batch.")
flags.DEFINE_integer("size", 64, "Height and width of images and coordinate fields.")
flags.DEFINE_integer("repeats", 10, "Calls per timed round.")
flags.DEFINE_integer("rounds", 5, "Timed rounds; the fastest counts.")
flags.DEFINE_string("tfa_python", str(pathlib.Path(__file__).parent / ".venv_tfa/bin/python"),
                    "Python of the tensorflow-addons environment.")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_addons(inputs_path: pathlib.Path, workdir: pathlib.Path) -> dict | None:
    """tensorflow-addons' outputs and times (fastest of two runs), or None without its venv."""
    if not pathlib.Path(FLAGS.tfa_python).exists():
        return None
    output = workdir / "tfa.npz"
    subprocess.run([FLAGS.tfa_python, "-m", "benchmarks.tfa_sampler", str(inputs_path),
                    str(output), str(FLAGS.repeats), str(FLAGS.rounds)],
                   cwd=REPO_ROOT, check=True, stderr=subprocess.DEVNULL)
    with np.load(output) as saved:
        return {"times": json.loads(str(saved["times"])), "tensorflow": str(saved["tensorflow"]),
                **{k: saved[k] for k in saved.files if k.startswith("tfa.")}}


def faster(a: dict | None, b: dict | None) -> dict | None:
    """Per method and pass, the faster of two addons runs."""
    if a is None or b is None:
        return a or b
    for name, passes in a["times"].items():
        for kind, times in passes.items():
            if b["times"][name][kind]["wall_ms"] < times["wall_ms"]:
                passes[kind] = b["times"][name][kind]
    return a


def main(argv):
    del argv
    load_at_start = os.getloadavg()[0]
    rng = np.random.default_rng(0)
    b, s = FLAGS.batch, FLAGS.size
    inputs = {"images": rng.uniform(-1, 1, (b, s, s, 3)).astype(np.float32),
              "coords": rng.uniform(-1.1, 1.1, (b, s, s, 2)).astype(np.float32),
              "upstream": rng.uniform(-1, 1, (b, s, s, 3)).astype(np.float32)}
    images, coords, upstream = (tf.constant(inputs[k]) for k in ("images", "coords", "upstream"))
    pixel = ((inputs["coords"] + 1) * s - 1) / 2

    def keras_map(images, coords):
        # The same points in map_coordinates' layout: one index array per axis.
        b_idx, _, _, c_idx = np.meshgrid(np.arange(b), np.arange(s), np.arange(s),
                                         np.arange(3), indexing="ij")
        px = tf.repeat(((coords + 1.0) * s - 1.0) / 2.0, 3, axis=-1)
        return keras.ops.image.map_coordinates(
            images, [b_idx.astype(np.float32), px[..., 3:], px[..., :3], c_idx.astype(np.float32)],
            order=1, fill_mode="nearest")

    def remap():
        return np.stack([cv2.remap(inputs["images"][i], pixel[i, ..., 0], pixel[i, ..., 1],
                                   cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                         for i in range(b)])

    def autodiff(images, coords):
        # Our forward without its custom gradient: what TensorFlow's autodiff makes of it.
        return sampler._forward(images, coords, sampler.Border.CLAMP, False)[0]

    methods = {  # name -> (forward, mode)
        "ours eager": (sampler.bilinear_sample, "eager"),
        "ours tf.function": (sampler.bilinear_sample, "function"),
        "ours XLA": (sampler.bilinear_sample, "xla"),
        "ours, autodiff gradient, tf.function": (autodiff, "function"),
        "ours, autodiff gradient, XLA": (autodiff, "xla"),
        "keras.ops.image.map_coordinates": (keras_map, "function"),
    }

    with tempfile.TemporaryDirectory() as workdir:
        workdir = pathlib.Path(workdir)
        np.savez(workdir / "inputs.npz", **inputs)
        addons = run_addons(workdir / "inputs.npz", workdir)
        rows = []
        for name, (fn, mode) in methods.items():
            wrap = (lambda f: f) if mode == "eager" else (
                lambda f: tf.function(f, jit_compile=mode == "xla"))
            forward, backward = wrap(fn), wrap(timing.forward_backward(fn, upstream))
            passes = {"fwd+bwd": backward} if "autodiff" in name else {
                "fwd": forward, "fwd+bwd": backward}
            for kind, step in passes.items():
                rows.append({"method": name, "pass": kind,
                             **timing.time_call(lambda: step(images, coords), FLAGS.repeats,
                                                FLAGS.rounds)})
        rows.append({"method": "cv2.remap (per-image loop)", "pass": "fwd",
                     **timing.time_call(remap, FLAGS.repeats, FLAGS.rounds)})
        addons = faster(addons, run_addons(workdir / "inputs.npz", workdir))

    clamp = sampler.bilinear_sample(images, coords, "clamp").numpy()
    zeros = sampler.bilinear_sample(images, coords, "zeros").numpy()
    differences = {"cv2.remap (per-image loop)": np.abs(remap() - clamp).max(),
                   "keras.ops.image.map_coordinates": np.abs(keras_map(images, coords) - clamp).max()}
    if addons is not None:
        for name, passes in addons["times"].items():
            rows += [{"method": name, "pass": kind, **t} for kind, t in passes.items()]
        differences["tfa.image.resampler"] = np.abs(addons["tfa.image.resampler"] - zeros).max()
        differences["tfa.image.dense_image_warp"] = np.abs(
            addons["tfa.image.dense_image_warp"] - clamp).max()
        reference = addons["times"]["tfa.image.resampler"]
        for row in rows:
            for clock in ("wall", "cpu"):
                row[f"x resampler ({clock})"] = (row[f"{clock}_ms"]
                                                 / reference[row["pass"]][f"{clock}_ms"])
    for row in rows:
        if row["method"] in differences:
            row["max abs diff"] = float(differences[row["method"]])
    columns = ["method", "pass", "wall_ms", "cpu_ms", "x resampler (wall)", "x resampler (cpu)",
               "max abs diff"]
    notes = [f"Batch {b} of {s}x{s}x3, fastest of {FLAGS.rounds} rounds of {FLAGS.repeats} calls. "
             "max abs diff: ours (clamp) against cv2.remap, map_coordinates and "
             "dense_image_warp; ours (border zeros) against resampler."]
    notes.append("tensorflow-addons: TensorFlow " + addons["tensorflow"] if addons else
                 f"tensorflow-addons not run: {FLAGS.tfa_python} missing (`make bench` builds it).")
    # Wall time above CPU time is time spent waiting for a core: other processes' load.
    notes.append(f"Load average (1 min) at start and end: {load_at_start:.1f}, "
                 f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.")
    path = harness.write_results(
        "sampler", {"command": "python -m benchmarks.bench_sampler " + " ".join(sys.argv[1:]),
                    "batch": b, "size": s, "repeats": FLAGS.repeats, "rounds": FLAGS.rounds},
        {"Sampler, forward and forward+backward": (rows, columns)}, notes)
    print(path.read_text())


if __name__ == "__main__":
    app.run(main)
