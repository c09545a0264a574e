"""Tests for editing (Algorithm 1, confidence blending) on the tiny preset."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from conftest import random_faces, random_models
from fvae_tf.edit import editing
from fvae_tf.train import latent_stats
from fvae_tf.warp import sampler
from fvae_tf.expressions import EXPRESSIONS


@pytest.fixture(scope="module")
def models():
    return random_models()


def _direction(latent_dim: int, seed: int = 1) -> np.ndarray:
    """A latent step long enough to change the random models' output visibly."""
    return np.random.default_rng(seed).normal(0, 10, latent_dim).astype(np.float32)


def test_factor_zero_is_the_sources_own_reconstruction(models):
    fvae, _ = models
    faces = random_faces(2)
    result = editing.edit(fvae, faces, _direction(fvae.config.latent_dim), [0.0, 0.5, -1.0, 2.0])
    own = fvae.warp(faces, fvae.encode(faces)).numpy()
    assert result.warped.shape == (4, 2, 64, 64, 3) and result.coords.shape == (4, 2, 64, 64, 2)
    np.testing.assert_allclose(result.warped[0], own, atol=1e-5)
    for k in (1, 2, 3):  # other factors do edit
        assert np.abs(result.warped[k] - own).mean() > 1e-3
    np.testing.assert_allclose(result.warped[2, 1], fvae.warp(
        faces[1:], result.latents[2, 1:]).numpy()[0], atol=1e-5)


def test_latents_move_along_the_direction_with_any_factor(models):
    fvae, _ = models
    faces = random_faces(3, seed=2)
    direction = _direction(fvae.config.latent_dim)
    factors = [0.0, -0.5, 1.0, 1.5]
    latents = editing.edit(fvae, faces, direction, factors).latents.numpy()
    z = fvae.encode(faces).numpy()
    for k, f in enumerate(factors):
        np.testing.assert_allclose(latents[k], z + f * direction, atol=1e-6)


def test_residual_rule_subtracts_the_sources_own_field(models):
    # Residual: D(z_s + f d) - D(z_s) + identity, so factor 0 returns the source itself.
    fvae, _ = models
    faces = random_faces(2, seed=3)
    direction = _direction(fvae.config.latent_dim)
    rule = editing.EditRule(residual=True)
    result = editing.edit(fvae, faces, direction, [0.0, 1.5], rule)
    np.testing.assert_allclose(result.warped[0], faces, atol=1e-5)
    plain = editing.edit(fvae, faces, direction, [0.0, 1.5])
    identity = sampler.identity_grid(64, 64).numpy()
    np.testing.assert_allclose(result.coords[1], plain.coords[1] - plain.coords[0] + identity,
                               atol=1e-5)
    assert np.abs(result.coords[1] - plain.coords[1]).max() > 1e-3  # the model's own field counts


def test_mirror_rule_is_mirror_equivariant(models):
    # Mirroring averages a source's field with its mirror image's, mirrored back
    # (x negated): editing the mirrored photo gives the mirrored edit exactly,
    # which neither orientation alone does.
    fvae, _ = models
    faces = random_faces(2, seed=5)
    mirrored = faces[:, :, ::-1]
    direction = _direction(fvae.config.latent_dim)

    def flipped(coords):
        return coords[..., ::-1, :] * np.array([-1.0, 1.0], np.float32)

    for rule in (editing.EditRule(mirror=True), editing.EditRule(residual=True, mirror=True)):
        coords = editing.edit(fvae, faces, direction, [1.0], rule).coords.numpy()
        of_mirrored = editing.edit(fvae, mirrored, direction, [1.0], rule).coords.numpy()
        np.testing.assert_allclose(of_mirrored, flipped(coords), atol=1e-5)
    plain = editing.edit(fvae, faces, direction, [1.0]).coords.numpy()
    plain_mirrored = editing.edit(fvae, mirrored, direction, [1.0]).coords.numpy()
    assert np.abs(plain_mirrored - flipped(plain)).max() > 1e-3
    mirror = editing.edit(fvae, faces, direction, [1.0], editing.EditRule(mirror=True))
    np.testing.assert_allclose(mirror.coords, 0.5 * (plain + flipped(plain_mirrored)), atol=1e-5)


def test_edit_factors():
    np.testing.assert_allclose(editing.edit_factors(1.0, 5), [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(editing.edit_factors(-0.5, 3), [0, -0.25, -0.5])
    np.testing.assert_allclose(editing.edit_factors(1.5, 1), [1.5])
    with pytest.raises(ValueError):
        editing.edit_factors(1.0, 0)


def test_direction_on_a_toy_latent_set():
    # Toy "images" whose latent is their own pixels: the direction must be the
    # difference of the per-label means, and one step along it from the
    # neutral mean lands on the smile mean.
    neutral = np.array([[1.0, 0, 0], [3.0, 0, 2]], np.float32)
    smile = np.array([[0.0, 4, 1], [0.0, 2, 1], [3.0, 0, 1]], np.float32)
    images = np.concatenate([neutral, smile])[:, None, None, :]
    labels = np.array([EXPRESSIONS.index("neutral")] * 2 + [EXPRESSIONS.index("smile")] * 3)
    batches = tf.data.Dataset.from_tensor_slices((images, labels)).batch(2)
    stats = latent_stats.compute(lambda x: tf.reshape(x, [-1, 3]), batches, step=0)
    direction = stats.direction("neutral", "smile")
    np.testing.assert_allclose(direction, [1.0 - 2.0, 2.0 - 0.0, 1.0 - 1.0], atol=1e-6)
    moved = editing.edit_latents(stats.mean("neutral")[None], direction, [1.0, -1.0]).numpy()
    np.testing.assert_allclose(moved[0, 0], stats.mean("smile"), atol=1e-6)
    np.testing.assert_allclose(moved[1, 0], [3.0, -2.0, 1.0], atol=1e-6)
    with pytest.raises(ValueError, match="known expressions: neutral, smile"):
        stats.direction("neutral", "grin")
    with pytest.raises(ValueError, match="no training image is labelled 'scream'"):
        stats.direction("neutral", "scream")


def test_normalized_weights_sum_to_one():
    confidence = np.array([0.2, 0.6, 0.0, 0.0], np.float32).reshape(2, 2, 1, 1, 1)
    weights = editing.normalized_weights(confidence).numpy()[..., 0, 0, 0]
    np.testing.assert_allclose(weights, [[0.25, 0.75], [0.5, 0.5]], atol=1e-5)
    prior = np.array([[1.0, 0.0], [0.25, 0.75]], np.float32)
    weights = editing.normalized_weights(confidence, prior).numpy()[..., 0, 0, 0]
    np.testing.assert_array_equal(weights[0], [1.0, 0.0])
    np.testing.assert_allclose(weights[1], [0.25, 0.75], atol=1e-5)
    random = np.random.default_rng(0).uniform(0, 1, (3, 4, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(editing.normalized_weights(random).numpy().sum(axis=1), 1.0,
                               atol=1e-6)


def test_edit_with_confidence_blends_normalized_confidences(models):
    fvae, mask_model = models
    faces = random_faces(3, seed=4)
    direction = _direction(fvae.config.latent_dim)
    factors = [0.0, 1.0]
    result = editing.edit_with_confidence(fvae, mask_model, faces, direction, factors)
    assert result.images.shape == (2, 64, 64, 3) and result.weights.shape == (2, 3, 64, 64, 1)
    np.testing.assert_allclose(result.weights.numpy().sum(axis=1), 1.0, atol=1e-6)
    # By hand: z_k from the first photo, c_n = M(x_n, z_k), images = sum c_n x_n / sum c_n.
    z = fvae.encode(faces[:1]).numpy()[0] + np.array(factors)[:, None] * direction
    for k in range(2):
        zk = np.repeat(z[k:k + 1], 3, axis=0)
        warped = fvae.warp(faces, zk).numpy()
        confidence = mask_model.confidence(faces, zk).numpy()
        expected = (confidence * warped).sum(axis=0) / confidence.sum(axis=0)
        np.testing.assert_allclose(result.images[k], expected, atol=1e-4)
    # The confidences differ between photos, so the blend is not a plain mean.
    assert np.abs(result.images[1] - result.warped[1].numpy().mean(axis=0)).max() > 1e-3
    # One photo: the plain edit.
    single = editing.edit_with_confidence(fvae, mask_model, faces[:1], direction, factors)
    plain = editing.edit(fvae, faces[:1], direction, factors)
    np.testing.assert_allclose(single.images, plain.warped[:, 0], atol=1e-5)


def test_blend_weighs_each_source_by_its_photo_frame(models, monkeypatch):
    # A source whose photo ends at the crop's middle gets no weight where its
    # warp reads the part past that edge.
    fvae, mask_model = models
    monkeypatch.setattr(fvae, "config", dataclasses.replace(fvae.config, mask_frame=True))
    faces = random_faces(2, seed=6)
    frames = np.ones((2, 64, 64, 1), np.float32)
    frames[1, :, :32] = 0.0
    latents = fvae.encode(faces[:1])
    result = editing.blend(fvae, mask_model, faces, latents, source_frames=frames)
    z = np.repeat(latents.numpy(), 2, axis=0)
    coords = fvae.decode_flow(z, faces).numpy()
    plain = mask_model.mask_net((faces, z)).numpy()
    read = sampler.bilinear_sample(frames, coords, border="zeros").numpy()
    weights = plain * read + editing.CONFIDENCE_EPSILON
    np.testing.assert_allclose(result.weights[0].numpy(), weights / weights.sum(axis=0), atol=1e-5)
    past_edge = read[1, ..., 0] == 0.0
    assert past_edge.mean() > 0.3
    assert result.weights[0, 1, ..., 0].numpy()[past_edge].max() < 1e-3


def test_blend_at_high_resolution_uses_the_upsampled_flow(models):
    fvae, mask_model = models
    faces = random_faces(2, seed=5)
    faces_hr = random_faces(2, seed=5, size=128)
    latents = fvae.encode(faces)
    result = editing.blend(fvae, mask_model, faces, latents, sources_hr=faces_hr)
    assert result.images.shape == (2, 128, 128, 3)
    coords = fvae.decode_flow(latents[:1], faces[:1])
    expected = sampler.bilinear_sample(faces_hr[:1], sampler.upsample_flow(coords, (128, 128)))
    np.testing.assert_allclose(result.warped[0, 0], expected[0], atol=1e-5)
