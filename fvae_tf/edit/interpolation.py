"""Expression interpolation between two faces (paper 4.2, Algorithm 2).

`z_a = mu(E(x_a))` for the two sources; for each alpha,
`z = (1 - alpha) z_1 + alpha z_2`, each source is warped toward it,
`x_hat_a = S(x_a, D(z, x_a))`, and the two warps are blended per pixel by
normalized confidences `M(x_a, z)`, so a region only one source shows
(teeth) comes from that source.

How the two sources are weighed besides their confidence is a choice the
paper's text leaves open (its formula was lost):
  * `SourceWeighting.LATENT_SHARE` (default): the confidences are multiplied
    by each source's share of the latent, (1 - alpha, alpha). The endpoints
    are then exactly each source's own reconstruction (the second face does
    not bleed into the first frame, which matters when the faces are two
    people), and with equal confidences the blend is a cross-fade of the
    warps.
  * `SourceWeighting.EQUAL`: `M(x_a, z) / sum_b M(x_b, z)`, confidences alone.

Without the confidence model the blend is that cross-fade of the two warps
(LATENT_SHARE with equal confidences): the "without confidence" baseline.
"""

import enum
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from fvae_tf.edit import editing
from fvae_tf.model.fvae import FVAE, ConfidenceModel


class SourceWeighting(str, enum.Enum):
    """The prior weight of each source in the blend, before confidences."""

    LATENT_SHARE = "latent_share"  # (1 - alpha, alpha)
    EQUAL = "equal"  # (1/2, 1/2): the normalized confidences alone


class Interpolation(NamedTuple):
    """Algorithm 2's frames and their parts."""

    alphas: np.ndarray  # [K]
    latents: tf.Tensor  # [K, latent], (1 - alpha) z_1 + alpha z_2
    blend: editing.Blend  # images [K, H', W', 3], weights/warped [K, 2, ...], coords


def interpolation_alphas(steps: int) -> np.ndarray:
    """`steps` evenly spaced alphas from 0 to 1 inclusive, float32 [steps]."""
    if steps < 2:
        raise ValueError(f"interpolation needs at least 2 steps, got {steps}")
    return np.linspace(0.0, 1.0, steps, dtype=np.float32)


def interpolate_latents(z_1: tf.Tensor, z_2: tf.Tensor, alphas: np.ndarray) -> tf.Tensor:
    """`(1 - alpha) z_1 + alpha z_2`: [latent], [latent], [K] -> [K, latent]."""
    alphas = tf.constant(alphas, tf.float32)[:, None]
    return (1.0 - alphas) * tf.convert_to_tensor(z_1, tf.float32) + alphas * z_2


def source_prior(alphas: np.ndarray, weighting: SourceWeighting | str) -> tf.Tensor:
    """Each source's prior weight per frame, float32 [K, 2]."""
    alphas = np.asarray(alphas, np.float32)
    if SourceWeighting(weighting) is SourceWeighting.EQUAL:
        return tf.ones([len(alphas), 2])
    return tf.constant(np.stack([1.0 - alphas, alphas], axis=1))


def interpolate(fvae: FVAE, sources: tf.Tensor, alphas: np.ndarray,
                mask_model: ConfidenceModel | None = None,
                weighting: SourceWeighting | str = SourceWeighting.LATENT_SHARE,
                sources_hr: tf.Tensor | None = None,
                source_frames: tf.Tensor | None = None) -> Interpolation:
    """Algorithm 2.

    Args:
      fvae: a trained FVAE.
      sources: [2, H, W, 3] the two aligned faces at the model's resolution.
      alphas: [K] interpolation weights of the second face's latent.
      mask_model: the FVAE's confidence model; None blends without confidence
        (a cross-fade of the two warps, whatever `weighting`).
      weighting: see the module docstring.
      sources_hr: optional [2, H', W', 3] high-resolution crops of the two
        faces; the fields are flow-upsampled to sample them.
      source_frames: optional [2, H, W, 1] photo frames of the two crops
        (`alignment.AlignedFace.frame`), see `editing.blend`.

    Returns:
      The frames; frame 0 is source 1's and frame K-1 source 2's own
      reconstruction under LATENT_SHARE or without a confidence model.
    """
    sources = tf.convert_to_tensor(sources, tf.float32)
    if sources.shape[0] != 2:
        raise ValueError(f"interpolation takes 2 sources, got {sources.shape[0]}")
    z = fvae.encode(sources)
    latents = interpolate_latents(z[0], z[1], alphas)
    if mask_model is None:
        weighting = SourceWeighting.LATENT_SHARE
    prior = source_prior(alphas, weighting)
    blend = editing.blend(fvae, mask_model, sources, latents, prior, sources_hr, source_frames)
    return Interpolation(np.asarray(alphas, np.float32), latents, blend)
