"""Mean latent per expression over the training identities (Algorithm 1's input).

Algorithm 1 edits an expression by moving a source latent along
`d = mean(E(x) for x labelled target) - mean(E(x) for x labelled source)`,
means over training images. Training computes those means once, with the
best weights, and saves them as `latent_stats.npz` beside the checkpoint.

Every training image counts once: images are the targets of the training
pairs, deduplicated by their index in the split's image table (an image is
the target of several pairs), read without augmentation.
"""

import dataclasses
import io
import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from fvae_tf import atomic_io
from fvae_tf.data import input_pipeline, records
from fvae_tf.expressions import EXPRESSIONS

FILENAME = "latent_stats.npz"


@dataclasses.dataclass(frozen=True)
class LatentStats:
    """Per-expression latent means.

    Attributes:
      means: float32 [num_expressions, latent]; row i is the mean `mu` of the
        training images labelled `expressions[i]` (zeros where count is 0).
      counts: int64 [num_expressions], images averaged per expression.
      expressions: the labels, `fvae_tf.expressions.EXPRESSIONS`.
      step: training step of the weights that encoded the images.
    """

    means: np.ndarray
    counts: np.ndarray
    expressions: tuple[str, ...]
    step: int

    def mean(self, expression: str) -> np.ndarray:
        """The mean latent of `expression`, [latent].

        Raises:
          ValueError: unknown label, or no training image carries it.
        """
        if expression not in self.expressions:
            raise ValueError(f"unknown expression {expression!r}; known expressions: "
                             f"{', '.join(self.expressions)}")
        index = self.expressions.index(expression)
        if self.counts[index] == 0:
            present = [e for e, n in zip(self.expressions, self.counts) if n]
            raise ValueError(f"no training image is labelled {expression!r}; the training "
                             f"set has {', '.join(present)}")
        return self.means[index]

    def direction(self, source: str, target: str) -> np.ndarray:
        """Algorithm 1's `d = mean(target) - mean(source)`, [latent]."""
        return self.mean(target) - self.mean(source)


def unique_images(dataset_dir: str | os.PathLike, split: str,
                  batch_size: int) -> tf.data.Dataset:
    """Every distinct target image of a split once, unaugmented.

    Returns:
      Batches of (images float32 [B, size, size, 3] in [-1, 1],
      expression ids int32 [B]).

    Raises:
      records.RecordsError: not a finished dataset, no such split, or no pairs in it.
    """
    manifest = records.read_manifest(dataset_dir)
    files = records.shard_paths(dataset_dir, split, manifest)
    spec = {"target": records.pair_feature_spec(manifest)["target"]}
    targets = [batch["target"] for batch in tf.data.TFRecordDataset(files).batch(4096).map(
        lambda serialized: tf.io.parse_example(serialized, spec)).as_numpy_iterator()]
    if not targets:
        raise records.RecordsError(dataset_dir, f"split {split!r} has no pairs")
    table = input_pipeline.load_images(dataset_dir, split, manifest)
    index = np.unique(np.concatenate(targets))
    return (tf.data.Dataset.from_tensor_slices((tf.gather(table.crops, index),
                                                tf.gather(table.expression, index)))
            .batch(batch_size)
            .map(lambda images, labels: (input_pipeline.to_float(images), labels)))


def compute(encode: Callable[[tf.Tensor], tf.Tensor], batches: tf.data.Dataset,
            step: int) -> LatentStats:
    """Averages `encode(images)` per expression.

    Args:
      encode: images [B, H, W, 3] -> mu [B, latent] (e.g. `FVAE.encode`).
      batches: (images, expression ids) batches, e.g. from `unique_images`.
      step: recorded with the statistics.
    """
    sums, counts = None, np.zeros(len(EXPRESSIONS), np.int64)
    for images, labels in batches:
        mu = np.asarray(encode(images), np.float64)
        if sums is None:
            sums = np.zeros((len(EXPRESSIONS), mu.shape[-1]))
        np.add.at(sums, labels.numpy(), mu)
        counts += np.bincount(labels.numpy(), minlength=len(EXPRESSIONS))
    if sums is None:
        raise ValueError("no images to encode")
    means = sums / np.maximum(counts, 1)[:, None]
    return LatentStats(means.astype(np.float32), counts, EXPRESSIONS, step)


def save(path: str | os.PathLike, stats: LatentStats) -> None:
    """Writes `stats` as an .npz file, atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, means=stats.means, counts=stats.counts,
             expressions=np.asarray(stats.expressions), step=stats.step)
    atomic_io.write_bytes(path, buffer.getvalue())


def load(path: str | os.PathLike) -> LatentStats:
    """Reads a file written by `save`.

    Raises:
      FileNotFoundError: no such file (train the model first).
    """
    with np.load(path) as data:
        return LatentStats(data["means"], data["counts"],
                           tuple(str(e) for e in data["expressions"]), int(data["step"]))
