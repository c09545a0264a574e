"""An editing direction fitted to the training people's landmarks (not in the paper).

Algorithm 1 takes `d = mean E(x_target) - mean E(x_source)`. The decoder is
not linear in z, so moving a neutral face's latent along that difference of
means draws less than the mean smile (README, London: the edit closes less
of the mouth distance than moving the landmarks by the mean motion). Here d
starts at Algorithm 1's and is refined so that the edit itself, at factor 1
and under the `EditRule` it will be used with, carries the training pairs'
source landmarks onto their target landmarks:

    d* = argmin_d  mean_i sum_k || F_i(d)(t'_ik) - s_ik ||

F_i(d) the edit's sampling field of training source i, read bilinearly at
each target landmark t'_ik (it should point to the source landmark s_ik;
pixel units, `losses.landmark_supervision`). t'_i are the target photo's
landmarks carried onto the source photo's eyes and nose by a similarity
(`pose_free_targets`): an edit keeps the source's head where it is, so the
head's motion between each person's two photos (a nod, a step closer) is
noise to it, not expression; the evaluation measures the mouth after the
same fit. The minimum lies far out: the landmark error keeps falling by
hundredths of a pixel while |d| grows into latents the decoder never saw
(London: |d| 3.0 -> 12 in 300 steps, 28 in 1000). The fit is therefore
stopped early, at a fixed 300 Adam steps of 0.02 from Algorithm 1's d
(README: values the paper lost, with the alternatives tried). Only d is
fitted; the network is untouched. Every dataset stores the 68 dlib landmarks
of each crop, so any dataset with the two expressions can supply the pairs.
"""

import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from fvae_tf import progress
from fvae_tf.data import alignment, input_pipeline, records
from fvae_tf.edit import editing
from fvae_tf.expressions import expression_id
from fvae_tf.model import losses
from fvae_tf.model.fvae import FVAE

DEFAULT_STEPS = 300  # Adam steps at the default rate (README: values the paper lost)
# The rule a fitted direction is fitted under and edits with.
FITTED_RULE = editing.EditRule(residual=True, mirror=True)


def fitting_loss(fvae: FVAE, sources: tf.Tensor, source_landmarks: tf.Tensor,
                 target_landmarks: tf.Tensor, direction: tf.Tensor,
                 rule: editing.EditRule) -> tf.Tensor:
    """The factor-1 edit's landmark error, px summed over the landmarks, pair mean.

    Args:
      sources: [N, H, W, 3] training sources at the model's resolution.
      source_landmarks, target_landmarks: [N, K, 2] normalized (x, y).
      direction: [latent].
    """
    _, coords = editing.edit_fields(fvae, sources, direction, [1.0], rule)
    return losses.landmark_supervision(coords[0], target_landmarks, source_landmarks)


def pose_free_targets(source_landmarks: np.ndarray, target_landmarks: np.ndarray
                      ) -> np.ndarray:
    """Each pair's target landmarks on its source's head: [N, 68, 2] float32.

    `alignment.onto_eyes_and_nose` per pair: the similarity that best maps the
    target's eyes and nose onto the source's carries all 68 target landmarks.
    """
    return np.stack([alignment.onto_eyes_and_nose(target, source)
                     for source, target in zip(source_landmarks, target_landmarks)]
                    ).astype(np.float32)


def fit_direction(fvae: FVAE, sources: np.ndarray, source_landmarks: np.ndarray,
                  target_landmarks: np.ndarray, initial: np.ndarray,
                  rule: editing.EditRule = FITTED_RULE,
                  steps: int = DEFAULT_STEPS, learning_rate: float = 0.02,
                  progress: Callable[[int, float], None] | None = None) -> np.ndarray:
    """Refines `initial` by Adam on `fitting_loss` over all the pairs at once.

    `fit_on_pairs` hands it a dataset's pairs with pose-free targets.

    Args:
      fvae: a trained FVAE (frozen).
      sources: [N, H, W, 3] the training pairs' sources, in [-1, 1].
      source_landmarks, target_landmarks: [N, 68, 2] normalized (x, y).
      initial: [latent], Algorithm 1's direction.
      rule: the `EditRule` the direction will be used with.
      steps, learning_rate: Adam's; the step count is the fit's only brake.
      progress: called as progress(step, landmark error) after each step.

    Returns:
      float32 [latent], the fitted direction.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    sources = tf.constant(sources, tf.float32)
    source_landmarks = tf.constant(source_landmarks, tf.float32)
    target_landmarks = tf.constant(target_landmarks, tf.float32)
    direction = tf.Variable(np.asarray(initial, np.float32))
    optimizer = tf.keras.optimizers.Adam(learning_rate)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = fitting_loss(fvae, sources, source_landmarks, target_landmarks, direction,
                                rule)
        optimizer.apply_gradients([(tape.gradient(loss, direction), direction)])
        return loss

    for i in range(steps):
        landmark = float(step())
        if progress is not None:
            progress(i + 1, landmark)
    return direction.numpy()


def fit_on_pairs(fvae: FVAE, sources: np.ndarray, source_landmarks: np.ndarray,
                 target_landmarks: np.ndarray, initial: np.ndarray, source: str,
                 target: str) -> np.ndarray:
    """`fit_direction` on training pairs from `source` to `target`, as every caller fits.

    The targets are made `pose_free_targets` first; one progress line
    ("fitting the A->B direction on N pairs ... landmark error ... px")
    reports each step.

    Args:
      sources, source_landmarks, target_landmarks: the pairs as stored
        (`training_pairs`).
      initial: [latent], Algorithm 1's direction from `source` to `target`.
    """
    report = progress.Progress(f"fitting the {source}->{target} direction on {len(sources)} "
                               "pairs", DEFAULT_STEPS, "step")
    return fit_direction(fvae, sources, source_landmarks,
                         pose_free_targets(source_landmarks, target_landmarks), initial,
                         progress=lambda step, error: report.update(
                             step, f"landmark error {error:.1f} px"))


def training_pairs(dataset_dir: str | os.PathLike, source: str, target: str,
                   image_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A dataset's training pairs from `source` to `target` expression, as stored.

    Read unshuffled and unflipped, sources colour-transferred as in training.

    Args:
      image_size: the model's crop size; the dataset's must be the same.

    Returns:
      (sources [N, S, S, 3] in [-1, 1], source landmarks, target landmarks
      [N, 68, 2] normalized (x, y)).

    Raises:
      records.RecordsError: not a finished dataset, crops of another size, or
        no such training pair.
    """
    crop_size = records.read_manifest(dataset_dir).size
    if crop_size != image_size:
        raise records.RecordsError(dataset_dir, f"its crops are {crop_size} px, the model's "
                                   f"{image_size} px; build the dataset at the model's size")
    wanted = expression_id(source), expression_id(target)
    columns = {"source": [], "source_landmarks": [], "target_landmarks": []}
    for batch in input_pipeline.make_dataset(dataset_dir, "train", 256, shuffle=False, flip=False,
                                             repeat=False).as_numpy_iterator():
        chosen = ((batch["source_expression"] == wanted[0])
                  & (batch["target_expression"] == wanted[1]))
        for key, values in columns.items():
            values.append(batch[key][chosen])
    if not sum(len(v) for v in columns["source"]):
        raise records.RecordsError(dataset_dir, f"no training pair goes from {source} to "
                                   f"{target}; fit on a dataset that has both expressions")
    return tuple(np.concatenate(columns[key]) for key in columns)
