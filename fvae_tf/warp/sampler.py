"""Differentiable bilinear sampling (Jaderberg et al. 2015), the FVAE's `S`.

The warp maps *target to source*: for every output pixel p, `coords[p]` says
where in the source image to read, and the output is the bilinear blend of the
4 source pixels around that point (paper eq. 5):

    out(p) = sum_q src(q) * max(0, 1 - |u_p - q_x|) * max(0, 1 - |v_p - q_y|)

Coordinate convention, stated once here and used everywhere in the project:
`coords[..., 0]` is x (column), `coords[..., 1]` is y (row), normalized to
[-1, 1].

* `align_corners=False` (default): -1 and +1 are the outer *edges* of the
  image; pixel centre i of W sits at (2i + 1) / W - 1, so the pixel coordinate
  is px = ((x + 1) * W - 1) / 2. A normalized coordinate then names the same
  physical point at every resolution, which is what makes flow upsampling
  exact.
* `align_corners=True`: -1 and +1 are the centres of the corner pixels,
  px = (x + 1) * (W - 1) / 2.

Border rule: `Border.CLAMP` (default) repeats the edge pixels, like OpenCV's
BORDER_REPLICATE; `Border.ZEROS` reads zeros outside the image, like
BORDER_CONSTANT with 0 and `tfa.image.resampler`.

Pure TensorFlow: gradients flow to both the images and the coordinates.
"""

import enum

import keras
import tensorflow as tf


# Pixel distance, relative to the image size, within which a position counts
# as a pixel centre: twice the float32 rounding error of a normalized
# coordinate (half an ulp of 1, 6e-8) once scaled to pixels (size / 2).
_SNAP_TOLERANCE = 6e-8


class Border(str, enum.Enum):
    """What the sampler reads outside the source image."""

    CLAMP = "clamp"  # repeat edge pixels
    ZEROS = "zeros"  # zero padding


def normalized_to_pixel(coords: tf.Tensor, size: tf.Tensor, align_corners: bool) -> tf.Tensor:
    """Maps normalized coordinates to pixel coordinates (pixel centres at integers).

    The arithmetic runs in float64, so the only error left is the float32
    rounding of the coordinate itself, which leaves an identity coordinate a
    hair off its pixel centre; positions that close to an integer are snapped
    onto it (in value only: the gradient passes straight through), so identity
    coordinates reproduce the source exactly at every size.
    """
    coords = tf.cast(coords, tf.float64)
    size = tf.cast(size, tf.float64)
    if align_corners:
        pixel = (coords + 1.0) * (size - 1.0) / 2.0
    else:
        pixel = ((coords + 1.0) * size - 1.0) / 2.0
    nearest = tf.round(pixel)
    close = tf.abs(pixel - nearest) <= _SNAP_TOLERANCE * size
    return pixel + tf.stop_gradient(tf.where(close, nearest - pixel, tf.zeros_like(pixel)))


def identity_grid(height: int, width: int, align_corners: bool = False) -> tf.Tensor:
    """The coordinates that sample every pixel at its own centre.

    Returns:
      float32 [height, width, 2], normalized (x, y); warping with it returns
      the source unchanged in both conventions.
    """
    def axis(n):
        i = tf.range(n, dtype=tf.float32)
        if align_corners:
            return -1.0 + 2.0 * i / max(n - 1, 1)
        return (2.0 * i + 1.0) / n - 1.0

    ys, xs = tf.meshgrid(axis(height), axis(width), indexing="ij")
    return tf.stack([xs, ys], axis=-1)


def bilinear_sample(
    images: tf.Tensor,
    coords: tf.Tensor,
    border: Border | str = Border.CLAMP,
    align_corners: bool = False,
) -> tf.Tensor:
    """Samples `images` at `coords` with a bilinear kernel.

    Args:
      images: [B, H, W, C] source images.
      coords: [B, h, w, 2] normalized (x, y) sampling coordinates; the output
        may have another resolution than the source.
      border: `Border.CLAMP` or `Border.ZEROS` (or their string values).
      align_corners: coordinate convention, see the module docstring.

    Returns:
      [B, h, w, C], dtype of `images`.
    """
    border = Border(border)
    images = tf.convert_to_tensor(images)
    coords = tf.cast(tf.convert_to_tensor(coords), images.dtype)
    if border is Border.ZEROS:
        # Zero padding by one pixel plus clamping to the padded image reads 0
        # for every neighbour outside the original image.
        images = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])
        offset = 1.0
    else:
        offset = 0.0
    shape = tf.shape(images)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    src_h = tf.cast(height, images.dtype) - 2.0 * offset
    src_w = tf.cast(width, images.dtype) - 2.0 * offset

    x = normalized_to_pixel(coords[..., 0], src_w, align_corners) + offset
    y = normalized_to_pixel(coords[..., 1], src_h, align_corners) + offset
    x0 = tf.floor(x)
    y0 = tf.floor(y)
    # Weights come from the unclamped positions, so a point beyond the border
    # blends two copies of the same edge pixel and its coordinate gradient is 0.
    wx1 = tf.cast(x - x0, images.dtype)
    wy1 = tf.cast(y - y0, images.dtype)
    wx0 = 1.0 - wx1
    wy0 = 1.0 - wy1

    def clamp(v, n):
        return tf.clip_by_value(tf.cast(v, tf.int32), 0, n - 1)

    x0i, x1i = clamp(x0, width), clamp(x0 + 1.0, width)
    y0i, y1i = clamp(y0, height), clamp(y0 + 1.0, height)
    flat = tf.reshape(images, [batch, height * width, channels])
    out_shape = tf.shape(coords)[:-1]

    def gather(yi, xi):
        idx = tf.reshape(yi * width + xi, [batch, -1])
        values = tf.gather(flat, idx, batch_dims=1)
        return tf.reshape(values, tf.concat([out_shape, [channels]], axis=0))

    return (
        gather(y0i, x0i) * (wy0 * wx0)[..., None]
        + gather(y0i, x1i) * (wy0 * wx1)[..., None]
        + gather(y1i, x0i) * (wy1 * wx0)[..., None]
        + gather(y1i, x1i) * (wy1 * wx1)[..., None]
    )


def upsample_flow(
    coords: tf.Tensor, size: tuple[int, int], align_corners: bool = False
) -> tf.Tensor:
    """Upsamples a coordinate field to `size` (paper section 4.3).

    The displacement from the identity grid is resampled bilinearly (with the
    sampler itself, so both conventions are handled alike, edges clamped) and
    the larger identity grid is added back: a zero displacement stays exact.

    Args:
      coords: [B, h, w, 2] normalized sampling coordinates.
      size: (H, W) of the output field.

    Returns:
      [B, H, W, 2] normalized sampling coordinates.
    """
    coords = tf.convert_to_tensor(coords, tf.float32)
    height, width = size
    h, w = coords.shape[1], coords.shape[2]
    displacement = coords - identity_grid(h, w, align_corners)
    grid = identity_grid(height, width, align_corners)
    grid_batch = tf.tile(grid[None], [tf.shape(coords)[0], 1, 1, 1])
    upsampled = bilinear_sample(displacement, grid_batch, Border.CLAMP, align_corners)
    return upsampled + grid


class BilinearSampler(keras.layers.Layer):
    """Keras layer: `BilinearSampler()([images, coords]) -> warped images`."""

    def __init__(self, border: Border | str = Border.CLAMP, align_corners: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.border = Border(border)
        self.align_corners = align_corners

    def call(self, inputs):
        images, coords = inputs
        return bilinear_sample(images, coords, self.border, self.align_corners)

    def get_config(self):
        return {**super().get_config(), "border": self.border.value,
                "align_corners": self.align_corners}
