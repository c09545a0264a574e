"""Builds a dataset directory: read, align, split, pair, colour-transfer, write shards.

`align_images` turns a reader's `FaceImage`s into aligned crops: by dlib
detection and `fvae_tf.data.alignment`, by reusing `data_prep.align_faces`' output,
or, for the synthetic set, by `fvae_tf.data.alignment` on the stored landmarks (the
same canonical framing as real photos; `pair_ground_truth` maps the renders'
truth through both crops' transforms). `build_dataset` then writes every
ordered pair of one identity's different expressions with `fvae_tf.data.records`.
"""

import collections
import dataclasses
import functools
import json
import pathlib
from collections.abc import Callable, Iterator
from typing import NamedTuple

import cv2
import numpy as np

from fvae_tf.data import align_folder, alignment, color_transfer, readers, records
from fvae_tf.synthetic import faces as synthetic_faces
from fvae_tf.expressions import MULTIPIE_DEFAULT_ILLUMINATION, expression_id


@dataclasses.dataclass(frozen=True, eq=False)
class AlignedImage:
    """A dataset image aligned onto the canonical template.

    Attributes:
      image: the dataset image.
      image_id: its unique id (`image_id`).
      crop: uint8 [size, size, 3] RGB.
      crop_hr: uint8 [hr_size, hr_size, 3] RGB, the same crop at high resolution.
      landmarks: float64 [68, 2], normalized crop coordinates (x, y).
      transform: float64 [2, 3], photo pixels -> normalized crop coordinates
        (`alignment.AlignedFace.transform`).
    """

    image: readers.FaceImage
    image_id: str
    crop: np.ndarray
    crop_hr: np.ndarray
    landmarks: np.ndarray
    transform: np.ndarray


class Failure(NamedTuple):
    """An image left out, and why (for a person)."""

    path: str
    reason: str


def _align_one(path: pathlib.Path, landmarks: np.ndarray | None, size: int, hr_size: int
               ) -> tuple[np.ndarray, ...] | str:
    """Loads and aligns one photo (detecting landmarks unless given).

    Returns:
      (crop, crop_hr, landmarks in normalized crop coords, transform), or the
      reason the photo cannot be aligned.
    """
    try:
        image = alignment.load_image(path)
        if landmarks is None:
            landmarks = alignment.detect_landmarks(image)
        face = alignment.align_face(image, landmarks, size, hr_size)
    except alignment.InputError as e:
        return e.reason
    return face.crop, face.crop_hr, face.landmarks_aligned, face.transform


def _align_job(job: tuple) -> tuple[int, tuple[np.ndarray, ...] | str]:
    """`_align_one` for a pool: (index, *arguments) -> (index, result)."""
    return job[0], _align_one(*job[1:])


def _read_aligned(aligned_dir: pathlib.Path, image_id: str, size: int, hr_size: int
                  ) -> tuple[np.ndarray, ...] | str:
    """Reads `data_prep.align_faces`' outputs for one image, as `_align_one` returns them."""
    stem = aligned_dir / image_id
    json_path = stem.with_name(stem.name + "_align.json")
    if not json_path.is_file():
        return f"no {json_path} (align_faces did not align it, or another input folder)"
    try:
        info = json.loads(json_path.read_text())
        sizes = info["crop_size"], info["crop_hr_size"]
        landmarks = np.asarray(info["landmarks_aligned"], np.float64).reshape(68, 2)
        transform = np.asarray(info["transform"], np.float64).reshape(2, 3)
        if sizes != (size, hr_size):
            return (f"aligned at {sizes[0]}/{sizes[1]} px, this build wants {size}/{hr_size}; "
                    "align the photos again at this build's size and hr_size")
    except (json.JSONDecodeError, KeyError, ValueError) as e:
        return f"unreadable {json_path}: {e}"
    crops = []
    for path in (stem.with_name(stem.name + ".png"), stem.with_name(stem.name + "_hr.png")):
        # cv2 rather than alignment.load_image: crops may be below its photo minimum.
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            return f"cannot read {path}"
        crops.append(bgr[..., ::-1].copy())
    crop, crop_hr = crops
    if crop.shape[:2] != (size, size) or crop_hr.shape[:2] != (hr_size, hr_size):
        return f"crops under {stem} are not {size} and {hr_size} px square"
    return crop, crop_hr, landmarks, transform


def align_images(
    images: list[readers.FaceImage],
    root: pathlib.Path,
    *,
    size: int = 64,
    hr_size: int = 256,
    aligned_dir: pathlib.Path | None = None,
    num_workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[AlignedImage], list[Failure]]:
    """Aligned crops of every image that can be aligned.

    Three routes: with `aligned_dir`, `data_prep.align_faces`' outputs are
    read back; images that carry landmarks (the synthetic set) are aligned on
    them without detection; otherwise each photo is loaded, its landmarks
    detected (dlib, largest face) and aligned, in `num_workers` processes.

    Args:
      images: from a reader.
      root: the reader's root, for `image_id`.
      size: side of the training crops.
      hr_size: side of the high-resolution crops.
      aligned_dir: `data_prep.align_faces --output_dir` run on `root`.
      num_workers: processes for detection (1 runs in this process).
      progress: called as progress(done, total) after each image.

    Returns:
      (aligned, failures), aligned in the order of `images`.
    """
    root = pathlib.Path(root)
    ids = [readers.image_id(image, root) for image in images]
    results: list = [None] * len(images)

    def report(done):
        if progress is not None:
            progress(done, len(images))

    if aligned_dir is not None:
        for i, image_id_ in enumerate(ids):
            results[i] = _read_aligned(pathlib.Path(aligned_dir), image_id_, size, hr_size)
            report(i + 1)
    elif all(image.landmarks is not None for image in images) or num_workers <= 1:
        for i, image in enumerate(images):
            results[i] = _align_one(image.path, image.landmarks, size, hr_size)
            report(i + 1)
    else:
        jobs = [(i, image.path, image.landmarks, size, hr_size) for i, image in enumerate(images)]
        outcomes = align_folder.map_in_processes(_align_job, jobs, num_workers)
        for done, (i, result) in enumerate(outcomes, start=1):
            results[i] = result
            report(done)

    aligned, failures = [], []
    for image, image_id_, result in zip(images, ids, results):
        if isinstance(result, str):
            failures.append(Failure(str(image.path), result))
        else:
            aligned.append(AlignedImage(image, image_id_, *result))
    return aligned, failures


def pair_ground_truth(source: AlignedImage, target: AlignedImage, size: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The true target-to-source map of a synthetic pair, on the aligned crops' grids.

    The renders' truth files are mapped through both alignment transforms, so
    the result refers to the crops, not the renders.

    Returns:
      coords float32 [size, size, 2], normalized (x, y), target crop to source
      crop; visibility float32 [size, size] in {0, 1}.

    Raises:
      datasets.DatasetError: a truth file is missing or unreadable.
    """
    try:
        truth = synthetic_faces.pair_truth_from_files(
            source.image.path, target.image.path, size,
            source_transform=source.transform, target_transform=target.transform)
    except (OSError, ValueError) as e:
        raise readers.DatasetError(source.image.path, f"cannot read the pair's ground truth: {e}") from None
    return truth.coords, truth.visibility


def alignment_description(source: readers.Source | str, aligned_dir: pathlib.Path | str | None) -> str:
    """How `align_images` made the crops, for the manifest."""
    if aligned_dir is not None:
        return f"reused data_prep.align_faces output from {aligned_dir}"
    if readers.Source(source) is readers.Source.SYNTHETIC:
        return ("stored landmarks (no detection) + fvae_tf.data.alignment.align_face; ground truth "
                "mapped through both crops' transforms")
    return "dlib landmarks (largest face) + fvae_tf.data.alignment.align_face"


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """Settings of one dataset build (the flags of `data_prep.build_dataset`)."""

    source: str  # a `datasets.Source` value
    input_dir: str  # the reader's root
    output_dir: str  # the dataset directory to write
    aligned_dir: str | None = None  # reuse `data_prep.align_faces` output instead of detecting
    size: int = 64  # side of the training crops
    hr_size: int = 256  # side of the high-resolution crops
    val_fraction: float = 0.1  # share of identities for early stopping and tuning
    test_fraction: float = 0.2  # share of identities for the reported numbers only
    seed: int = 0  # identity split and storage order
    shard_size: int = 256  # pairs per shard
    illumination: int = MULTIPIE_DEFAULT_ILLUMINATION  # Multi-PIE flash index
    manifest_csv: str | None = None  # folder source: CSV listing instead of folders
    overwrite: bool = False  # replace a dataset already in output_dir
    num_workers: int = 2  # processes for face detection


def _check_output_dir(output_dir: pathlib.Path, overwrite: bool) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise records.RecordsError(output_dir, "exists and is not a folder")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise records.RecordsError(output_dir, "is not empty; choose an empty folder or set "
                           "overwrite to replace the dataset in it")


def _clear_dataset(output_dir: pathlib.Path) -> None:
    """Removes a previous dataset: the manifest first, so no reader trusts what follows."""
    (output_dir / records.MANIFEST_NAME).unlink(missing_ok=True)
    for pattern in ("*.tfrecord", "*.tfrecord.tmp", f".{records.MANIFEST_NAME}.*.tmp"):
        for path in output_dir.glob(pattern):
            path.unlink()


def _make_pair(source: AlignedImage, target: AlignedImage, size: int,
               with_ground_truth: bool) -> records.PairRecord:
    """The record of one ordered pair, the source colour-transferred to the target."""
    ground_truth = (pair_ground_truth(source, target, size) if with_ground_truth
                    else None)
    return records.PairRecord(
        source=color_transfer.transfer_color(source.crop, target.crop),
        target=target.crop,
        source_hr=color_transfer.transfer_color(source.crop_hr, target.crop_hr),
        target_hr=target.crop_hr,
        source_expression=expression_id(source.image.expression),
        target_expression=expression_id(target.image.expression),
        identity=source.image.identity,
        source_id=source.image_id,
        target_id=target.image_id,
        source_landmarks=source.landmarks,
        target_landmarks=target.landmarks,
        gt_coords=None if ground_truth is None else ground_truth[0],
        gt_visibility=None if ground_truth is None else ground_truth[1],
    )


def _serialized(faces: list[AlignedImage], pairs: list[tuple[int, int]], size: int,
                with_ground_truth: bool, progress: Callable[[int, int], None] | None
                ) -> Iterator[bytes]:
    """Serialized records of `pairs` (indices into `faces`), in order."""
    for done, (s, t) in enumerate(pairs, start=1):
        example = records.serialize_pair(_make_pair(faces[s], faces[t], size, with_ground_truth))
        if progress is not None:  # before the yield: the consumer stops after the last one
            progress(done, len(pairs))
        yield example


def _count(labels: list[str]) -> dict[str, int]:
    return dict(sorted(collections.Counter(labels).items()))


def build_dataset(
    config: BuildConfig, progress: Callable[[str, int, int], None] | None = None
) -> records.Manifest:
    """Reads, aligns, splits, pairs, colour-transfers and writes a dataset directory.

    Identities are split before alignment (so a face that fails to align does
    not move anyone to the other split); every ordered pair of two aligned
    images of one identity with different expressions becomes a record; the
    records of a split are stored in a seeded random order.

    Args:
      config: the build settings.
      progress: called as progress(stage, done, total), stage "align" or a split name.

    Returns:
      The manifest written to `config.output_dir`.

    Raises:
      datasets.DatasetError: the input cannot be read.
      records.RecordsError: the output folder is not empty (without overwrite), or
        the input holds no pair at all.
    """
    output_dir = pathlib.Path(config.output_dir)
    _check_output_dir(output_dir, config.overwrite)
    with_ground_truth = readers.Source(config.source) is readers.Source.SYNTHETIC
    root = pathlib.Path(config.manifest_csv).parent if config.manifest_csv else config.input_dir
    images = readers.read_dataset(config.source, config.input_dir,
                                   illumination=config.illumination,
                                   manifest_csv=config.manifest_csv)
    aligned, failures = align_images(
        images, root, size=config.size, hr_size=config.hr_size,
        aligned_dir=config.aligned_dir, num_workers=config.num_workers,
        progress=None if progress is None else functools.partial(progress, "align"))
    expressions = collections.defaultdict(set)
    for face in aligned:
        expressions[face.image.identity].add(face.image.expression)
    identities = sorted({image.identity for image in images})
    without_pairs = [i for i in identities if len(expressions[i]) < 2]
    if len(without_pairs) == len(identities):
        raise records.RecordsError(config.input_dir, "no identity has two aligned images with "
                           "different expressions, so there is no pair to train on")

    output_dir.mkdir(parents=True, exist_ok=True)
    _clear_dataset(output_dir)
    splits = {}
    for index, (split, members) in enumerate(zip(records.SPLITS, readers.split_identities(
            identities, config.val_fraction, config.test_fraction, config.seed))):
        member_set = set(members)
        faces = [face for face in aligned if face.image.identity in member_set]
        pairs = readers.ordered_pairs([face.image for face in faces])
        order = np.random.default_rng([config.seed, index]).permutation(len(pairs))
        pairs = [pairs[k] for k in order]
        report = None if progress is None else functools.partial(progress, split)
        examples = _serialized(faces, pairs, config.size, with_ground_truth, report)
        shards = records.write_shards(output_dir, split, examples, len(pairs), config.shard_size)
        splits[split] = records.SplitInfo(
            identities=members,
            num_images=len(faces),
            num_pairs=len(pairs),
            images_per_expression=_count([face.image.expression for face in faces]),
            pairs_per_expression=_count([f"{faces[s].image.expression}->"
                                         f"{faces[t].image.expression}" for s, t in pairs]),
            shards=shards,
        )
    manifest = records.Manifest(
        source=readers.Source(config.source).value,
        size=config.size,
        hr_size=config.hr_size,
        has_ground_truth=with_ground_truth,
        alignment=alignment_description(config.source, config.aligned_dir),
        flags=dataclasses.asdict(config),
        splits=splits,
        failures=[failure._asdict() for failure in failures],
        identities_without_pairs=without_pairs,
    )
    records.write_manifest(output_dir, manifest)
    return manifest
