"""Differentiable bilinear sampling (Jaderberg et al. 2015), the FVAE's `S`.

The warp maps *target to source*: for every output pixel p, `coords[p]` says
where in the source image to read, and the output is the bilinear blend of the
4 source pixels around that point (paper eq. 5):

    out(p) = sum_q src(q) * max(0, 1 - |u_p - q_x|) * max(0, 1 - |v_p - q_y|)

Coordinate convention (converted to pixels by `fvae_tf.warp.coordinates` only):
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

from fvae_tf.warp import coordinates


class Border(str, enum.Enum):
    """What the sampler reads outside the source image."""

    CLAMP = "clamp"  # repeat edge pixels
    ZEROS = "zeros"  # zero padding


def normalized_to_pixel(coords: tf.Tensor, size: tf.Tensor, align_corners: bool) -> tf.Tensor:
    """Maps normalized coordinates to float64 pixel coordinates, snapped onto pixel
    centres within float32 rounding (`coordinates.to_pixels_tf`)."""
    return coordinates.to_pixels_tf(coords, size, align_corners)


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


def _neighbours(coords: tf.Tensor, shape: tf.Tensor, pad: int, align_corners: bool, dtype):
    """The 4 neighbours of every sampling point and the 1-D weights.

    Args:
      coords: [B, h, w, 2] normalized (x, y).
      shape: int32 [4], the source's [B, H, W, C].
      pad: pixels of zeros framing the source on each side, read by clamping.

    Returns:
      index: 4 int32 [B, h, w] tensors, for the corners (y0, x0), (y0, x1),
        (y1, x0), (y1, x1): rows of the framed images reshaped to
        [B * (H + 2 pad) * (W + 2 pad), C].
      (wx0, wx1, wy0, wy1): [B, h, w] each, the 1-D bilinear weights of
        eq. 5 from the unclamped positions: a point beyond a clamped border
        blends copies of one edge pixel, and its coordinate gradient is 0.
    """
    batch, height, width = shape[0], shape[1] + 2 * pad, shape[2] + 2 * pad

    def axis(normalized, size, framed_size):
        pixel = normalized_to_pixel(normalized, size, align_corners) + pad
        low = tf.floor(pixel)
        w1 = tf.cast(pixel - low, dtype)
        # Clipped in floating point first, so that far-away points cannot overflow int32.
        low = tf.cast(tf.clip_by_value(low, -1.0, tf.cast(framed_size, low.dtype)), tf.int32)
        return (tf.clip_by_value(low, 0, framed_size - 1),
                tf.clip_by_value(low + 1, 0, framed_size - 1), 1.0 - w1, w1)

    x0, x1, wx0, wx1 = axis(coords[..., 0], shape[2], width)
    y0, y1, wy0, wy1 = axis(coords[..., 1], shape[1], height)
    first = tf.reshape(tf.range(batch) * (height * width), [-1, 1, 1])
    row0, row1 = first + y0 * width, first + y1 * width
    return (row0 + x0, row0 + x1, row1 + x0, row1 + x1), (wx0, wx1, wy0, wy1)


def _forward(images: tf.Tensor, coords: tf.Tensor, border: Border, align_corners: bool):
    """The sampler's forward pass, and what its gradient reuses.

    Returns:
      out: [B, h, w, C].
      residuals: (index, weights, values): the 4 flat index tensors and the
        1-D weights of `_neighbours`, and the 4 neighbours' values [B, h, w, C].
    """
    shape = tf.shape(images)
    # Zeros: a one-pixel frame of zeros, read by clamping into the framed image.
    pad = 1 if border is Border.ZEROS else 0
    framed = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]]) if pad else images
    index, weights = _neighbours(coords, shape, pad, align_corners, images.dtype)
    flat = tf.reshape(framed, [-1, shape[3]])
    # One gather per corner: measured faster on CPU than one gather of all
    # four stacked, with or without XLA (benchmarks/bench_sampler.py).
    values = [tf.gather(flat, i) for i in index]
    wx1, wy1 = weights[1][..., None], weights[3][..., None]
    # Eq. 5 as two linear interpolations: along x, then along y.
    top = values[0] + (values[1] - values[0]) * wx1
    bottom = values[2] + (values[3] - values[2]) * wx1
    return top + (bottom - top) * wy1, (index, weights, values)


def bilinear_sample(
    images: tf.Tensor,
    coords: tf.Tensor,
    border: Border | str = Border.CLAMP,
    align_corners: bool = False,
) -> tf.Tensor:
    """Samples `images` at `coords` with a bilinear kernel.

    The gradient (`tf.custom_gradient`) reuses the forward's flat indices,
    weights and neighbour values: a scatter-add of the weighted upstream
    gradient for the images, the weights' closed-form derivatives for the
    coordinates. Compiles with XLA (`jit_compile=True`).

    Args:
      images: [B, H, W, C] source images, C known statically.
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
    channels = images.shape[-1]

    @tf.custom_gradient
    def sample(images, coords):
        out, (index, (wx0, wx1, wy0, wy1), values) = _forward(images, coords, border, align_corners)

        def grad(upstream):  # [B, h, w, C]
            shape = tf.shape(images)
            pad = 1 if border is Border.ZEROS else 0
            rows = shape[0] * (shape[1] + 2 * pad) * (shape[2] + 2 * pad)
            corners = tf.stack(index, axis=-1)
            weight = tf.stack([wy0 * wx0, wy0 * wx1, wy1 * wx0, wy1 * wx1], axis=-1)
            # One scatter per channel: TensorFlow's CPU kernel is about twice
            # as fast for scalar rows as for rows of C values.
            d_framed = tf.stack([
                tf.math.unsorted_segment_sum(weight * upstream[..., c, None], corners, rows)
                for c in range(channels)], axis=-1)
            d_framed = tf.reshape(d_framed, shape + [0, 2 * pad, 2 * pad, 0])
            d_images = d_framed[:, pad:pad + shape[1], pad:pad + shape[2]]
            a = [tf.reduce_sum(v * upstream, axis=-1) for v in values]
            # d(pixel)/d(normalized), see normalized_to_pixel.
            span = tf.cast(shape[1:3] - 1 if align_corners else shape[1:3], images.dtype) / 2.0
            d_x = (wy0 * (a[1] - a[0]) + wy1 * (a[3] - a[2])) * span[1]
            d_y = (wx0 * (a[2] - a[0]) + wx1 * (a[3] - a[1])) * span[0]
            return d_images, tf.stack([d_x, d_y], axis=-1)

        return out, grad

    return sample(images, coords)


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
