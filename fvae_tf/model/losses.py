"""FVAE losses (paper eq. 1-8).

Every loss sums over its per-example terms (pixels, latent dimensions,
neighbour pairs) as the equations write them, and averages over the batch.
"""

import tensorflow as tf

from fvae_tf.warp import sampler

# Keeps log() finite in the cross-entropy.
_LOG_EPS = 1e-7


def _safe_norm(vectors: tf.Tensor) -> tf.Tensor:
    """Euclidean norm over the last axis, with gradient 0 (not NaN) at 0."""
    squared = tf.reduce_sum(tf.square(vectors), axis=-1)
    nonzero = squared > 0
    root = tf.sqrt(tf.where(nonzero, squared, tf.ones_like(squared)))
    return tf.where(nonzero, root, tf.zeros_like(root))


def reconstruction_l1(target: tf.Tensor, output: tf.Tensor) -> tf.Tensor:
    """L_rec: L1 distance between `x_t` and `x_hat`, [B, H, W, C] each."""
    return tf.reduce_mean(tf.reduce_sum(tf.abs(target - output), axis=[1, 2, 3]))


def kl_divergence(mu: tf.Tensor, log_var: tf.Tensor) -> tf.Tensor:
    """L_KL (eq. 3): KL(N(mu, exp(log_var)) || N(0, I)), [B, latent] each."""
    terms = 1.0 + log_var - tf.square(mu) - tf.exp(log_var)
    return tf.reduce_mean(-0.5 * tf.reduce_sum(terms, axis=-1))


def flow_coherence(
    coords: tf.Tensor,
    target: tf.Tensor,
    sigma: float,
    window: int = 5,
    align_corners: bool = False,
) -> tf.Tensor:
    """L_flow (eq. 6): edge-aware flow coherence.

    sum_p sum_{q in N(p)} w(p, q) * ||f(p) - f(q)||, with
    w(p, q) = exp(-||c_t(p) - c_t(q)||^2 / (2 sigma^2)) from the target's RGB
    and N(p) the `window` x `window` neighbourhood centred at p (pairs that
    leave the image are not counted). The flow vector f is the displacement
    `coords - identity`, so the identity warp and any constant shift cost 0;
    the flow may change across the target's colour edges and nowhere else.

    Args:
      coords: [B, H, W, 2] normalized sampling coordinates.
      target: [B, H, W, C] target image `x_t`.
      sigma: colour scale, in the images' units.
      window: odd neighbourhood size.

    Returns:
      Scalar, mean over the batch.
    """
    height, width = coords.shape[1], coords.shape[2]
    coords = tf.convert_to_tensor(coords)
    flow = coords - tf.cast(sampler.identity_grid(height, width, align_corners), coords.dtype)
    target = tf.cast(target, coords.dtype)
    radius = window // 2
    total = 0.0
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy == 0 and dx == 0:
                continue
            # p ranges over pixels whose neighbour p + (dy, dx) is inside.
            p = (slice(None), slice(max(0, -dy), height - max(0, dy)),
                 slice(max(0, -dx), width - max(0, dx)))
            q = (slice(None), slice(max(0, dy), height - max(0, -dy)),
                 slice(max(0, dx), width - max(0, -dx)))
            colour = tf.reduce_sum(tf.square(target[p] - target[q]), axis=-1)
            weight = tf.exp(-colour / (2.0 * sigma**2))
            distance = _safe_norm(flow[p] - flow[q])
            total += tf.reduce_sum(weight * distance, axis=[1, 2])
    return tf.reduce_mean(total)


def mask_label(target: tf.Tensor, warped: tf.Tensor, norm: float) -> tf.Tensor:
    """Eq. 7: y(p) = 1 - ||x_t(p) - x_hat(p)||_1 / Z, in [0, 1].

    Args:
      target, warped: [B, H, W, C].
      norm: Z; with images in [-1, 1] and 3 channels, 6 is the largest
        possible distance, so y never leaves [0, 1].

    Returns:
      [B, H, W, 1] labels (no gradient: they come from the frozen E and D).
    """
    distance = tf.reduce_sum(tf.abs(target - warped), axis=-1, keepdims=True)
    return tf.stop_gradient(tf.clip_by_value(1.0 - distance / norm, 0.0, 1.0))


def mask_loss(confidence: tf.Tensor, label: tf.Tensor) -> tf.Tensor:
    """Eq. 8: per-pixel binary cross-entropy, summed over pixels.

    Args:
      confidence: [B, H, W, 1], M's output in (0, 1).
      label: [B, H, W, 1], eq. 7's soft labels in [0, 1].
    """
    c = tf.clip_by_value(confidence, _LOG_EPS, 1.0 - _LOG_EPS)
    bce = -(label * tf.math.log(c) + (1.0 - label) * tf.math.log(1.0 - c))
    return tf.reduce_mean(tf.reduce_sum(bce, axis=[1, 2, 3]))


def total_loss(rec: tf.Tensor, kl: tf.Tensor, flow: tf.Tensor, beta: float,
               flow_weight: float) -> tf.Tensor:
    """Eq. 1: L = L_rec + beta * L_KL + lambda * L_flow."""
    return rec + beta * kl + flow_weight * flow
