"""tensorflow-addons' samplers on saved inputs: run by bench_sampler in its own environment.

tensorflow-addons needs TensorFlow 2.15 with Keras 2, so it runs in
`benchmarks/.venv_tfa` (`make bench` creates it) as a separate process:

    benchmarks/.venv_tfa/bin/python -m benchmarks.tfa_sampler INPUTS.npz OUTPUT.npz

INPUTS.npz holds `images` [B, H, W, C], `coords` [B, H, W, 2] (normalized
(x, y), align_corners=False, the project's convention) and `upstream`
[B, H, W, C] (the gradient flowing into the output). OUTPUT.npz gets each
method's output and a JSON string of milliseconds per call.

The conventions are matched here:
* `tfa.image.resampler` reads (x, y) in pixels, pixel centres at integers,
  zeros outside: pixel = ((normalized + 1) * size - 1) / 2.
* `tfa.image.dense_image_warp` reads image[y - flow_y, x - flow_x] at each
  output pixel (x, y), with flow channels (y, x) and edges clamped: flow =
  (row - pixel_y, column - pixel_x).
"""

import json
import sys
import warnings

import numpy as np
import tensorflow as tf

from benchmarks import timing

warnings.filterwarnings("ignore")  # the addons' end-of-life notice
import tensorflow_addons as tfa  # noqa: E402


def main(inputs_path: str, output_path: str, repeats: int, rounds: int) -> None:
    inputs = np.load(inputs_path)
    images = tf.constant(inputs["images"])
    upstream = tf.constant(inputs["upstream"])
    coords = inputs["coords"]
    height, width = coords.shape[1:3]
    pixel = np.stack([((coords[..., 0] + 1) * width - 1) / 2,
                      ((coords[..., 1] + 1) * height - 1) / 2], axis=-1)
    rows, columns = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    flow = np.stack([rows - pixel[..., 1], columns - pixel[..., 0]], axis=-1)
    methods = {"tfa.image.resampler": (tfa.image.resampler, tf.constant(pixel, tf.float32)),
               "tfa.image.dense_image_warp": (tfa.image.dense_image_warp,
                                              tf.constant(flow, tf.float32))}
    outputs, times = {}, {}
    for name, (fn, warp) in methods.items():
        forward = tf.function(fn)
        backward = tf.function(timing.forward_backward(fn, upstream))
        outputs[name] = forward(images, warp).numpy()
        times[name] = {"fwd": timing.time_call(lambda: forward(images, warp), repeats, rounds),
                       "fwd+bwd": timing.time_call(lambda: backward(images, warp), repeats, rounds)}
    np.savez(output_path, times=json.dumps(times), tensorflow=tf.__version__, **outputs)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
