"""Normalized <-> pixel coordinates: the sampler's convention, converted here only.

Sampling coordinates are (x, y) pairs, `[..., 0]` the column and `[..., 1]`
the row, normalized to [-1, 1] (`fvae_tf.warp.sampler`). Pixel coordinates
put pixel centres at integers (OpenCV's, e.g. `cv2.remap`'s). Along an axis of
n pixels:

* align_corners=False (the project's default): -1 and +1 are the outer
  *edges* of the image; pixel centre i sits at (2i + 1) / n - 1, so
  px = ((x + 1) * n - 1) / 2. A normalized point is the same physical point
  at every resolution, which makes flow upsampling exact.
* align_corners=True: -1 and +1 are the centres of the corner pixels;
  px = (x + 1) * (n - 1) / 2.

numpy: `to_pixels`, `to_normalized`, `pixel_centres`, `field_to_pixels`
(they keep their input's float dtype, except where float64 is said).
TensorFlow: `to_pixels_tf`, what the sampler reads images with. This module
imports TensorFlow only when a TensorFlow function runs, so numpy users (the
synthetic faces, metrics) do not load it.
"""

import numpy as np

# Pixel distance, relative to the image size, within which `to_pixels_tf`
# counts a position as a pixel centre: twice the float32 rounding error of a
# normalized coordinate (half an ulp of 1, 6e-8) once scaled to pixels (size / 2).
_SNAP_TOLERANCE = 6e-8


def _pixels(coords, size, align_corners: bool):
    """The conversion itself, on numpy arrays or tensors alike."""
    if align_corners:
        return (coords + 1.0) * (size - 1.0) / 2.0
    return ((coords + 1.0) * size - 1.0) / 2.0


def to_pixels(coords: np.ndarray, size, align_corners: bool = False) -> np.ndarray:
    """Normalized -> pixel coordinates along axes of `size` pixels.

    Args:
      coords: normalized coordinates, any shape.
      size: pixels along the axis: a number, or per last axis, e.g. (W, H)
        for (x, y) pairs.
      align_corners: the coordinates' convention.

    Returns:
      Pixel coordinates, the shape of `coords` (broadcast with `size`).
    """
    return _pixels(np.asarray(coords), size, align_corners)


def to_normalized(pixels: np.ndarray, size, align_corners: bool = False) -> np.ndarray:
    """Pixel -> normalized coordinates; the inverse of `to_pixels`.

    With align_corners=True an axis of one pixel maps its centre to -1.
    """
    pixels = np.asarray(pixels)
    if align_corners:
        return 2.0 * pixels / np.maximum(np.asarray(size) - 1.0, 1.0) - 1.0
    return (2.0 * pixels + 1.0) / size - 1.0


def pixel_centres(size: int, align_corners: bool = False, dtype=np.float64) -> np.ndarray:
    """Normalized coordinates of the centres of `size` pixels along an axis: `dtype` [size]."""
    return to_normalized(np.arange(size, dtype=dtype), size, align_corners)


def field_to_pixels(coords: np.ndarray, align_corners: bool = False) -> np.ndarray:
    """A coordinate field in the pixels of its own grid.

    Args:
      coords: [..., H, W, 2] normalized (x, y); x scales with W, y with H.
      align_corners: the field's convention.

    Returns:
      float64 [..., H, W, 2] pixel (x, y). The identity field maps to the
      integer pixel centres.

    Raises:
      ValueError: `coords` is not [..., H, W, 2].
    """
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim < 3 or coords.shape[-1] != 2:
        raise ValueError(f"expected coordinates [..., H, W, 2], got shape {coords.shape}")
    size = np.array([coords.shape[-2], coords.shape[-3]], dtype=np.float64)  # (W, H)
    return to_pixels(coords, size, align_corners)


def to_pixels_tf(coords, size, align_corners: bool = False):
    """`to_pixels` in TensorFlow, exact at pixel centres: float64 tensor, `coords`' shape.

    The arithmetic runs in float64, so the only error left is the float32
    rounding of the coordinate itself, which leaves an identity coordinate a
    hair off its pixel centre; positions that close to an integer are snapped
    onto it (in value only: the gradient passes straight through), so identity
    coordinates reproduce the source exactly at every size.

    Args:
      coords: a tensor of normalized coordinates.
      size: a scalar tensor or number, the pixels along their axis.
      align_corners: the coordinates' convention.
    """
    import tensorflow as tf  # here, so that the numpy functions do not load TensorFlow

    size = tf.cast(size, tf.float64)
    pixel = _pixels(tf.cast(coords, tf.float64), size, align_corners)
    nearest = tf.round(pixel)
    close = tf.abs(pixel - nearest) <= _SNAP_TOLERANCE * size
    return pixel + tf.stop_gradient(tf.where(close, nearest - pixel, tf.zeros_like(pixel)))
