"""Tests for fvae_tf.data.color_transfer against Reinhard et al.'s printed equations, and of
its TensorFlow twin against the numpy reference."""

import math

import numpy as np
import pytest
import tensorflow as tf

from fvae_tf.data import color_transfer
from fvae_tf.synthetic import faces

# The paper's printed inverse matrices (eqs. 8-9), rounded to 4 digits there.
_PAPER_LMS_TO_RGB = np.array([
    [4.4679, -3.5873, 0.1193],
    [-1.2186, 2.3809, -0.1624],
    [0.0497, -0.2439, 1.2045],
])


def _scalar_lab(r: float, g: float, b: float) -> tuple[float, float, float]:
    """Reinhard eqs. 4-6 written out per component for one pixel."""
    eps = 1.0 / 255.0
    big_l = math.log10(0.3811 * r + 0.5783 * g + 0.0402 * b + eps)
    big_m = math.log10(0.1967 * r + 0.7244 * g + 0.0782 * b + eps)
    big_s = math.log10(0.0241 * r + 0.1288 * g + 0.8444 * b + eps)
    return (
        (big_l + big_m + big_s) / math.sqrt(3),
        (big_l + big_m - 2 * big_s) / math.sqrt(6),
        (big_l - big_m) / math.sqrt(2),
    )


def _paper_lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """The paper's printed inverse (eqs. 8-9), per component."""
    l, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    x, y, z = l * math.sqrt(3) / 3, a * math.sqrt(6) / 6, b * math.sqrt(2) / 2
    log_lms = np.stack([x + y + z, x + y - z, x - 2 * y], axis=-1)
    return (10.0 ** log_lms - 1.0 / 255.0) @ _PAPER_LMS_TO_RGB.T


def test_rgb_to_lab_matches_per_component_equations():
    rng = np.random.default_rng(0)
    pixels = np.concatenate([rng.random((20, 3)), np.eye(3), np.zeros((1, 3)), np.ones((1, 3))])
    got = color_transfer.rgb_to_lab(pixels)
    want = np.array([_scalar_lab(*p) for p in pixels])
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_lab_to_rgb_matches_paper_printed_inverse():
    rng = np.random.default_rng(1)
    lab = color_transfer.rgb_to_lab(rng.random((50, 3)))
    # The printed inverse is not the exact inverse of the printed forward
    # matrix (its third row is off by up to 0.017), hence the tolerance; the
    # module inverts the forward matrix exactly (see the round-trip test).
    np.testing.assert_allclose(color_transfer.lab_to_rgb(lab), _paper_lab_to_rgb(lab), atol=1e-2)


def test_round_trip_is_exact_including_black_and_white():
    rng = np.random.default_rng(2)
    rgb = rng.random((16, 16, 3)).astype(np.float32)
    rgb[0, 0] = 0.0
    rgb[0, 1] = 1.0
    back = color_transfer.lab_to_rgb(color_transfer.rgb_to_lab(rgb))
    np.testing.assert_allclose(back, rgb, atol=1e-5, rtol=0)
    assert np.all(np.isfinite(color_transfer.rgb_to_lab(np.zeros((2, 3)))))


def test_transfer_matches_target_statistics():
    rng = np.random.default_rng(3)
    source = np.clip(0.3 + 0.1 * rng.standard_normal((32, 32, 3)), 0, 1)
    target = np.clip(rng.random((40, 24, 3)) * [0.9, 0.6, 0.4] + [0.1, 0.2, 0.3], 0, 1)
    out = color_transfer.transfer_color_float(source, target)
    out_lab, tgt_lab = color_transfer.rgb_to_lab(out), color_transfer.rgb_to_lab(target)
    np.testing.assert_allclose(out_lab.mean(axis=(0, 1)), tgt_lab.mean(axis=(0, 1)), atol=1e-9)
    np.testing.assert_allclose(out_lab.std(axis=(0, 1)), tgt_lab.std(axis=(0, 1)), atol=1e-9)
    assert out.shape == source.shape


def test_transfer_keeps_source_structure():
    # Colour transfer is an affine map per l-alpha-beta channel, so the
    # recoloured l channel is perfectly correlated with the source's.
    rng = np.random.default_rng(4)
    source, target = rng.random((16, 16, 3)), rng.random((16, 16, 3)) * 0.5
    out = color_transfer.transfer_color_float(source, target)
    l_src = color_transfer.rgb_to_lab(source)[..., 0].ravel()
    l_out = color_transfer.rgb_to_lab(out)[..., 0].ravel()
    assert np.corrcoef(l_src, l_out)[0, 1] == pytest.approx(1.0, abs=1e-9)


def test_transfer_to_itself_is_identity_uint8():
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    out = color_transfer.transfer_color(image, image)
    assert out.dtype == np.uint8
    assert np.abs(out.astype(int) - image).max() <= 1


def test_uint8_path_clips_instead_of_wrapping():
    rng = np.random.default_rng(6)
    source = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    target = rng.integers(240, 256, (24, 24, 3), dtype=np.uint8)
    out = color_transfer.transfer_color(source, target)
    unclipped = color_transfer.transfer_color_float(source / 255.0, target / 255.0) * 255
    assert unclipped.max() > 255.5  # the case exercises clipping
    assert out.dtype == np.uint8 and out.shape == source.shape
    assert out.min() >= 200  # wrap-around would turn 256+ into small numbers
    assert abs(out.mean() - target.mean()) < 3


def test_constant_source_takes_target_mean():
    source = np.full((8, 8, 3), 0.5)
    target = np.random.default_rng(7).random((8, 8, 3))
    out_lab = color_transfer.rgb_to_lab(color_transfer.transfer_color_float(source, target))
    tgt_mean = color_transfer.rgb_to_lab(target).mean(axis=(0, 1))
    np.testing.assert_allclose(out_lab, np.broadcast_to(tgt_mean, out_lab.shape), atol=1e-9)


def _faces_in_two_lights(side: int) -> tuple[np.ndarray, np.ndarray]:
    """Two synthetic faces (neutral and smile) under different colour casts, uint8."""
    identity = faces.make_identity(7)
    source = faces.render(identity, "neutral", 1.0, side).image.astype(np.float64)
    target = faces.render(identity, "smile", 1.0, side).image.astype(np.float64)
    return (np.clip(source * [1.1, 0.8, 0.6] + 20, 0, 255).astype(np.uint8),
            np.clip(target * [0.7, 0.9, 1.2], 0, 255).astype(np.uint8))


@pytest.mark.parametrize("side", [64, 256])
def test_tensorflow_transfer_equals_numpy_on_faces(side):
    source, target = _faces_in_two_lights(side)
    want = color_transfer.transfer_color(source, target)
    got = color_transfer.transfer_color_tf(tf.constant(source), tf.constant(target)).numpy()
    assert got.dtype == np.uint8
    assert np.abs(got.astype(int) - want).max() <= 1  # 1/255
    assert np.mean(got != want) < 1e-3  # and almost everywhere identical
    assert np.abs(want.astype(int) - source).mean() > 10  # the transfer did change the source


def test_tensorflow_transfer_equals_numpy_on_random_batches_and_a_constant_channel():
    rng = np.random.default_rng(5)
    sources = (rng.integers(0, 256, (3, 32, 32, 3)) * rng.uniform(0.1, 1, (3, 1, 1, 3)))
    targets = np.clip(rng.normal(128, rng.uniform(5, 60, (3, 1, 1, 3)), (3, 48, 48, 3)), 0, 255)
    sources[2, ..., 1] = 77  # a constant source channel takes the target's mean
    sources, targets = sources.astype(np.uint8), targets.astype(np.uint8)
    got = color_transfer.transfer_color_tf(tf.constant(sources), tf.constant(targets)).numpy()
    for i in range(3):  # each image of the batch against its own target only
        want = color_transfer.transfer_color(sources[i], targets[i])
        assert np.abs(got[i].astype(int) - want).max() <= 1
