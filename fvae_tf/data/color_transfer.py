"""Colour transfer in l-alpha-beta space (Reinhard et al. 2001).

"Color Transfer between Images" recolours a source image so that each channel
of its l-alpha-beta representation has the target's mean and standard
deviation. The FVAE applies it to the source of every training pair (paper
5.2) so that the L1 reconstruction loss learns geometry, not lighting.

The l-alpha-beta transform (Reinhard et al., eqs. 4-6):

    LMS = M_rgb2lms @ RGB
    (l, alpha, beta) = diag(1/sqrt(3), 1/sqrt(6), 1/sqrt(2))
                       @ [[1, 1, 1], [1, 1, -2], [1, -1, 0]] @ log10(LMS + EPS)

RGB is float in [0, 1]. `EPS` (one 8-bit grey level, 1/255) keeps black
pixels finite: log10(0) is -inf, and a tiny epsilon would turn every black
pixel into an outlier that dominates the channel's standard deviation. The
inverse subtracts the same `EPS`, so the round trip is exact. The inverse
matrices are computed from the forward ones rather than copied from the paper:
its printed RGB inverse is rounded and, in the third row, off by up to 0.017
from the exact inverse of its own forward matrix.

`transfer_color` (numpy) is the reference; `transfer_color_tf` computes the
same in TensorFlow, in float64 so that it rounds to the same 8-bit values, for
the input pipeline, which recolours each pair's source as it reads it.
"""

import numpy as np
import tensorflow as tf

EPS = 1.0 / 255.0

# Reinhard et al. eq. 4: RGB -> LMS cone space.
_RGB_TO_LMS = np.array([
    [0.3811, 0.5783, 0.0402],
    [0.1967, 0.7244, 0.0782],
    [0.0241, 0.1288, 0.8444],
])
# Reinhard et al. eq. 6: log-LMS -> decorrelated l-alpha-beta.
_LOG_LMS_TO_LAB = np.diag([1 / np.sqrt(3), 1 / np.sqrt(6), 1 / np.sqrt(2)]) @ np.array([
    [1.0, 1.0, 1.0],
    [1.0, 1.0, -2.0],
    [1.0, -1.0, 0.0],
])
_LMS_TO_RGB = np.linalg.inv(_RGB_TO_LMS)
_LAB_TO_LOG_LMS = np.linalg.inv(_LOG_LMS_TO_LAB)


def _apply(matrix: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """matrix [3, 3] times every pixel of [..., 3].

    einsum rather than `@`: a BLAS matmul of [N, 3] by [3, 3] spins up BLAS
    threads and, on a busy machine, ran 10x slower than this loop.
    """
    return np.einsum("...k,ck->...c", pixels, matrix)


def _channel_stats(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of [..., 3], each [3]."""
    channels = np.ascontiguousarray(lab.reshape(-1, 3).T)  # contiguous rows reduce fast
    return channels.mean(axis=1), channels.std(axis=1)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Converts RGB to Reinhard's l-alpha-beta.

    Args:
      rgb: float [..., 3], RGB in [0, 1] (values outside are allowed as long as
        LMS + EPS stays positive).

    Returns:
      float64 [..., 3], (l, alpha, beta).
    """
    rgb = np.asarray(rgb, np.float64)
    lms = _apply(_RGB_TO_LMS, rgb)
    return _apply(_LOG_LMS_TO_LAB, np.log10(lms + EPS))


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """Inverts `rgb_to_lab`.

    Args:
      lab: float [..., 3], (l, alpha, beta).

    Returns:
      float64 [..., 3], RGB, not clipped (in [0, 1] for `lab` that came from
      an image in [0, 1]).
    """
    lms = 10.0 ** _apply(_LAB_TO_LOG_LMS, np.asarray(lab, np.float64)) - EPS
    return _apply(_LMS_TO_RGB, lms)


def transfer_color_float(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Gives `source` the l-alpha-beta mean and standard deviation of `target`.

    Statistics are per channel over all pixels of each image (Reinhard et al.
    eqs. 10-11): l' = (l - mean_s) * std_t / std_s + mean_t. A constant source
    channel (std below 1e-8, i.e. rounding noise) takes the target's mean.

    Args:
      source: float [H, W, 3], RGB in [0, 1].
      target: float [H', W', 3], RGB in [0, 1]; the size may differ.

    Returns:
      float64 [H, W, 3], the recoloured source in RGB, not clipped.
    """
    src = rgb_to_lab(source)
    src_mean, src_std = _channel_stats(src)
    tgt_mean, tgt_std = _channel_stats(rgb_to_lab(target))
    scale = np.divide(tgt_std, src_std, out=np.zeros(3), where=src_std > 1e-8)
    return lab_to_rgb((src - src_mean) * scale + tgt_mean)


def transfer_color(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Recolours an 8-bit source image to the target's l-alpha-beta statistics.

    Args:
      source: uint8 [H, W, 3] RGB.
      target: uint8 [H', W', 3] RGB.

    Returns:
      uint8 [H, W, 3] RGB; out-of-gamut values are clipped to [0, 255].
    """
    out = transfer_color_float(source / 255.0, target / 255.0)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def _apply_tf(matrix: np.ndarray, pixels: tf.Tensor) -> tf.Tensor:
    """`_apply` in TensorFlow: matrix [3, 3] times every pixel of float64 [..., 3].

    A matmul of [N, 3] pixels: TensorFlow's float64 einsum here ran 7x slower.
    """
    product = tf.matmul(tf.reshape(pixels, [-1, 3]), tf.constant(matrix, tf.float64),
                        transpose_b=True)
    return tf.reshape(product, tf.shape(pixels))


def _rgb_to_lab_tf(image: tf.Tensor) -> tf.Tensor:
    """uint8 [..., 3] RGB -> float64 (l, alpha, beta), as `rgb_to_lab(image / 255)`."""
    lms = _apply_tf(_RGB_TO_LMS, tf.cast(image, tf.float64) / 255.0)
    return _apply_tf(_LOG_LMS_TO_LAB, tf.math.log(lms + EPS) / np.log(10.0))


def transfer_color_tf(source: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """`transfer_color` in TensorFlow, for one image or a batch.

    Args:
      source: uint8 [..., H, W, 3] RGB.
      target: uint8 [..., H', W', 3] RGB, the same leading dimensions.

    Returns:
      uint8 [..., H, W, 3]: the source with the target's per-image,
      per-channel l-alpha-beta mean and standard deviation, rounded and
      clipped like `transfer_color` (equal to it to within one grey level,
      which float rounding at .5 may flip).
    """
    src, tgt = _rgb_to_lab_tf(source), _rgb_to_lab_tf(target)
    axes = [-3, -2]
    src_mean = tf.reduce_mean(src, axes, keepdims=True)
    src_std = tf.math.reduce_std(src, axes, keepdims=True)
    tgt_mean = tf.reduce_mean(tgt, axes, keepdims=True)
    tgt_std = tf.math.reduce_std(tgt, axes, keepdims=True)
    scale = tf.where(src_std > 1e-8, tgt_std / tf.maximum(src_std, 1e-8), 0.0)
    log_lms = _apply_tf(_LAB_TO_LOG_LMS, (src - src_mean) * scale + tgt_mean)
    # exp(x ln 10) rather than pow(10, x): the same to 1e-15, and 8x faster in float64.
    rgb = _apply_tf(_LMS_TO_RGB, tf.exp(log_lms * np.log(10.0)) - EPS)
    return tf.cast(tf.clip_by_value(tf.round(rgb * 255.0), 0.0, 255.0), tf.uint8)
