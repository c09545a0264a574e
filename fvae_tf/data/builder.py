"""Builds a dataset directory: read, align, split, write the image tables, pair, write the pairs.

`align_images` turns a reader's `FaceImage`s into aligned crops: by dlib
detection and `fvae_tf.data.alignment`, by reusing `data_prep.align_faces`' output,
or, for the synthetic set, by `fvae_tf.data.alignment` on the stored landmarks (the
same canonical framing as real photos; `pair_ground_truth` maps the renders'
truth through both crops' transforms). `build_dataset` then writes every
ordered pair of one identity's different expressions with `fvae_tf.data.records`:
each image once, in its split's image table, written as it is aligned, and
each pair as two indices into that table (with its ground truth, synthetic
only), so memory stays bounded however many images there are.
"""

import collections
import dataclasses
import functools
import itertools
import json
import pathlib
from collections.abc import Callable, Iterator
from typing import NamedTuple

import cv2
import numpy as np

from fvae_tf.data import align_folder, alignment, readers, records
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
      frame: float32 [size, size] in [0, 1], how much of each crop pixel lies
        inside the photo (`alignment.photo_coverage`).
    """

    image: readers.FaceImage
    image_id: str
    crop: np.ndarray
    crop_hr: np.ndarray
    landmarks: np.ndarray
    transform: np.ndarray
    frame: np.ndarray


class StoredImage(NamedTuple):
    """What a build keeps of an image once its crops are written: enough to pair it."""

    image: readers.FaceImage
    image_id: str
    transform: np.ndarray  # float64 [2, 3], as `AlignedImage.transform`


class Failure(NamedTuple):
    """An image left out, and why (for a person)."""

    path: str
    reason: str


def _align_one(path: pathlib.Path, landmarks: np.ndarray | None, size: int, hr_size: int
               ) -> tuple[np.ndarray, ...] | str:
    """Loads and aligns one photo (detecting landmarks unless given).

    Returns:
      (crop, crop_hr, landmarks in normalized crop coords, transform, frame),
      or the reason the photo cannot be aligned.
    """
    try:
        image = alignment.load_image(path)
        if landmarks is None:
            landmarks = alignment.detect_landmarks(image)
        face = alignment.align_face(image, landmarks, size, hr_size)
    except alignment.InputError as e:
        return e.reason
    return face.crop, face.crop_hr, face.landmarks_aligned, face.transform, face.frame


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
        photo_shape = int(info["image_height"]), int(info["image_width"])
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
    frame = alignment.photo_coverage(transform, photo_shape, size)
    return crop, crop_hr, landmarks, transform, frame


def iter_aligned(
    images: list[readers.FaceImage],
    root: pathlib.Path,
    *,
    size: int = 64,
    hr_size: int = 256,
    aligned_dir: pathlib.Path | None = None,
    num_workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[AlignedImage | Failure]:
    """Aligns `images` one at a time, yielding each result in the order of `images`.

    Three routes: with `aligned_dir`, `data_prep.align_faces`' outputs are
    read back; images that carry landmarks (the synthetic set) are aligned on
    them without detection; otherwise each photo is loaded, its landmarks
    detected (dlib, largest face) and aligned, in `num_workers` processes.
    Only the crops of the images in flight are held, so a consumer that
    writes each one out runs in memory that does not grow with `images`.

    Args:
      images: from a reader.
      root: the reader's root, for `image_id`.
      size: side of the training crops.
      hr_size: side of the high-resolution crops.
      aligned_dir: `data_prep.align_faces --output_dir` run on `root`.
      num_workers: processes for detection (1 runs in this process).
      progress: called as progress(done, total) after each image.

    Yields:
      For each image, its `AlignedImage` or the `Failure` saying why not.
    """
    root = pathlib.Path(root)
    if aligned_dir is not None:
        results = (_read_aligned(pathlib.Path(aligned_dir), readers.image_id(image, root),
                                 size, hr_size) for image in images)
    elif all(image.landmarks is not None for image in images) or num_workers <= 1:
        results = (_align_one(image.path, image.landmarks, size, hr_size) for image in images)
    else:
        jobs = ((i, image.path, image.landmarks, size, hr_size) for i, image in enumerate(images))
        results = (result for _, result in align_folder.map_in_processes(
            _align_job, jobs, num_workers, ordered=True))
    for done, (image, result) in enumerate(zip(images, results), start=1):
        if progress is not None:
            progress(done, len(images))
        if isinstance(result, str):
            yield Failure(str(image.path), result)
        else:
            yield AlignedImage(image, readers.image_id(image, root), *result)


def align_images(images: list[readers.FaceImage], root: pathlib.Path, **kwargs
                 ) -> tuple[list[AlignedImage], list[Failure]]:
    """`iter_aligned` collected: (aligned, failures), aligned in the order of `images`.

    For a few images (evaluation's graded series); a build streams instead.
    """
    aligned, failures = [], []
    for result in iter_aligned(images, root, **kwargs):
        (failures if isinstance(result, Failure) else aligned).append(result)
    return aligned, failures


def pair_ground_truth(source: AlignedImage | StoredImage, target: AlignedImage | StoredImage,
                      size: int
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
    """How `iter_aligned` made the crops, for the manifest."""
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
    shard_size: int = 256  # records (images, or pairs) per shard file
    illumination: int = MULTIPIE_DEFAULT_ILLUMINATION  # Multi-PIE flash index
    manifest_csv: str | None = None  # folder source: CSV listing instead of folders
    overwrite: bool = False  # replace a dataset already in output_dir
    num_workers: int = 2  # processes for face detection


def check_output_dir(output_dir: pathlib.Path, overwrite: bool) -> None:
    """Refuses a dataset's output folder that is a file, or not empty without `overwrite`."""
    if output_dir.exists() and not output_dir.is_dir():
        raise records.RecordsError(output_dir, "exists and is not a folder")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise records.RecordsError(output_dir, "is not empty; choose an empty folder or set "
                                   "{overwrite} to replace the dataset in it", ("overwrite",))


def clear_dataset(output_dir: pathlib.Path) -> None:
    """Removes a previous dataset: the manifest first, so no reader trusts what follows."""
    (output_dir / records.MANIFEST_NAME).unlink(missing_ok=True)
    for pattern in ("*.tfrecord", "*.tfrecord.tmp", f".{records.MANIFEST_NAME}.*.tmp"):
        for path in output_dir.glob(pattern):
            path.unlink()


def _image_examples(stream: Iterator[AlignedImage | Failure], count: int,
                    stored: list[StoredImage], failures: list[Failure]) -> Iterator[bytes]:
    """Serialized image records of the next `count` results of `stream`.

    Appends each stored image's `StoredImage` to `stored` (its index in the
    table is its position there) and each failure to `failures`.
    """
    for result in itertools.islice(stream, count):
        if isinstance(result, Failure):
            failures.append(result)
            continue
        stored.append(StoredImage(result.image, result.image_id, result.transform))
        yield records.serialize_image(records.ImageRecord(
            crop=result.crop, crop_hr=result.crop_hr, landmarks=result.landmarks,
            expression=expression_id(result.image.expression),
            identity=result.image.identity, image_id=result.image_id, frame=result.frame))


def _pair_examples(stored: list[StoredImage], pairs: list[tuple[int, int]], size: int,
                   with_ground_truth: bool, progress: Callable[[int, int], None] | None
                   ) -> Iterator[bytes]:
    """Serialized pair records of `pairs` (indices into `stored`), in order."""
    for done, (s, t) in enumerate(pairs, start=1):
        truth = (pair_ground_truth(stored[s], stored[t], size) if with_ground_truth
                 else (None, None))
        example = records.serialize_pair(records.PairRecord(s, t, *truth))
        if progress is not None:  # before the yield: the consumer stops after the last one
            progress(done, len(pairs))
        yield example


def _count(labels: list[str]) -> dict[str, int]:
    return dict(sorted(collections.Counter(labels).items()))


def build_dataset(
    config: BuildConfig, progress: Callable[[str, int, int], None] | None = None
) -> records.Manifest:
    """Reads, aligns, splits, pairs and writes a dataset directory, in bounded memory.

    Identities are split before alignment (so a face that fails to align does
    not move anyone to the other split). Images are aligned one at a time, in
    split order, and each is written to its split's image table as it comes,
    so memory does not grow with the number of images. Then every ordered
    pair of two stored images of one identity with different expressions
    becomes a pair record (two indices, plus the ground truth of a synthetic
    pair); the pairs of a split are stored in a seeded random order. Colour
    transfer is left to the input pipeline.

    Args:
      config: the build settings.
      progress: called as progress(stage, done, total), stage "align" or a split name.

    Returns:
      The manifest written to `config.output_dir`.

    Raises:
      datasets.DatasetError: the input cannot be read.
      records.RecordsError: the output folder is not empty (without overwrite), or
        the input holds no pair at all (then nothing is left in the folder).
    """
    output_dir = pathlib.Path(config.output_dir)
    check_output_dir(output_dir, config.overwrite)
    with_ground_truth = readers.Source(config.source) is readers.Source.SYNTHETIC
    root = pathlib.Path(config.manifest_csv).parent if config.manifest_csv else config.input_dir
    images = readers.read_dataset(config.source, config.input_dir,
                                   illumination=config.illumination,
                                   manifest_csv=config.manifest_csv)
    identities = sorted({image.identity for image in images})
    members = dict(zip(records.SPLITS, readers.split_identities(
        identities, config.val_fraction, config.test_fraction, config.seed)))
    split_images = {split: [image for image in images if image.identity in set(names)]
                    for split, names in members.items()}

    created = not output_dir.exists()
    output_dir.mkdir(parents=True, exist_ok=True)
    clear_dataset(output_dir)
    stream = iter_aligned(
        [image for split in records.SPLITS for image in split_images[split]], root,
        size=config.size, hr_size=config.hr_size, aligned_dir=config.aligned_dir,
        num_workers=config.num_workers,
        progress=None if progress is None else functools.partial(progress, "align"))
    stored: dict[str, list[StoredImage]] = {}
    image_shards, failures = {}, []
    for split in records.SPLITS:
        stored[split] = []
        examples = _image_examples(stream, len(split_images[split]), stored[split], failures)
        image_shards[split] = records.write_shards(output_dir, f"{split}-images", examples,
                                                   config.shard_size)

    expressions = collections.defaultdict(set)
    for face in itertools.chain(*stored.values()):
        expressions[face.image.identity].add(face.image.expression)
    without_pairs = [i for i in identities if len(expressions[i]) < 2]
    if len(without_pairs) == len(identities):
        clear_dataset(output_dir)
        if created:
            output_dir.rmdir()
        raise records.RecordsError(config.input_dir, "no identity has two aligned images with "
                           "different expressions, so there is no pair to train on")

    splits = {}
    for index, split in enumerate(records.SPLITS):
        faces = stored[split]
        pairs = readers.ordered_pairs([face.image for face in faces])
        order = np.random.default_rng([config.seed, index]).permutation(len(pairs))
        pairs = [pairs[k] for k in order]
        report = None if progress is None else functools.partial(progress, split)
        examples = _pair_examples(faces, pairs, config.size, with_ground_truth, report)
        splits[split] = records.SplitInfo(
            identities=members[split],
            num_images=len(faces),
            num_pairs=len(pairs),
            images_per_expression=_count([face.image.expression for face in faces]),
            pairs_per_expression=_count([f"{faces[s].image.expression}->"
                                         f"{faces[t].image.expression}" for s, t in pairs]),
            image_shards=image_shards[split],
            shards=records.write_shards(output_dir, f"{split}-pairs", examples,
                                        config.shard_size),
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
        has_frame=True,
    )
    records.write_manifest(output_dir, manifest)
    return manifest
