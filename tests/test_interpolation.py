"""Tests for interpolation (Algorithm 2) on the tiny preset."""

import numpy as np
import pytest

from conftest import random_faces, random_models
from fvae_tf.edit import interpolation
from fvae_tf.warp import flow_upsampling

Weighting = interpolation.SourceWeighting


@pytest.fixture(scope="module")
def models():
    return random_models(seed=1)


@pytest.fixture(scope="module")
def faces():
    return random_faces(2, seed=7)


def test_alphas_and_latents():
    np.testing.assert_allclose(interpolation.interpolation_alphas(5), [0, 0.25, 0.5, 0.75, 1])
    with pytest.raises(ValueError):
        interpolation.interpolation_alphas(1)
    z1, z2 = np.array([1.0, 0.0]), np.array([3.0, -2.0])
    latents = interpolation.interpolate_latents(z1, z2, np.array([0, 0.25, 1], np.float32))
    np.testing.assert_allclose(latents, [[1, 0], [1.5, -0.5], [3, -2]], atol=1e-6)


@pytest.mark.parametrize("with_mask", [True, False])
def test_endpoints_are_the_sources_own_reconstructions(models, faces, with_mask):
    fvae, mask_model = models
    result = interpolation.interpolate(fvae, faces, interpolation.interpolation_alphas(4),
                                       mask_model if with_mask else None)
    own = fvae.warp(faces, fvae.encode(faces)).numpy()
    frames = result.blend.images.numpy()
    assert frames.shape == (4, 64, 64, 3)
    np.testing.assert_allclose(frames[0], own[0], atol=1e-5)
    np.testing.assert_allclose(frames[-1], own[1], atol=1e-5)
    assert np.abs(frames[1] - own[0]).mean() > 1e-3  # the middle frames move
    np.testing.assert_allclose(result.blend.weights.numpy().sum(axis=1), 1.0, atol=1e-6)


def test_without_confidence_the_middle_frame_is_a_cross_fade_of_the_warps(models, faces):
    fvae, _ = models
    result = interpolation.interpolate(fvae, faces, interpolation.interpolation_alphas(3))
    z = fvae.encode(faces).numpy()
    middle = np.repeat(0.5 * (z[:1] + z[1:]), 2, axis=0)
    warped = fvae.warp(faces, middle).numpy()
    np.testing.assert_allclose(result.blend.images[1], warped.mean(axis=0), atol=1e-5)


@pytest.mark.parametrize("weighting", list(Weighting))
def test_confidence_blend_by_hand(models, faces, weighting):
    fvae, mask_model = models
    alphas = np.array([0.0, 0.3, 1.0], np.float32)
    result = interpolation.interpolate(fvae, faces, alphas, mask_model, weighting)
    z = fvae.encode(faces).numpy()
    for k, alpha in enumerate(alphas):
        zk = np.repeat(((1 - alpha) * z[0] + alpha * z[1])[None], 2, axis=0)
        warped = fvae.warp(faces, zk).numpy()
        confidence = mask_model.confidence(faces, zk).numpy()
        prior = [1 - alpha, alpha] if weighting is Weighting.LATENT_SHARE else [1.0, 1.0]
        weights = np.array(prior)[:, None, None, None] * confidence
        expected = (weights * warped).sum(axis=0) / weights.sum(axis=0)
        np.testing.assert_allclose(result.blend.images[k], expected, atol=1e-4)
    np.testing.assert_allclose(result.blend.weights.numpy().sum(axis=1), 1.0, atol=1e-6)


def test_high_resolution_endpoints_are_flow_upsampled_reconstructions(models):
    fvae, mask_model = models
    faces, faces_hr = random_faces(2, seed=8), random_faces(2, seed=8, size=128)
    result = interpolation.interpolate(fvae, faces, interpolation.interpolation_alphas(2),
                                       mask_model, sources_hr=faces_hr)
    coords = fvae.decode_flow(fvae.encode(faces), faces)
    own = flow_upsampling.warp(faces_hr, coords).numpy()
    np.testing.assert_allclose(result.blend.images, own, atol=1e-5)


def test_interpolation_takes_two_faces(models):
    fvae, _ = models
    with pytest.raises(ValueError, match="2 sources"):
        interpolation.interpolate(fvae, random_faces(3), interpolation.interpolation_alphas(2))
