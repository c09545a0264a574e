"""Held-out metrics of a model on a dataset's val split, and its example grid.

The validation loss (paper 5.4's early-stopping criterion) is the mean of the
loss terms over the val pairs; beside it: L1 and PSNR of the output against
the target, the end-point error of the FVAE's warp against the synthetic
ground truth, the mask stage's mean absolute error, and each metric's
no-motion baseline (the identity warp, i.e. the source itself).
"""

import os
from collections.abc import Callable, Iterable

import keras
import numpy as np
import tensorflow as tf

from fvae_tf import metrics
from fvae_tf.data import input_pipeline, records
from fvae_tf.train import summaries
from fvae_tf.train.step import forward
from fvae_tf.warp import sampler

GRID_EXAMPLES = 4  # examples (rows) in the TensorBoard grid

# batch of model inputs -> (loss terms, pictures), as `step.forward` returns them.
EvalStep = Callable[[dict], tuple[dict, dict]]
# (eval step, val batches) -> mean metrics; "loss" is the early-stopping criterion.
Evaluate = Callable[[EvalStep, Iterable[dict]], dict[str, float]]


def make_eval_step(model: keras.Model) -> EvalStep:
    """`step.forward` in inference mode, as one tf.function (traced once per run)."""
    return tf.function(lambda batch: forward(model, batch, training=False))


def val_batches(dataset_dir: str | os.PathLike, batch_size: int) -> tf.data.Dataset:
    """The val split in its stored order, unflipped, once."""
    return input_pipeline.make_dataset(dataset_dir, "val", batch_size, shuffle=False,
                                       flip=False, repeat=False)


def model_inputs(batch: dict) -> dict:
    """The features a model reads from a pipeline batch: the pair, its expression
    ids (for the opt-in `FVAEConfig.analogy_share`), its landmarks (for the
    opt-in `FVAEConfig.landmark_supervision`) and, where the dataset has them,
    its flow labels (the synthetic ground truth, a teacher flow) for the
    opt-in `FVAEConfig.flow_supervision` term."""
    flow_labels = tuple(f"{prefix}_{field}" for prefix in records.FLOW_LABELS
                        for field in ("coords", "visibility"))
    keys = ("source", "target", "source_expression", "target_expression",
            "source_landmarks", "target_landmarks") + flow_labels
    return {key: batch[key] for key in keys if key in batch}


def batch_metrics(batch: dict, views: dict) -> dict[str, float]:
    """Held-out metrics of one batch (means over its examples).

    Args:
      batch: a pipeline batch: "source", "target" [B, H, W, 3] in [-1, 1] and,
        for synthetic pairs, "gt_coords" [B, H, W, 2] and "gt_visibility" [B, H, W].
      views: `forward`'s pictures of that batch.
    """
    source, target = batch["source"].numpy(), batch["target"].numpy()
    output = views["output"].numpy()
    values = {"l1": metrics.l1(output, target), "psnr": metrics.psnr(output, target),
              "l1_no_motion": metrics.l1(source, target),
              "psnr_no_motion": metrics.psnr(source, target)}
    if "coords" in views and "gt_coords" in batch:
        truth, visible = batch["gt_coords"].numpy(), batch["gt_visibility"].numpy()
        identity = np.broadcast_to(sampler.identity_grid(*truth.shape[1:3]).numpy(), truth.shape)
        values["epe_px"] = metrics.endpoint_error(views["coords"].numpy(), truth, visible)
        values["epe_px_no_motion"] = metrics.endpoint_error(identity, truth, visible)
    if "confidence" in views:
        values["mask_mae"] = float(np.mean(np.abs(views["confidence"] - views["label"])))
    return values


def evaluate(eval_step: EvalStep, batches: Iterable[dict]) -> dict[str, float]:
    """Loss terms and `batch_metrics`, averaged over every pair of `batches`.

    Batches are weighted by their size, so a short last batch counts per pair.
    """
    sums: dict[str, float] = {}
    total = 0
    for batch in batches:
        terms, views = eval_step(model_inputs(batch))
        size = int(batch["source"].shape[0])
        values = {name: float(value) for name, value in terms.items()}
        values.update(batch_metrics(batch, views))
        for name, value in values.items():
            sums[name] = sums.get(name, 0.0) + value * size
        total += size
    return {name: value / total for name, value in sums.items()}


def example_grid(eval_step: EvalStep, batches: tf.data.Dataset) -> np.ndarray:
    """`summaries.pair_grid` of the first `GRID_EXAMPLES` pairs of `batches`: uint8 [H, W, 3]."""
    batch = next(iter(batches.unbatch().batch(GRID_EXAMPLES)))
    _, views = eval_step(model_inputs(batch))
    views = {name: value.numpy() for name, value in views.items()}
    return summaries.pair_grid(batch["source"].numpy(), batch["target"].numpy(), **views)
