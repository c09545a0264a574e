"""Expression editing (paper 4.1, Algorithm 1), and with confidence.

Algorithm 1: the direction `d = mean z(target label) - mean z(source label)`
comes from the training images' latent means saved with the checkpoint
(`latent_stats`); the source's latent `z_s = mu(E(x_s))` moves along it,
`z_k = z_s + f_k * d`, and each step's output is `S(x_s, D(z_k, x_s))`.
Factors below 0 subdue the expression, above 1 exaggerate it.

Not in the paper (`EditRule`, README: values the paper lost): the field may be
the change the direction makes, `D(z_k, x_s) - D(z_s, x_s) + identity`
(factor 0 then returns the source itself, not its reconstruction), and may be
averaged with the mirrored source's field mirrored back (a symmetric face
gets a symmetric edit). The direction itself may be fitted to the training
people's landmarks (`fvae_tf.edit.direction_fit`) and saved with the run
(`fvae_tf.edit.fitted_directions`).

"With confidence" (paper 3.2, Table 1): several photos of one person are
each warped toward the same latent and blended per pixel by their
normalized confidences `M(x_n, z)`, so a region one photo lacks (teeth
behind closed lips) comes from another.

Photos (detection, alignment, paste-back, pictures) are `fvae_tf.edit.photo`.

Images are float32 in [-1, 1], NHWC, at the model's resolution unless said;
coordinates are normalized, align_corners=False.
"""

import os
import pathlib
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from fvae_tf import errors
from fvae_tf.model.fvae import FVAE, ConfidenceModel
from fvae_tf.train import checkpoints, latent_stats
from fvae_tf.train.latent_stats import LatentStats
from fvae_tf.warp import flow_upsampling, sampler

# Added to every confidence before normalizing, so all-zero confidences
# blend evenly instead of dividing by zero.
CONFIDENCE_EPSILON = 1e-6


class EditingError(errors.ActionableError):
    """A run directory that cannot drive editing; the message says what to do."""


class EditingModel(NamedTuple):
    """What Algorithm 1 needs from a training run."""

    fvae: FVAE
    stats: LatentStats


class EditRule(NamedTuple):
    """How Algorithm 1's latents become fields; the defaults are the paper's reading."""

    residual: bool = False  # D(z_k, x_s) - D(z_s, x_s) + identity instead of D(z_k, x_s)
    mirror: bool = False  # average with the mirrored source's field, mirrored back


class Edit(NamedTuple):
    """Algorithm 1's outputs for K factors and B sources."""

    factors: np.ndarray  # [K]
    latents: tf.Tensor  # [K, B, latent], z_k = z_s + f_k * d
    coords: tf.Tensor  # [K, B, H, W, 2], D(z_k, x_s) (or as `EditRule` says)
    warped: tf.Tensor  # [K, B, H, W, 3], S(x_s, coords)


class Blend(NamedTuple):
    """N sources warped toward K latents and blended by normalized weights."""

    images: tf.Tensor  # [K, H', W', 3], sum_n weights * warped
    weights: tf.Tensor  # [K, N, H', W', 1], summing to 1 over N
    warped: tf.Tensor  # [K, N, H', W', 3], S(x_n, D(z_k, x_n)), flow-upsampled to H' if given
    coords: tf.Tensor  # [K, N, H, W, 2], D(z_k, x_n) at the model's resolution


def load_fvae(run_dir: str | os.PathLike) -> FVAE:
    """The best FVAE of a training run.

    Raises:
      checkpoints.CheckpointError: not a run directory, no checkpoint yet, or a
        checkpoint that does not fit the run's config.
      EditingError: a VAE run.
    """
    model = checkpoints.load_model(run_dir)
    if not isinstance(model, FVAE):
        raise EditingError(f"{run_dir} holds a VAE run; editing and interpolation need an "
                           "FVAE run (a run of model kind fvae)")
    return model


def load_editing_model(run_dir: str | os.PathLike) -> EditingModel:
    """The best FVAE of a training run and its latent statistics.

    Raises:
      checkpoints.CheckpointError, EditingError: see `load_fvae`; EditingError
        also for latent statistics missing or of another model.
    """
    run_dir = pathlib.Path(run_dir)
    model = load_fvae(run_dir)
    path = run_dir / latent_stats.FILENAME
    if not path.is_file():
        raise EditingError(f"{path} is missing; training writes it when a run ends (run "
                           "experiments.train on this workdir again to finish it)")
    stats = latent_stats.load(path)
    if stats.means.shape[-1] != model.config.latent_dim:
        raise EditingError(f"{path} holds {stats.means.shape[-1]}-dim latents but the model's "
                           f"are {model.config.latent_dim}-dim; it belongs to another run")
    return EditingModel(model, stats)


def edit_factors(strength: float, steps: int) -> np.ndarray:
    """Algorithm 1's factors `strength * k / (steps - 1)`, k = 0..steps-1.

    Returns:
      float32 [steps], from 0 to `strength`; [strength] when steps is 1.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if steps == 1:
        return np.array([strength], np.float32)
    return (strength * np.arange(steps) / (steps - 1)).astype(np.float32)


def edit_latents(z_source: tf.Tensor, direction: np.ndarray | tf.Tensor,
                 factors: np.ndarray) -> tf.Tensor:
    """`z_k = z_s + f_k * d`: [B, latent], [latent], [K] -> [K, B, latent]."""
    z_source = tf.convert_to_tensor(z_source, tf.float32)
    factors = tf.constant(factors, tf.float32)[:, None, None]
    return z_source[None] + factors * tf.convert_to_tensor(direction, tf.float32)


def _fields(fvae: FVAE, sources: tf.Tensor, direction: np.ndarray | tf.Tensor,
            factors: np.ndarray, residual: bool) -> tuple[tf.Tensor, tf.Tensor]:
    """Latents [K, B, latent] and fields [K, B, H, W, 2] of one orientation."""
    z_source = fvae.encode(sources)
    latents = edit_latents(z_source, direction, factors)
    num_factors, batch = latents.shape[0], sources.shape[0]
    tiled = tf.tile(sources, [num_factors, 1, 1, 1])  # row k * B + b is source b
    coords = fvae.decode_flow(tf.reshape(latents, [num_factors * batch, -1]), tiled)
    coords = tf.reshape(coords, [num_factors, batch, *coords.shape[1:]])
    if residual:
        reconstruction = fvae.decode_flow(z_source, sources)
        identity = sampler.identity_grid(*sources.shape[1:3])
        coords = coords - (reconstruction - identity)[None]
    return latents, coords


def edit_fields(fvae: FVAE, sources: tf.Tensor, direction: np.ndarray | tf.Tensor,
                factors: Sequence[float], rule: EditRule = EditRule()
                ) -> tuple[tf.Tensor, tf.Tensor]:
    """Algorithm 1's latents and fields for a batch of sources (differentiable in d).

    Args:
      fvae: a trained FVAE.
      sources: [B, H, W, 3] aligned faces at the model's resolution.
      direction: [latent], e.g. `LatentStats.direction(source, target)`.
      factors: K scalars.
      rule: `EditRule`; mirroring mirrors the source, encodes it, moves its
        latent along the same d and mirrors the field back (x negated).

    Returns:
      (latents [K, B, latent] of the sources as given, coords [K, B, H, W, 2]).
    """
    sources = tf.convert_to_tensor(sources, tf.float32)
    factors = np.asarray(factors, np.float32)
    latents, coords = _fields(fvae, sources, direction, factors, rule.residual)
    if rule.mirror:
        _, mirrored = _fields(fvae, sources[:, :, ::-1], direction, factors, rule.residual)
        coords = 0.5 * (coords + mirror_field(mirrored))
    return latents, coords


def mirror_field(coords: tf.Tensor) -> tf.Tensor:
    """The field of a mirrored image, mirrored back: [..., H, W, 2] normalized coordinates.

    Flips W and negates x, so a field computed on `image[:, ::-1]` applies to `image`.
    """
    return coords[..., ::-1, :] * [-1.0, 1.0]


def edit(fvae: FVAE, sources: tf.Tensor, direction: np.ndarray,
         factors: Sequence[float], rule: EditRule = EditRule()) -> Edit:
    """Algorithm 1 for a batch of sources.

    Args:
      fvae: a trained FVAE.
      sources: [B, H, W, 3] aligned faces at the model's resolution.
      direction: [latent], e.g. `LatentStats.direction(source, target)`.
      factors: K scalars; 0 reproduces the source's own reconstruction (the
        source itself under a residual rule).
      rule: `EditRule` (default: the paper's).

    Returns:
      The latents, fields and warped images for every factor.
    """
    sources = tf.convert_to_tensor(sources, tf.float32)
    latents, coords = edit_fields(fvae, sources, direction, factors, rule)
    num_factors = latents.shape[0]
    flat = tf.reshape(coords, [-1, *coords.shape[2:]])
    warped = sampler.bilinear_sample(tf.tile(sources, [num_factors, 1, 1, 1]), flat)
    warped = tf.reshape(warped, [num_factors, -1, *sources.shape[1:]])
    return Edit(np.asarray(factors, np.float32), latents, coords, warped)


def normalized_weights(confidence: tf.Tensor, prior: tf.Tensor | None = None) -> tf.Tensor:
    """Per-pixel blend weights `p_n (c_n + eps) / sum_m p_m (c_m + eps)`.

    Args:
      confidence: [K, N, H, W, 1] confidences M(x_n, z_k) in (0, 1).
      prior: [K, N] non-negative weight of each source (e.g. interpolation's
        share of each source's latent), not all zero; None weighs them alike.

    Returns:
      [K, N, H, W, 1], summing to 1 over N at every pixel.
    """
    weights = tf.convert_to_tensor(confidence, tf.float32) + CONFIDENCE_EPSILON
    if prior is not None:
        weights *= tf.convert_to_tensor(prior, tf.float32)[:, :, None, None, None]
    return weights / tf.reduce_sum(weights, axis=1, keepdims=True)


def blend(fvae: FVAE, mask_model: ConfidenceModel | None, sources: tf.Tensor,
          latents: tf.Tensor, prior: tf.Tensor | None = None,
          sources_hr: tf.Tensor | None = None, source_frames: tf.Tensor | None = None) -> Blend:
    """Warps every source toward every latent and blends them by confidence.

    Args:
      fvae: a trained FVAE.
      mask_model: its trained confidence model M; None blends by `prior` alone
        (equal confidences).
      sources: [N, H, W, 3] at the model's resolution.
      latents: [K, latent].
      prior: [K, N], see `normalized_weights`.
      sources_hr: [N, H', W', 3] the same faces at high resolution: the fields
        are flow-upsampled to sample them and the confidences resized
        bilinearly, so the blend comes out at H' x W'.
      source_frames: [N, H, W, 1] each source crop's photo frame
        (`alignment.photo_coverage`), for `ConfidenceModel.frame_factor`.

    Returns:
      The blends and their parts.
    """
    sources = tf.convert_to_tensor(sources, tf.float32)
    latents = tf.convert_to_tensor(latents, tf.float32)
    num_latents, num_sources = latents.shape[0], sources.shape[0]
    # Row k * N + n pairs latent k with source n.
    flat_latents = tf.repeat(latents, num_sources, axis=0)
    flat_sources = tf.tile(sources, [num_latents, 1, 1, 1])
    coords = fvae.decode_flow(flat_latents, flat_sources)
    samples = sources if sources_hr is None else tf.convert_to_tensor(sources_hr, tf.float32)
    warped = flow_upsampling.warp(tf.tile(samples, [num_latents, 1, 1, 1]), coords)
    size = tuple(warped.shape[1:3])
    if mask_model is None:
        confidence = tf.ones([num_latents * num_sources, *size, 1])
    else:
        confidence = mask_model.confidence(flat_sources, flat_latents)
        if source_frames is not None:
            confidence *= mask_model.frame_factor(
                coords, tf.tile(source_frames, [num_latents, 1, 1, 1]))
        confidence = tf.image.resize(confidence, size)
    split = [num_latents, num_sources]
    warped = tf.reshape(warped, split + list(warped.shape[1:]))
    weights = normalized_weights(tf.reshape(confidence, split + list(confidence.shape[1:])),
                                 prior)
    coords = tf.reshape(coords, split + list(coords.shape[1:]))
    return Blend(tf.reduce_sum(weights * warped, axis=1), weights, warped, coords)


def edit_with_confidence(fvae: FVAE, mask_model: ConfidenceModel, sources: tf.Tensor,
                         direction: np.ndarray, factors: Sequence[float],
                         sources_hr: tf.Tensor | None = None,
                         source_frames: tf.Tensor | None = None) -> Blend:
    """Algorithm 1 from several photos of one person, blended by confidence.

    The latent moves from the first photo's, `z_k = mu(E(x_1)) + f_k * d`;
    every photo is warped toward each `z_k` and the warps are blended by
    their normalized confidences `M(x_n, z_k)` (equal priors). With one photo
    this is `edit`.

    Args:
      fvae, mask_model: a trained FVAE and its confidence model.
      sources: [N, H, W, 3] aligned photos of one person; the first is edited.
      direction: [latent].
      factors: K scalars.
      sources_hr, source_frames: optional, see `blend`.

    Returns:
      K blended images and their parts.
    """
    sources = tf.convert_to_tensor(sources, tf.float32)
    z_first = fvae.encode(sources[:1])
    latents = edit_latents(z_first, direction, np.asarray(factors, np.float32))[:, 0]
    return blend(fvae, mask_model, sources, latents, sources_hr=sources_hr,
                 source_frames=source_frames)


def to_float(image_uint8: np.ndarray) -> tf.Tensor:
    """uint8 [..., 3] in [0, 255] -> float32 in [-1, 1]."""
    return tf.convert_to_tensor(np.asarray(image_uint8), tf.float32) / 127.5 - 1.0
