"""Tests for the editing direction fitted to landmarks (fvae_tf.edit.direction_fit)."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import TINY_SIZE, random_faces, random_models, write_tiny_dataset
from fvae_tf.data import records
from fvae_tf.edit import direction_fit, editing
from fvae_tf.face_template import canonical_template
from fvae_tf.model import losses
from fvae_tf.warp import sampler


@pytest.fixture(scope="module")
def fvae():
    return random_models()[0]


def _landmarks(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.6, 0.6, (n, 68, 2)).astype(np.float32)


def test_fitting_loss_and_its_gradient_in_the_direction(fvae):
    # The loss is the factor-1 edit's landmark error, and its gradient in d
    # (through the mirrored and residual fields) matches finite differences.
    faces = random_faces(3, seed=1)
    source, target = _landmarks(3, 2), _landmarks(3, 3)
    direction = np.random.default_rng(4).normal(0, 1, fvae.config.latent_dim).astype(np.float32)
    rule = editing.EditRule(residual=True, mirror=True)
    loss = direction_fit.fitting_loss(fvae, faces, source, target, direction, rule)
    coords = editing.edit(fvae, faces, direction, [1.0], rule).coords[0]
    np.testing.assert_allclose(loss, losses.landmark_supervision(coords, target, source),
                               rtol=1e-5)
    theoretical, numerical = tf.test.compute_gradient(
        lambda d: direction_fit.fitting_loss(fvae, faces, source, target, d, rule),
        [tf.constant(direction)], delta=1e-2)
    assert np.abs(numerical[0]).max() > 1e-2  # d moves the landmarks' readings
    # Finite differences in float32: within a tenth of the largest component.
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=0.1 * np.abs(numerical[0]).max())


def test_fitting_lowers_the_landmark_error_where_d_matters(fvae):
    # Target landmarks drawn by a known direction: the fit starts elsewhere and
    # must come closer to them than it started, and report each step.
    faces = random_faces(4, seed=8)
    rule = editing.EditRule()
    true = np.random.default_rng(9).normal(0, 3, fvae.config.latent_dim).astype(np.float32)
    source = _landmarks(4, 10)
    coords = editing.edit(fvae, faces, true, [1.0], rule).coords[0]
    # Target landmark t reads source landmark s: put s where the true field sends t.
    target = _landmarks(4, 11)
    source = sampler.bilinear_sample(coords, tf.constant(target)[:, :, None]).numpy()[:, :, 0]
    initial = np.zeros_like(true)
    seen = []
    fitted = direction_fit.fit_direction(fvae, faces, source, target, initial, rule, steps=200,
                                         learning_rate=0.1,
                                         progress=lambda step, value: seen.append(value))
    before = direction_fit.fitting_loss(fvae, faces, source, target, initial, rule)
    after = direction_fit.fitting_loss(fvae, faces, source, target, fitted, rule)
    assert len(seen) == 200
    assert float(after) < 0.5 * float(before)
    with pytest.raises(ValueError, match="steps must be at least 1"):
        direction_fit.fit_direction(fvae, faces, source, target, initial, steps=0)


def test_pose_free_targets_are_blind_to_the_head_motion_between_the_photos():
    # Each target photo's head rotated, scaled and shifted differently: the
    # targets the fit sees do not change, and a photo with the source's
    # landmarks is the source.
    source, target = _landmarks(3, 13), _landmarks(3, 14)
    rng = np.random.default_rng(15)
    moved = []
    for points in target:
        angle, scale = rng.uniform(-0.3, 0.3), rng.uniform(0.8, 1.2)
        rotation = scale * np.array([[np.cos(angle), -np.sin(angle)],
                                     [np.sin(angle), np.cos(angle)]])
        moved.append(points @ rotation.T + rng.uniform(-0.1, 0.1, 2))
    np.testing.assert_allclose(direction_fit.pose_free_targets(source, np.stack(moved)),
                               direction_fit.pose_free_targets(source, target), atol=1e-5)
    np.testing.assert_allclose(direction_fit.pose_free_targets(source, source), source,
                               atol=1e-6)


def test_fit_on_pairs_reads_the_stored_pairs_and_ignores_the_head_motion(fvae, tiny_dataset,
                                                                        capsys):
    # The tiny dataset's smile is its neutral face shifted by -0.05: a head
    # motion only. training_pairs returns the landmarks as stored; fit_on_pairs
    # fits pose-free targets (there: the sources themselves), so its direction
    # is the one fitted to the sources, not to the shifted landmarks, and a
    # rotation, scaling and shift of every target changes nothing.
    sources, source, target = direction_fit.training_pairs(tiny_dataset[0], "neutral", "smile",
                                                           fvae.config.image_size)
    assert len(sources) == 4 and sources.shape[1] == fvae.config.image_size
    np.testing.assert_allclose(source, np.broadcast_to(canonical_template(), source.shape),
                               atol=1e-6)
    np.testing.assert_allclose(target, source - 0.05, atol=1e-6)
    initial = np.random.default_rng(17).normal(0, 1, fvae.config.latent_dim).astype(np.float32)
    fitted = direction_fit.fit_on_pairs(fvae, sources, source, target, initial, "neutral",
                                        "smile")
    assert "fitting the neutral->smile direction on 4 pairs 300/300" in capsys.readouterr().err
    angle = 0.2
    rotation = 1.1 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = direction_fit.fit_on_pairs(fvae, sources, source, target @ rotation.T + 0.03,
                                       initial, "neutral", "smile")
    on_sources = direction_fit.fit_direction(fvae, sources, source, source, initial)
    raw = direction_fit.fit_direction(fvae, sources, source, target, initial)
    np.testing.assert_allclose(moved, fitted, atol=1e-4)
    # Both reach the sources' own minimum, d = 0 under the residual rule, up to
    # Adam's jitter (steps of 0.02) around a minimum where the error has a kink.
    np.testing.assert_allclose(fitted, on_sources, atol=1e-2)
    np.testing.assert_allclose(on_sources, 0.0, atol=1e-2)
    assert np.abs(raw - on_sources).max() > 1.0  # the shifted targets would pull d elsewhere


def test_training_pairs_refuse_a_dataset_of_another_crop_size(tmp_path):
    larger = tmp_path / "larger_crops"
    write_tiny_dataset(larger, train_ids=1, val_ids=1, size=2 * TINY_SIZE)
    with pytest.raises(records.RecordsError) as error:
        direction_fit.training_pairs(larger, "neutral", "smile", TINY_SIZE)
    assert str(error.value) == (f"{larger}: its crops are {2 * TINY_SIZE} px, the model's "
                                f"{TINY_SIZE} px; build the dataset at the model's size")
    with pytest.raises(records.RecordsError, match="no training pair goes from smile to "
                       "scream"):
        direction_fit.training_pairs(larger, "smile", "scream", 2 * TINY_SIZE)
