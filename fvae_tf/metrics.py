"""Image and flow metrics: L1, PSNR, SSIM, sharpness and end-point error.

Everything is numpy (tf tensors are accepted through `np.asarray`). Images are
float in [-1, 1] (the library convention) unless a `data_range` says
otherwise. Shapes: a single image is [H, W] or [H, W, C]; a batch is
[B, H, W, C] (a batch of grey images needs its channel axis). For a batch each
metric is computed per image and averaged over the batch, which for PSNR is
not the PSNR of the pooled MSE.

Coordinate fields follow the sampler's convention (`fvae_tf.warp.coordinates`):
[H, W, 2] or [B, H, W, 2], normalized (x, y) in [-1, 1]; with
align_corners=False, -1 and +1 are the outer image edges and pixel centre i of
W sits at (2i + 1) / W - 1.
"""

import numpy as np

from fvae_tf.warp import coordinates

# Wang et al. 2004, "Image quality assessment: from error visibility to
# structural similarity": Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03.
_SSIM_SIGMA = 1.5
_SSIM_RADIUS = 5  # int(3.5 * sigma + 0.5): an 11-tap window, as skimage/ndimage use.
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03


def _as_batch(img: np.ndarray) -> np.ndarray:
    """[H, W] | [H, W, C] | [B, H, W, C] -> float64 [B, H, W, C]."""
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim == 3:
        img = img[None]
    if img.ndim != 4:
        raise ValueError(f"expected an image [H,W], [H,W,C] or [B,H,W,C], got shape {img.shape}")
    return img


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_batch(a), _as_batch(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return a, b


def l1(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute error over all pixels and channels (batch mean for batches)."""
    a, b = _pair(a, b)
    return float(np.mean(np.abs(a - b)))


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 2.0) -> float:
    """Peak signal-to-noise ratio in dB: 10 log10(data_range^2 / MSE).

    Args:
      a, b: images of equal shape; [B, H, W, C] gives the mean of per-image PSNRs.
      data_range: max minus min of the value range (2.0 for [-1, 1], 255 for uint8).

    Returns:
      PSNR in dB; inf when the images are identical.
    """
    a, b = _pair(a, b)
    mse = np.mean((a - b) ** 2, axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return float(np.mean(10.0 * np.log10(data_range**2 / mse)))


def _gaussian_valid(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of [B, H, W, C] over H and W."""
    for axis in (1, 2):
        windows = np.lib.stride_tricks.sliding_window_view(img, kernel.size, axis=axis)
        img = windows @ kernel
    return img


def ssim(a: np.ndarray, b: np.ndarray, value_range: tuple[float, float] = (-1.0, 1.0)) -> float:
    """Structural similarity (Wang et al. 2004) with an 11x11 Gaussian window, sigma 1.5.

    SSIM's luminance term (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1) is not
    shift-invariant: it is defined on non-negative intensities. Images are
    therefore shifted so `value_range` starts at 0 (our [-1, 1] becomes
    [0, 2]), which gives the same number as the usual SSIM of the uint8 images
    (skimage, data_range 255). Local means, variances (population) and
    covariance come from the Gaussian window; the SSIM map is averaged over
    the pixels whose window lies inside the image (the 5-pixel border is
    excluded, as in skimage), then over channels, then over the batch.

    Args:
      a, b: images of equal shape, each side at least 11 pixels.
      value_range: (low, high) of the images' intensities.

    Returns:
      Mean SSIM; 1.0 for identical images.

    Raises:
      ValueError: if shapes differ or an image is smaller than the window.
    """
    a, b = _pair(a, b)
    low, high = value_range
    a, b, data_range = a - low, b - low, high - low
    size = 2 * _SSIM_RADIUS + 1
    if min(a.shape[1:3]) < size:
        raise ValueError(f"SSIM needs images of at least {size}x{size}, got {a.shape[1:3]}")
    x = np.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1)
    kernel = np.exp(-0.5 * (x / _SSIM_SIGMA) ** 2)
    kernel /= kernel.sum()
    mu_a, mu_b = _gaussian_valid(a, kernel), _gaussian_valid(b, kernel)
    var_a = _gaussian_valid(a * a, kernel) - mu_a**2
    var_b = _gaussian_valid(b * b, kernel) - mu_b**2
    cov = _gaussian_valid(a * b, kernel) - mu_a * mu_b
    c1 = (_SSIM_K1 * data_range) ** 2
    c2 = (_SSIM_K2 * data_range) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return float(np.mean(ssim_map))


def _gradient_energy_per_image(img: np.ndarray) -> np.ndarray:
    """[B, H, W, C] -> [B]: mean of dx^2 + dy^2 (forward differences)."""
    dx = img[:, :-1, 1:] - img[:, :-1, :-1]
    dy = img[:, 1:, :-1] - img[:, :-1, :-1]
    return np.mean(dx**2 + dy**2, axis=(1, 2, 3))


def gradient_energy(img: np.ndarray) -> float:
    """Mean squared gradient magnitude, a sharpness number.

    Forward differences dx, dy on the (H-1) x (W-1) pixels that have both;
    returns the mean of dx^2 + dy^2 over pixels and channels (batch mean for
    batches). 0 for a constant image; blurring lowers it.
    """
    return float(np.mean(_gradient_energy_per_image(_as_batch(img))))


def sharpness_ratio(output: np.ndarray, reference: np.ndarray) -> float:
    """gradient_energy(output) / gradient_energy(reference).

    About 1 when `output` keeps the reference's high frequencies (flow
    upsampling), below 1 when it is blurrier (pixel-space upsampling, a VAE).
    For batches, the ratio of the batch-mean energies.

    Raises:
      ValueError: if the reference has no gradient (constant image).
    """
    reference_energy = gradient_energy(reference)
    if reference_energy == 0.0:
        raise ValueError("sharpness_ratio: the reference image is constant (zero gradient energy)")
    return gradient_energy(output) / reference_energy


def endpoint_error(
    coords_a: np.ndarray,
    coords_b: np.ndarray,
    mask: np.ndarray | None = None,
    align_corners: bool = False,
) -> float:
    """Mean Euclidean distance in pixels between two coordinate fields.

    Args:
      coords_a, coords_b: [H, W, 2] or [B, H, W, 2] normalized (x, y).
      mask: optional weights [H, W], [H, W, 1], [B, H, W] or [B, H, W, 1]
        (e.g. ground-truth visibility); the error is the weighted mean.
      align_corners: the coordinates' convention (decides the pixel scale).

    Returns:
      End-point error in pixels; for a batch, the mean of per-image errors.

    Raises:
      ValueError: on shape mismatch, or if an image's mask sums to zero.
    """
    a = coordinates.field_to_pixels(coords_a, align_corners)
    b = coordinates.field_to_pixels(coords_b, align_corners)
    if a.shape != b.shape:
        raise ValueError(f"coordinate fields differ in shape: {a.shape} vs {b.shape}")
    if a.ndim == 3:
        a, b = a[None], b[None]
    error = np.linalg.norm(a - b, axis=-1)  # [B, H, W]
    if mask is None:
        return float(np.mean(error))
    weights = np.asarray(mask, dtype=np.float64)
    if weights.shape[-1] == 1 and weights.ndim in (3, 4):
        weights = weights[..., 0]
    weights = np.broadcast_to(weights, error.shape)
    totals = weights.sum(axis=(1, 2))
    if np.any(totals == 0):
        raise ValueError(f"endpoint_error: mask is all zero for batch index {int(np.argmin(totals))}")
    return float(np.mean((weights * error).sum(axis=(1, 2)) / totals))


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a random positive outscores a random negative.

    Computed from ranks (Mann-Whitney U), ties counting one half, so it is exact
    for any number of ties.

    Args:
      scores: any shape; higher means "more likely positive".
      labels: the same shape, truthy for positives.

    Returns:
      AUC in [0, 1]; 0.5 for scores that carry no information.

    Raises:
      ValueError: shapes differ, or there is no positive or no negative.
    """
    scores = np.asarray(scores, np.float64).ravel()
    labels = np.asarray(labels).astype(bool).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"roc_auc: {scores.shape[0]} scores but {labels.shape[0]} labels")
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        raise ValueError(f"roc_auc needs positives and negatives, got {positives} and {negatives}")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = scores[order]
    # Average rank (1-based) over each run of equal scores.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    u = ranks[labels].sum() - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))
