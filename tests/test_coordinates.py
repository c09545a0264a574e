"""Tests for fvae_tf.warp.coordinates: the normalized <-> pixel convention."""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from fvae_tf.warp import coordinates, sampler


def _linspace_grid(h: int, w: int) -> np.ndarray:
    """align_corners=True identity: corner pixel centres at -1 and +1."""
    xs, ys = np.linspace(-1, 1, w), np.linspace(-1, 1, h)
    return np.stack(np.meshgrid(xs, ys), axis=-1)


def _centre_grid(h: int, w: int) -> np.ndarray:
    """align_corners=False identity, written out: centre i of n at (2i + 1) / n - 1."""
    xs = (2 * np.arange(w) + 1) / w - 1
    ys = (2 * np.arange(h) + 1) / h - 1
    return np.stack(np.meshgrid(xs, ys), axis=-1)


@pytest.mark.parametrize("align_corners", [False, True])
def test_field_to_pixels_maps_identity_to_pixel_centres(align_corners):
    h, w = 5, 7
    coords = _linspace_grid(h, w) if align_corners else _centre_grid(h, w)
    px = coordinates.field_to_pixels(coords, align_corners)
    assert px.dtype == np.float64
    np.testing.assert_allclose(px[..., 0], np.tile(np.arange(w), (h, 1)), atol=1e-12)
    np.testing.assert_allclose(px[..., 1], np.tile(np.arange(h)[:, None], (1, w)), atol=1e-12)
    if not align_corners:  # outer edge of the image is half a pixel outside the first centre
        assert coordinates.field_to_pixels(np.full((1, 1, 2), -1.0))[0, 0, 0] == -0.5
    with pytest.raises(ValueError, match=r"\[..., H, W, 2\]"):
        coordinates.field_to_pixels(np.zeros((4, 4, 3)))


@pytest.mark.parametrize("align_corners", [False, True])
def test_sampler_identity_grid_lands_on_pixel_centres(align_corners):
    h, w = 6, 9
    grid = sampler.identity_grid(h, w, align_corners).numpy()
    np.testing.assert_allclose(coordinates.field_to_pixels(grid, align_corners),
                               np.stack(np.meshgrid(np.arange(w), np.arange(h)), axis=-1),
                               atol=1e-5)
    np.testing.assert_allclose(grid[0, :, 0], coordinates.pixel_centres(w, align_corners),
                               atol=1e-6)
    np.testing.assert_allclose(grid[:, 0, 1], coordinates.pixel_centres(h, align_corners),
                               atol=1e-6)


@pytest.mark.parametrize("align_corners", [False, True])
def test_round_trip(align_corners):
    rng = np.random.default_rng(0)
    normalized = rng.uniform(-1.5, 1.5, (100, 2))
    size = np.array([13.0, 8.0])  # (W, H)
    pixels = coordinates.to_pixels(normalized, size, align_corners)
    np.testing.assert_allclose(coordinates.to_normalized(pixels, size, align_corners), normalized,
                               atol=1e-12)
    pixels = rng.uniform(-3, 20, (100, 2))
    np.testing.assert_allclose(
        coordinates.to_pixels(coordinates.to_normalized(pixels, size, align_corners), size,
                              align_corners), pixels, atol=1e-12)


def test_hand_values_and_dtype():
    # Size 4, align_corners=False: centres at -0.75, -0.25, 0.25, 0.75; the edges at +-1.
    np.testing.assert_array_equal(coordinates.pixel_centres(4), [-0.75, -0.25, 0.25, 0.75])
    np.testing.assert_array_equal(coordinates.to_pixels([-1.0, 1.0], 4), [-0.5, 3.5])
    # align_corners=True: the corners are the centres.
    np.testing.assert_array_equal(coordinates.to_pixels([-1.0, 1.0], 4, True), [0.0, 3.0])
    np.testing.assert_array_equal(coordinates.pixel_centres(1, True), [-1.0])
    assert coordinates.pixel_centres(4, dtype=np.float32).dtype == np.float32
    assert coordinates.to_pixels(np.zeros(2, np.float32), 4).dtype == np.float32


@pytest.mark.parametrize("align_corners", [False, True])
def test_tensorflow_agrees_with_numpy_and_snaps_centres(align_corners):
    rng = np.random.default_rng(1)
    coords = rng.uniform(-1.2, 1.2, (50,)).astype(np.float32)
    np.testing.assert_allclose(coordinates.to_pixels_tf(tf.constant(coords), 11, align_corners),
                               coordinates.to_pixels(coords.astype(np.float64), 11.0,
                                                     align_corners), atol=1e-9)
    # float32 centres come out exactly on the integers.
    centres = coordinates.pixel_centres(11, align_corners, dtype=np.float32)
    np.testing.assert_array_equal(coordinates.to_pixels_tf(tf.constant(centres), 11,
                                                           align_corners), np.arange(11.0))


@pytest.mark.parametrize("align_corners", [False, True])
def test_sampler_reads_where_to_pixels_says(align_corners):
    """The sampler at a field equals cv2.remap at `to_pixels` of it (an independent warp)."""
    rng = np.random.default_rng(2)
    image = rng.uniform(0, 1, (12, 10, 3)).astype(np.float32)
    # Keep the points inside the image, where the border rules do not matter.
    low = coordinates.to_normalized(np.zeros(2), np.array([10, 12]), align_corners)
    high = coordinates.to_normalized(np.array([9.0, 11.0]), np.array([10, 12]), align_corners)
    coords = rng.uniform(low, high, (7, 8, 2)).astype(np.float32)
    ours = sampler.bilinear_sample(image[None], coords[None], align_corners=align_corners)[0]
    maps = coordinates.to_pixels(coords.astype(np.float64), np.array([10.0, 12.0]),
                                 align_corners).astype(np.float32)
    theirs = cv2.remap(image, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    np.testing.assert_allclose(ours.numpy(), theirs, atol=2e-3)
