"""Times our bilinear sampler against cv2.remap and keras.ops.image.map_coordinates.

Same inputs for all, one run, printed as ratios to our `tf.function` sampler:

    python -m benchmarks.bench_sampler --batch 64 --size 64 --repeats 20
"""

import time

import cv2
import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from fvae_tf.warp import sampler

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch", 64, "Images per batch.")
flags.DEFINE_integer("size", 64, "Height and width of images and coordinate fields.")
flags.DEFINE_integer("repeats", 20, "Timed calls per method (after one warm-up call).")


def _time(fn, repeats: int) -> float:
    """Seconds per call, after one warm-up call (tracing, compilation)."""
    tf.nest.map_structure(np.asarray, fn())
    start = time.perf_counter()
    for _ in range(repeats):
        result = fn()
    tf.nest.map_structure(np.asarray, result)
    return (time.perf_counter() - start) / repeats


def main(argv):
    del argv
    rng = np.random.default_rng(0)
    b, s = FLAGS.batch, FLAGS.size
    images_np = rng.uniform(-1, 1, (b, s, s, 3)).astype(np.float32)
    coords_np = rng.uniform(-1.1, 1.1, (b, s, s, 2)).astype(np.float32)
    images, coords = tf.constant(images_np), tf.constant(coords_np)
    pixel = ((coords_np + 1) * s - 1) / 2  # contract convention -> pixel coordinates

    def forward_backward(fn):
        # Inputs are arguments, not captured constants, so graph optimisation
        # cannot fold the work away.
        def step(images, coords):
            with tf.GradientTape() as tape:
                tape.watch([images, coords])
                loss = tf.reduce_sum(fn(images, coords))
            return tape.gradient(loss, [images, coords])
        return lambda: step(images, coords), step

    def compiled(fn, **kwargs):
        step = tf.function(forward_backward(fn)[1], **kwargs)
        return lambda: step(images, coords)

    b_idx, _, _, c_idx = np.meshgrid(np.arange(b), np.arange(s), np.arange(s), np.arange(3),
                                     indexing="ij")

    def keras_map(images, coords):
        # The same points in map_coordinates' layout: one index array per axis.
        px = tf.repeat(((coords + 1.0) * s - 1.0) / 2.0, 3, axis=-1)
        return keras.ops.image.map_coordinates(
            images, [b_idx.astype(np.float32), px[..., 3:], px[..., :3], c_idx.astype(np.float32)],
            order=1, fill_mode="nearest")

    def remap_forward():
        return [cv2.remap(images_np[i], pixel[i, ..., 0], pixel[i, ..., 1], cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE) for i in range(b)]

    forward_ours = tf.function(sampler.bilinear_sample)
    timings = {
        "ours eager (fwd+bwd)": _time(forward_backward(sampler.bilinear_sample)[0], FLAGS.repeats),
        "ours tf.function (fwd+bwd)": _time(compiled(sampler.bilinear_sample), FLAGS.repeats),
        "ours jit_compile (fwd+bwd)": _time(
            compiled(sampler.bilinear_sample, jit_compile=True), FLAGS.repeats),
        "keras map_coordinates (fwd+bwd)": _time(compiled(keras_map), FLAGS.repeats),
        "ours tf.function (fwd)": _time(lambda: forward_ours(images, coords), FLAGS.repeats),
        "cv2.remap (fwd, per-image loop)": _time(remap_forward, FLAGS.repeats),
    }
    ours = sampler.bilinear_sample(images, coords).numpy()
    agreement = {"keras map_coordinates": np.abs(keras_map(images, coords).numpy() - ours).max(),
                 "cv2.remap": np.abs(np.stack(remap_forward()) - ours).max()}
    reference = timings["ours tf.function (fwd+bwd)"]
    print(f"batch {b} x {s}x{s}x3, {FLAGS.repeats} repeats, "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or 'all'} threads")
    for name, diff in agreement.items():
        print(f"max |ours - {name}| = {diff:.2e} (same inputs)")
    for name, seconds in timings.items():
        print(f"{name:34s} {seconds * 1e3:9.2f} ms   {seconds / reference:6.2f}x ours tf.function (fwd+bwd)")


if __name__ == "__main__":
    app.run(main)
