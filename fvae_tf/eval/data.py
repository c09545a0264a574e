"""What the evaluation reads: a split's pairs, and the synthetic set's graded series.

`read_pairs` loads the pairs of one split (`fvae_tf.data.records`, through the
input pipeline, which colour-transfers each source) into memory, in storage
order (the build's seeded order), with their ids, so every method sees
exactly the same 64x64 crops. `read_graded` aligns the synthetic
set's graded series (`graded/<id>/neutral_000` and each expression at
25/50/75/100 %) onto the canonical template exactly as the dataset builder
aligns the training images, with the true target-to-source coordinates of
every (neutral, graded) pair mapped onto the crops.

Images are float32 in [-1, 1], NHWC; landmarks and coordinates are
normalized crop coordinates (x, y), align_corners=False.
"""

import dataclasses
import os
import pathlib

import numpy as np

from fvae_tf.data import builder, input_pipeline, readers, records
from fvae_tf.expressions import EXPRESSIONS
from fvae_tf.synthetic import dataset as synthetic_dataset
from fvae_tf.synthetic import faces


_READ_BATCH = 64  # pairs decoded at a time


class EvalDataError(Exception):
    """Evaluation data that cannot be read; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class Pairs:
    """N stored pairs of one split (the source colour-transferred to the target)."""

    source: np.ndarray  # float32 [N, S, S, 3] in [-1, 1]
    target: np.ndarray  # float32 [N, S, S, 3] in [-1, 1]
    source_expression: np.ndarray  # str [N]
    target_expression: np.ndarray  # str [N]
    identity: np.ndarray  # str [N]
    source_id: np.ndarray  # str [N]
    target_id: np.ndarray  # str [N]
    source_landmarks: np.ndarray  # float32 [N, 68, 2]
    target_landmarks: np.ndarray  # float32 [N, 68, 2]
    gt_coords: np.ndarray | None  # float32 [N, S, S, 2], target to source (synthetic)
    gt_visibility: np.ndarray | None  # float32 [N, S, S], 1 where visible (synthetic)
    source_frame: np.ndarray | None  # float32 [N, S, S, 1]: inside the photo (has_frame)
    target_frame: np.ndarray | None
    source_hr: np.ndarray | None  # float32 [N, S', S', 3] when read with_hr
    target_hr: np.ndarray | None

    def __len__(self) -> int:
        return len(self.source)

    def subset(self, index: slice | np.ndarray) -> "Pairs":
        """The pairs at `index` (a slice, integer indices or a boolean mask over pairs)."""
        return dataclasses.replace(self, **{
            f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[index]
            for f in dataclasses.fields(self)})


def read_pairs(dataset_dir: str | os.PathLike, split: str, limit: int | None = None,
               with_hr: bool = False) -> Pairs:
    """The first `limit` pairs (all when None) of `split`, in storage order.

    Read through `input_pipeline.make_dataset` (unshuffled, unflipped, once),
    so the sources are colour-transferred exactly as in training.

    Raises:
      records.RecordsError: not a finished dataset, no such split (a dataset
        built before the test split says to rebuild), or the split is empty.
    """
    manifest = records.read_manifest(dataset_dir)
    batches = input_pipeline.make_dataset(dataset_dir, split, _READ_BATCH, shuffle=False,
                                          flip=False, repeat=False, with_hr=with_hr,
                                          with_ids=True)
    if limit is not None:
        batches = batches.unbatch().take(limit).batch(_READ_BATCH)
    columns: dict[str, list] = {}
    for batch in batches.as_numpy_iterator():
        for key, value in batch.items():
            columns.setdefault(key, []).append(value)
    size = manifest.size

    def column(key):
        return np.concatenate(columns[key]) if key in columns else None

    def text(key):
        return np.array([v.decode() for v in column(key)])

    def expressions(key):
        return np.array([EXPRESSIONS[i] for i in column(key)])

    visibility = column("gt_visibility")
    return Pairs(
        source=column("source"), target=column("target"),
        source_expression=expressions("source_expression"),
        target_expression=expressions("target_expression"),
        identity=text("identity"), source_id=text("source_id"), target_id=text("target_id"),
        source_landmarks=column("source_landmarks"), target_landmarks=column("target_landmarks"),
        gt_coords=column("gt_coords"),
        gt_visibility=None if visibility is None else visibility.reshape(-1, size, size),
        source_frame=column("source_frame"), target_frame=column("target_frame"),
        source_hr=column("source_hr"), target_hr=column("target_hr"))


@dataclasses.dataclass(frozen=True)
class GradedSeries:
    """One person's neutral face and an expression at graded intensities, aligned."""

    identity: str
    expression: str
    intensities: np.ndarray  # float [K], e.g. 0.25 0.5 0.75 1.0
    neutral: np.ndarray  # float32 [S, S, 3]: graded/<id>/neutral_000
    neutral_hr: np.ndarray  # float32 [S', S', 3]
    neutral_landmarks: np.ndarray  # float32 [68, 2]
    frames: np.ndarray  # float32 [K, S, S, 3]: the true renderings at each intensity
    frames_hr: np.ndarray  # float32 [K, S', S', 3]
    landmarks: np.ndarray  # float32 [K, 68, 2]
    coords: np.ndarray  # float32 [K, S, S, 2]: true frame-to-neutral sampling coordinates
    visibility: np.ndarray  # float32 [K, S, S]
    neutral_photo_frame: np.ndarray  # float32 [S, S, 1]: crop inside the render (photo frame)
    photo_frames: np.ndarray  # float32 [K, S, S, 1]


def _to_float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 127.5 - 1.0


def read_graded(synthetic_dir: str | os.PathLike, identities: list[str], size: int,
                hr_size: int) -> list[GradedSeries]:
    """Every graded series of `identities` in a synthetic set, aligned like the dataset.

    Args:
      synthetic_dir: written by `data_prep.make_synthetic` (the dataset's input).
      identities: subject ids, e.g. the test split's "003".
      size, hr_size: the dataset's crop sides.

    Returns:
      One series per (identity, expression other than neutral), sorted.

    Raises:
      EvalDataError: the folder or a person's graded series is missing or unreadable.
    """
    root = pathlib.Path(synthetic_dir)
    series = []
    for identity in identities:
        folder = root / synthetic_dataset.GRADED_DIR / identity
        neutral_path = folder / "neutral_000.png"
        if not neutral_path.is_file():
            raise EvalDataError(f"{neutral_path} is missing: the graded series need the "
                                "synthetic set the dataset was built from (pass "
                                "--synthetic_dir, or run data_prep.make_synthetic again)")
        for expression in EXPRESSIONS[1:]:
            paths = sorted(folder.glob(f"{expression}_*.png"))
            if not paths:
                continue
            try:
                images = [readers.FaceImage(path, identity, expression,
                                            faces.load_landmarks(path))
                          for path in [neutral_path, *paths]]
            except (OSError, ValueError) as e:
                raise EvalDataError(f"{folder}: cannot read a graded image's landmarks ({e})"
                                    ) from None
            aligned, failures = builder.align_images(images, root, size=size, hr_size=hr_size,
                                                     num_workers=1)
            if failures:
                raise EvalDataError(f"{failures[0].path}: {failures[0].reason}")
            try:
                truths = [builder.pair_ground_truth(aligned[0], frame, size)
                          for frame in aligned[1:]]
            except readers.DatasetError as e:
                raise EvalDataError(str(e)) from None
            series.append(GradedSeries(
                identity=identity, expression=expression,
                intensities=np.array([int(p.stem.rsplit("_", 1)[1]) / 100 for p in paths]),
                neutral=_to_float(aligned[0].crop), neutral_hr=_to_float(aligned[0].crop_hr),
                neutral_landmarks=aligned[0].landmarks.astype(np.float32),
                frames=np.stack([_to_float(a.crop) for a in aligned[1:]]),
                frames_hr=np.stack([_to_float(a.crop_hr) for a in aligned[1:]]),
                landmarks=np.stack([a.landmarks for a in aligned[1:]]).astype(np.float32),
                coords=np.stack([t[0] for t in truths]),
                visibility=np.stack([t[1] for t in truths]),
                neutral_photo_frame=aligned[0].frame[..., None],
                photo_frames=np.stack([a.frame for a in aligned[1:]])[..., None]))
    return series
