"""Geometric jitter of a training pair: one random similarity applied to both images.

Not in the paper (its augmentation is the horizontal flip). On a small real
set (the London set's 72 training people, 144 pairs) the flow decoder can
recognise each source photo and replay a memorised flow; moving, scaling and
rotating the *pair* a little each time makes every source new, while the
correspondence between source and target is kept, so the photometric loss
still has the same true answer.

The similarity A maps a point p of the original crop, in normalized
coordinates (sampler convention), to A(p) = s R(theta) p + t; the jittered
image is I'(q) = I(A^-1(q)), sampled bilinearly with clamped borders. What
travels with a pair follows it:
  * images (source, target and their high-res crops): resampled;
  * photo frames (`alignment.photo_coverage`): resampled, and 0 where
    A^-1(q) leaves the crop, whose edge the clamped images replicate;
  * landmarks: l -> A(l);
  * gt_coords (target to source, synthetic): the new target pixel q is the
    old A^-1(q), which read the old source at c(A^-1(q)), i.e. the new
    source at A(c(A^-1(q))): gt' = A(gt sampled at A^-1(grid));
  * gt_visibility: sampled at A^-1(grid), visible where the sample is above
    0.5 and A^-1(q) lies inside the crop;
  * teacher_coords and teacher_visibility (a teacher flow's labels) as
    gt_coords and gt_visibility.

`amount` j draws shift t ~ U(-j, j)^2 (normalized units: j = 0.05 is 1.6 px
of a 64 px crop), log-scale ~ U(-j, j) and theta ~ U(-j, j) radians.
"""

import tensorflow as tf

from fvae_tf.data import records
from fvae_tf.warp import sampler

# What travels with a pair and moves with it (also `input_pipeline.flip_pair`'s keys).
IMAGE_KEYS = ("source", "target", "source_hr", "target_hr")
FRAME_KEYS = ("source_frame", "target_frame")
LANDMARK_KEYS = ("source_landmarks", "target_landmarks")


def random_similarity(amount: float, seed: tf.Tensor) -> tf.Tensor:
    """A random similarity [2, 3] (x' = M[:, :2] x + M[:, 2]) for a stateless `seed` [2]."""
    draw = tf.random.stateless_uniform([5], seed=seed, minval=-amount, maxval=amount)
    scale, theta = tf.exp(draw[0]), draw[1]
    cos, sin = scale * tf.cos(theta), scale * tf.sin(theta)
    return tf.reshape(tf.stack([cos, -sin, draw[2], sin, cos, draw[3]]), [2, 3])


def _apply(matrix: tf.Tensor, points: tf.Tensor) -> tf.Tensor:
    """points [..., 2] -> matrix applied to them."""
    return tf.linalg.matvec(matrix[:, :2], points) + matrix[:, 2]


def _invert(matrix: tf.Tensor) -> tf.Tensor:
    linear = tf.linalg.inv(matrix[:, :2])
    return tf.concat([linear, -tf.linalg.matvec(linear, matrix[:, 2])[:, None]], axis=1)


def _resample(field: tf.Tensor, inverse: tf.Tensor) -> tf.Tensor:
    """field [H, W, C] sampled at A^-1 of its own pixel grid; uint8 stays uint8 (rounded)."""
    height, width = field.shape[0], field.shape[1]
    where = _apply(inverse, sampler.identity_grid(height, width))
    out = sampler.bilinear_sample(tf.cast(field, tf.float32)[None], where[None])[0]
    if field.dtype == tf.uint8:
        return tf.saturate_cast(tf.round(out), tf.uint8)
    return out


def _inside(inverse: tf.Tensor, size: int) -> tf.Tensor:
    """float32 [size, size, 1]: 1 where A^-1 of the pixel lies inside the crop, else 0."""
    inside = tf.reduce_all(tf.abs(_apply(inverse, sampler.identity_grid(size, size))) <= 1.0,
                           axis=-1, keepdims=True)
    return tf.cast(inside, tf.float32)


def jitter_pair(example: dict[str, tf.Tensor], amount: float, seed: tf.Tensor
                ) -> dict[str, tf.Tensor]:
    """Applies one random similarity to everything in a decoded, unbatched pair.

    Args:
      example: images [H, W, 3] (float or uint8), frames [H, W, 1], landmarks
        [68, 2], gt_ and teacher_coords [H, W, 2], gt_ and teacher_visibility
        [H, W, 1]; any may be absent, other keys pass through.
      amount: jitter size j (module docstring); 0 returns the pair unchanged.
      seed: int [2], stateless seed of this pair's similarity.

    Returns:
      The same keys, jittered.
    """
    if amount <= 0:
        return example
    matrix = random_similarity(amount, seed)
    inverse = _invert(matrix)
    out = dict(example)
    for key in IMAGE_KEYS:
        if key in out:
            out[key] = _resample(out[key], inverse)
    for key in LANDMARK_KEYS:
        if key in out:
            out[key] = _apply(matrix, out[key])
    labels = [prefix for prefix in records.FLOW_LABELS if f"{prefix}_coords" in out]
    masked = [key for key in FRAME_KEYS if key in out] + [f"{p}_visibility" for p in labels]
    if masked:  # one crop size: frames and visibilities share the same inside mask
        inside = _inside(inverse, out[masked[0]].shape[0])
    for key in FRAME_KEYS:
        if key in out:
            out[key] = _resample(out[key], inverse) * inside
    for prefix in labels:
        coords, visibility = f"{prefix}_coords", f"{prefix}_visibility"
        out[coords] = _apply(matrix, _resample(out[coords], inverse))
        out[visibility] = tf.cast(_resample(out[visibility], inverse) > 0.5, tf.float32) * inside
    return out
