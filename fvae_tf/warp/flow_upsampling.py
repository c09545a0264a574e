"""Flow upsampling (paper 4.3, 6.4): high-resolution output from a 64x64 network.

The network decodes a 64x64 field of sampling coordinates; the field is
upsampled bilinearly (`sampler.upsample_flow`: displacement resampled, the
larger identity grid added back) and samples the high-resolution crop of the
same face, so the output keeps the crop's own detail (the paper's comparison
with pixel-space upsampling is `fvae_tf.edit.upsampling`). Images are float32
in [-1, 1], NHWC; coordinates are normalized, align_corners=False (the
sampler's convention).
"""

import tensorflow as tf

from fvae_tf.warp import sampler


def warp(source: tf.Tensor, coords: tf.Tensor) -> tf.Tensor:
    """Samples a source of any resolution with a (low-resolution) coordinate field.

    The field is upsampled to the source's size first when they differ.

    Args:
      source: [B, H, W, C], e.g. the high-resolution crop.
      coords: [B, h, w, 2] normalized sampling coordinates, e.g. at 64x64.

    Returns:
      [B, H, W, C]; exactly `source` when `coords` is the identity grid.
    """
    source = tf.convert_to_tensor(source, tf.float32)
    size = tuple(source.shape[1:3])
    if tuple(coords.shape[1:3]) != size:
        coords = sampler.upsample_flow(coords, size)
    return sampler.bilinear_sample(source, coords)
