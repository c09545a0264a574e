"""Flow-domain vs pixel-domain upsampling of a warp (paper 6.4).

The paper compares flow upsampling (`fvae_tf.warp.flow_upsampling.warp`: the
64x64 field upsampled, then sampling the high-resolution crop) with
upsampling the 64x64 output in pixel space, which blurs; `compare` produces
both and measures each with `metrics.sharpness_ratio` against the
high-resolution source. Images are float32 in [-1, 1], NHWC; coordinates are
normalized, align_corners=False.
"""

from typing import NamedTuple

import numpy as np
import tensorflow as tf

from fvae_tf import metrics
from fvae_tf.warp import flow_upsampling, sampler


class UpsamplingComparison(NamedTuple):
    """Flow-domain vs pixel-domain upsampling of one warp."""

    flow: np.ndarray  # [B, S, S, 3]: S(x_hr, upsample_flow(coords))
    pixel: np.ndarray  # [B, S, S, 3]: the 64x64 output S(x, coords), resized to S
    flow_sharpness: float  # sharpness_ratio(flow, x_hr)
    pixel_sharpness: float  # sharpness_ratio(pixel, x_hr)


def resize_pixels(images: tf.Tensor, size: tuple[int, int],
                  method: str = tf.image.ResizeMethod.BILINEAR) -> tf.Tensor:
    """Pixel-domain upsampling, the paper's baseline: [B, h, w, C] -> [B, H, W, C].

    `tf.image.resize` uses half-pixel centres, the sampler's align_corners=False.
    """
    return tf.image.resize(tf.convert_to_tensor(images, tf.float32), size, method=method)


def compare(source: tf.Tensor, source_hr: tf.Tensor, coords: tf.Tensor,
            method: str = tf.image.ResizeMethod.BILINEAR) -> UpsamplingComparison:
    """Upsamples one warp both ways and measures sharpness against the source.

    Args:
      source: [B, h, w, 3] the network's input crop.
      source_hr: [B, H, W, 3] the same crop at high resolution.
      coords: [B, h, w, 2] the decoded field D(z, source).
      method: `tf.image.ResizeMethod` of the pixel-domain baseline.

    Returns:
      Both outputs and their gradient energy relative to `source_hr`.
    """
    size = tuple(source_hr.shape[1:3])
    flow = flow_upsampling.warp(source_hr, coords).numpy()
    pixel = resize_pixels(sampler.bilinear_sample(source, coords), size, method).numpy()
    reference = np.asarray(source_hr)
    return UpsamplingComparison(flow, pixel, metrics.sharpness_ratio(flow, reference),
                                metrics.sharpness_ratio(pixel, reference))
