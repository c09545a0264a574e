"""Tests for fvae_tf.metrics: skimage as the PSNR/SSIM oracle, closed forms elsewhere."""

import cv2
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from fvae_tf import metrics


def _random(shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, shape)


def _structured(h=64, w=48, seed=1):
    """A smooth colour face-like pattern plus mild noise, in [-1, 1]."""
    y, x = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    img = np.stack([np.sin(6 * x) * np.cos(4 * y), x - y, np.cos(9 * x * y)], axis=-1)
    img[h // 3:h // 2, w // 4:3 * w // 4] = 0.8  # a sharp-edged bar
    return np.clip(img + 0.05 * np.random.default_rng(seed).normal(size=img.shape), -1, 1)


def _identity_coords(h, w):
    xs = (2 * np.arange(w) + 1) / w - 1
    ys = (2 * np.arange(h) + 1) / h - 1
    return np.stack(np.meshgrid(xs, ys), axis=-1)


def test_l1_hand_numbers():
    a = np.zeros((2, 2, 3))
    b = np.full((2, 2, 3), 0.5)
    b[0, 0] = -1.5
    assert metrics.l1(a, b) == pytest.approx((9 * 0.5 + 3 * 1.5) / 12)


@pytest.mark.parametrize("data_range", [2.0, 255.0])
def test_psnr_matches_skimage(data_range):
    scale = data_range / 2
    a = _random((32, 40, 3), seed=0) * scale
    b = np.clip(a + 0.1 * scale * _random(a.shape, seed=1), -scale, scale)
    expected = peak_signal_noise_ratio(a, b, data_range=data_range)
    assert metrics.psnr(a, b, data_range) == pytest.approx(expected, abs=1e-4)


def test_psnr_structured_and_batch_is_mean_of_images():
    clean = _structured()
    noisy = [np.clip(clean + s * _random(clean.shape, seed=i), -1, 1) for i, s in enumerate((0.05, 0.3))]
    per_image = [peak_signal_noise_ratio(clean, n, data_range=2.0) for n in noisy]
    assert metrics.psnr(clean, noisy[1]) == pytest.approx(per_image[1], abs=1e-4)
    batch = metrics.psnr(np.stack([clean, clean]), np.stack(noisy))
    assert batch == pytest.approx(np.mean(per_image), abs=1e-4)


def test_psnr_closed_form():
    a = np.zeros((8, 8, 3))
    b = np.full((8, 8, 3), 0.1)  # MSE 0.01
    assert metrics.psnr(a, b) == pytest.approx(10 * np.log10(4.0 / 0.01), abs=1e-9)
    assert metrics.psnr(a, a) == np.inf


@pytest.mark.parametrize("shape", [(32, 40, 3), (24, 24), (16, 64, 1)])
def test_ssim_matches_skimage_random(shape):
    a = _random(shape, seed=2)
    b = np.clip(a + 0.5 * _random(shape, seed=3), -1, 1)
    kwargs = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=2.0)
    if len(shape) == 3:
        expected = structural_similarity(a, b, channel_axis=-1, **kwargs)
    else:
        expected = structural_similarity(a, b, **kwargs)
    assert metrics.ssim(a, b, value_range=(0.0, 2.0)) == pytest.approx(expected, abs=1e-5)


def test_ssim_matches_skimage_structured_batch():
    clean = _structured()
    blurred = cv2.GaussianBlur(clean, (5, 5), 1.5)
    shifted = np.roll(clean, 2, axis=1)
    kwargs = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                  channel_axis=-1, data_range=2.0)
    expected = [structural_similarity(clean, other, **kwargs) for other in (blurred, shifted)]
    assert metrics.ssim(clean, blurred, value_range=(0.0, 2.0)) == pytest.approx(expected[0],
                                                                                 abs=1e-5)
    batch = metrics.ssim(np.stack([clean, clean]), np.stack([blurred, shifted]),
                         value_range=(0.0, 2.0))
    assert batch == pytest.approx(np.mean(expected), abs=1e-5)


def test_ssim_of_minus_one_to_one_images_is_the_uint8_ssim():
    """[-1, 1] images score as their uint8 versions do (SSIM is not shift-invariant)."""
    clean = np.clip(_structured(), -1, 1)
    shifted = np.roll(clean, 2, axis=1)
    to_uint8 = lambda x: np.round((x + 1) * 127.5).astype(np.uint8)
    expected = structural_similarity(to_uint8(clean), to_uint8(shifted), channel_axis=-1,
                                     gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)
    quantized = lambda x: to_uint8(x) / 127.5 - 1.0
    assert metrics.ssim(quantized(clean), quantized(shifted)) == pytest.approx(expected, abs=1e-5)
    unshifted = metrics.ssim(quantized(clean), quantized(shifted), value_range=(0.0, 2.0))
    assert abs(unshifted - expected) > 1e-3


def test_ssim_identical_is_one_and_small_images_rejected():
    img = _structured()
    assert metrics.ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    assert metrics.ssim(img, np.roll(img, 3, axis=0)) < 0.9
    with pytest.raises(ValueError, match="11x11"):
        metrics.ssim(np.zeros((10, 32, 3)), np.zeros((10, 32, 3)))


def test_gradient_energy_closed_forms():
    assert metrics.gradient_energy(np.full((16, 16, 3), 0.3)) == 0.0
    ramp = np.tile(0.1 * np.arange(16.0), (16, 1))  # dx = 0.1, dy = 0
    assert metrics.gradient_energy(ramp) == pytest.approx(0.01)
    checker = np.where(np.indices((8, 8)).sum(axis=0) % 2 == 0, 1.0, -1.0)  # dx = dy = +-2
    assert metrics.gradient_energy(checker) == pytest.approx(8.0)


def test_blur_lowers_gradient_energy_and_sharpness_ratio():
    img = _structured()
    blurred = cv2.GaussianBlur(img, (7, 7), 2.0)
    assert metrics.gradient_energy(blurred) < 0.5 * metrics.gradient_energy(img)
    assert metrics.sharpness_ratio(img, img) == pytest.approx(1.0)
    assert metrics.sharpness_ratio(blurred, img) < 0.5
    with pytest.raises(ValueError, match="constant"):
        metrics.sharpness_ratio(img, np.zeros_like(img))


@pytest.mark.parametrize("align_corners", [False, True])
def test_endpoint_error_known_shift_in_pixels(align_corners):
    h, w = 12, 20
    a = _identity_coords(h, w)
    # A 3 px right, 4 px down shift: normalized per axis with that convention's scale.
    sx, sy = (2 / (w - 1), 2 / (h - 1)) if align_corners else (2 / w, 2 / h)
    b = a + np.array([3 * sx, 4 * sy])
    assert metrics.endpoint_error(a, b, align_corners=align_corners) == pytest.approx(5.0)


def test_endpoint_error_mask_and_batch():
    h, w = 8, 10
    a = _identity_coords(h, w)
    b = a.copy()
    b[:, : w // 2, 0] += 2 * (2 / w)  # left half: 2 px error, right half: 0
    assert metrics.endpoint_error(a, b) == pytest.approx(1.0)
    left = np.zeros((h, w))
    left[:, : w // 2] = 1
    assert metrics.endpoint_error(a, b, mask=left) == pytest.approx(2.0)
    assert metrics.endpoint_error(a, b, mask=(1 - left)[..., None]) == pytest.approx(0.0)
    masks = np.stack([left, np.ones((h, w))])  # different mask sums: per-image, not pooled
    batch = metrics.endpoint_error(np.stack([a, a]), np.stack([b, a]), mask=masks)
    assert batch == pytest.approx(1.0)  # mean of 2.0 and 0.0 (pooled would give 2/3)
    with pytest.raises(ValueError, match="all zero"):
        metrics.endpoint_error(a, b, mask=np.zeros((h, w)))
