"""Loss tests: closed forms, Monte Carlo, and hand-computed cases."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from fvae_tf.model import losses
from fvae_tf.warp import sampler


def test_kl_matches_per_dimension_closed_form():
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(4, 6))
    log_var = rng.normal(size=(4, 6))
    sd = np.exp(0.5 * log_var)
    # KL(N(m, s^2) || N(0, 1)) = log(1/s) + (s^2 + m^2) / 2 - 1/2, per dimension.
    want = np.mean(np.sum(-np.log(sd) + (sd**2 + mu**2) / 2 - 0.5, axis=1))
    assert losses.kl_divergence(tf.constant(mu), tf.constant(log_var)).numpy() == pytest.approx(want)


def test_kl_matches_monte_carlo():
    rng = np.random.default_rng(1)
    mu = np.array([[0.5, -1.0, 2.0]])
    log_var = np.array([[0.3, -0.7, 0.1]])
    sd = np.exp(0.5 * log_var)
    z = mu + sd * rng.normal(size=(200_000, 3))
    log_ratio = (stats.norm.logpdf(z, mu, sd) - stats.norm.logpdf(z)).sum(axis=1)
    estimate, stderr = log_ratio.mean(), log_ratio.std() / np.sqrt(len(z))
    got = losses.kl_divergence(tf.constant(mu), tf.constant(log_var)).numpy()
    assert abs(got - estimate) < 4 * stderr


def _coords_with_displacement(displacement):
    h, w = displacement.shape[:2]
    return (sampler.identity_grid(h, w).numpy() + displacement)[None].astype(np.float32)


def test_coherence_hand_computed_3x3_flat_target():
    # Only the centre moves, by (0.3, 0.4) (norm 0.5). With a 5x5 window every
    # other pixel of a 3x3 image is its neighbour, and every pair is counted
    # once from each side: 8 pairs * 2 * 0.5 = 8, with weight 1 on a flat target.
    displacement = np.zeros((3, 3, 2))
    displacement[1, 1] = [0.3, 0.4]
    target = np.zeros((1, 3, 3, 3), np.float32)
    got = losses.flow_coherence(_coords_with_displacement(displacement), target, sigma=0.1, window=5)
    assert got.numpy() == pytest.approx(8.0, rel=1e-5)


def test_coherence_hand_computed_3x3_with_edge():
    # The left column moves by (0.6, 0.8) (norm 1) and is also a different
    # colour: squared colour distance 0.25 to the rest; sigma 0.25 gives
    # w = exp(-0.25 / (2 * 0.0625)) = exp(-2). 3 x 6 crossing pairs, both ways.
    displacement = np.zeros((3, 3, 2))
    displacement[:, 0] = [0.6, 0.8]
    target = np.zeros((1, 3, 3, 3), np.float32)
    target[0, :, 0, 0] = 0.5
    got = losses.flow_coherence(_coords_with_displacement(displacement), target, sigma=0.25, window=5)
    assert got.numpy() == pytest.approx(36 * np.exp(-2.0), rel=1e-5)
    # A 3x3 window reaches only the adjacent column: (row 0: 2) + (row 1: 3)
    # + (row 2: 2) = 7 crossing pairs, both ways.
    got3 = losses.flow_coherence(_coords_with_displacement(displacement), target, sigma=0.25, window=3)
    assert got3.numpy() == pytest.approx(14 * np.exp(-2.0), rel=1e-5)


def test_identity_and_constant_shift_cost_nothing():
    target = np.random.default_rng(2).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    coords = np.tile(_coords_with_displacement(np.full((16, 16, 2), 0.2)), [2, 1, 1, 1])
    assert losses.flow_coherence(coords, target, sigma=0.1).numpy() == pytest.approx(0.0, abs=1e-3)


def test_discontinuity_on_colour_edge_costs_far_less_than_in_flat_region():
    size = 32
    target = np.zeros((1, size, size, 3), np.float32)
    target[0, :, size // 2:] = 0.8  # a vertical colour edge at the middle
    displacement = np.zeros((size, size, 2))
    on_edge = displacement.copy()
    on_edge[:, size // 2:, 0] = 0.1
    in_flat = displacement.copy()
    in_flat[:, size // 4:, 0] = 0.1  # same jump, a quarter in, where colour is flat
    cost_edge = losses.flow_coherence(_coords_with_displacement(on_edge), target, 0.1).numpy()
    cost_flat = losses.flow_coherence(_coords_with_displacement(in_flat), target, 0.1).numpy()
    assert cost_edge < 0.01 * cost_flat


def test_coherence_gradient_matches_numerical():
    rng = np.random.default_rng(3)
    coords = tf.constant(_coords_with_displacement(rng.normal(0, 0.1, (4, 5, 2))), tf.float64)
    target = tf.constant(rng.uniform(-1, 1, (1, 4, 5, 3)), tf.float64)
    theoretical, numerical = tf.test.compute_gradient(
        lambda c: losses.flow_coherence(c, target, sigma=0.5), [coords], delta=1e-6)
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-5)


def test_reconstruction_l1_sums_pixels_and_averages_batch():
    target = np.zeros((2, 2, 2, 3), np.float32)
    output = np.full((2, 2, 2, 3), 0.5, np.float32)
    output[1] = -0.25
    assert losses.reconstruction_l1(target, output).numpy() == pytest.approx((6 + 3) / 2)


def test_mask_label_and_loss_hand_numbers():
    target = np.array([[[[0.5, 0.2, -0.3], [0.0, 0.0, 0.0]]]], np.float32)
    warped = np.array([[[[0.0, 0.0, 0.0], [2.0, 2.0, 2.0]]]], np.float32)
    label = losses.mask_label(target, warped, norm=6.0).numpy()
    # L1 distances 1.0 and 6.0: labels 1 - 1/6 and 0.
    np.testing.assert_allclose(label[0, 0, :, 0], [5 / 6, 0.0], rtol=1e-6)
    confidence = np.array([[[[0.8], [0.1]]]], np.float32)
    want = -(5 / 6 * np.log(0.8) + 1 / 6 * np.log(0.2)) - np.log(0.9)
    assert losses.mask_loss(confidence, label).numpy() == pytest.approx(want, rel=1e-5)


def test_total_loss_weights():
    assert losses.total_loss(1.0, 2.0, 3.0, beta=0.5, flow_weight=10.0) == pytest.approx(32.0)
