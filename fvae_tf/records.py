"""Pair records: TFRecord shards plus a manifest, written so a killed run leaves nothing usable.

A dataset directory holds

    DATASET_DIR/{train,val}-NNNNN-of-MMMMM.tfrecord
    DATASET_DIR/manifest.json

One `tf.train.Example` per ordered pair (source, target) of one identity:

    source, target            PNG bytes, uint8 RGB [size, size, 3]; the source
                              is already colour-transferred to the target
    source_hr, target_hr      PNG bytes, uint8 RGB [hr_size, hr_size, 3], same
    source_expression,        int64, index into `fvae_tf.expressions.EXPRESSIONS`
      target_expression
    identity, source_id,      bytes; ids are the images' unique ids
      target_id                 (`fvae_tf.datasets.image_id`)
    source_landmarks,         float [136]: 68 dlib landmarks (x, y) in
      target_landmarks          normalized crop coordinates (sampler convention)
    gt_coords                 synthetic only: float [size * size * 2], the
                                ground-truth target-to-source sampling
                                coordinates [size, size, 2]
    gt_visibility             synthetic only: float [size * size], 1 where the
                                target pixel is visible in the source

Atomicity: each shard is written to `<name>.tmp` and renamed when complete;
the manifest is written last, also atomically, and lists every shard with its
pair count and byte size. Readers trust only shards the manifest lists and
check their sizes, so a killed build leaves no shard a later run reads.
"""

import collections
import dataclasses
import functools
import json
import os
import pathlib
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import tensorflow as tf

from fvae_tf import atomic_io, color_transfer, datasets
from fvae_tf.expressions import MULTIPIE_DEFAULT_ILLUMINATION, expression_id

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
SPLITS = ("train", "val")
NUM_LANDMARKS = 68


class RecordsError(Exception):
    """A dataset directory that cannot be read or written: `.path` and `.reason`."""

    def __init__(self, path: pathlib.Path | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclasses.dataclass(frozen=True, eq=False)
class PairRecord:
    """One training example (see the module docstring for the stored form)."""

    source: np.ndarray  # uint8 [size, size, 3] RGB, colour-transferred to the target
    target: np.ndarray  # uint8 [size, size, 3] RGB
    source_hr: np.ndarray  # uint8 [hr_size, hr_size, 3] RGB, colour-transferred
    target_hr: np.ndarray  # uint8 [hr_size, hr_size, 3] RGB
    source_expression: int
    target_expression: int
    identity: str
    source_id: str
    target_id: str
    source_landmarks: np.ndarray  # [68, 2] normalized crop coords (x, y)
    target_landmarks: np.ndarray  # [68, 2] normalized crop coords (x, y)
    gt_coords: np.ndarray | None = None  # [size, size, 2] normalized (x, y), target to source
    gt_visibility: np.ndarray | None = None  # [size, size] in {0, 1}


@dataclasses.dataclass(frozen=True)
class ShardInfo:
    """One finished shard file."""

    file: str  # name inside the dataset directory
    num_pairs: int
    num_bytes: int


@dataclasses.dataclass(frozen=True)
class SplitInfo:
    """What one split holds."""

    identities: list[str]
    num_images: int
    num_pairs: int
    images_per_expression: dict[str, int]
    pairs_per_expression: dict[str, int]  # "source->target" -> count
    shards: list[ShardInfo]


@dataclasses.dataclass(frozen=True)
class Manifest:
    """The description of a finished dataset directory (`manifest.json`)."""

    source: str  # the reader: synthetic, london, multipie, folder
    size: int  # side of `source` / `target`
    hr_size: int  # side of `source_hr` / `target_hr`
    has_ground_truth: bool  # gt_coords / gt_visibility present (synthetic)
    alignment: str  # how the crops were made, for a person
    flags: dict  # the build settings
    splits: dict[str, SplitInfo]
    failures: list[dict]  # {"path", "reason"} of images left out
    identities_without_pairs: list[str]  # fewer than two expressions aligned
    format_version: int = FORMAT_VERSION


def serialize_pair(pair: PairRecord) -> bytes:
    """Encodes a pair as a serialized `tf.train.Example`."""

    def png(image):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[atomic_io.encode_png(image)]))

    def text(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))

    def int64(value):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

    def floats(array):
        return tf.train.Feature(float_list=tf.train.FloatList(
            value=np.asarray(array, np.float32).ravel()))

    feature = {
        "source": png(pair.source), "target": png(pair.target),
        "source_hr": png(pair.source_hr), "target_hr": png(pair.target_hr),
        "source_expression": int64(pair.source_expression),
        "target_expression": int64(pair.target_expression),
        "identity": text(pair.identity),
        "source_id": text(pair.source_id), "target_id": text(pair.target_id),
        "source_landmarks": floats(pair.source_landmarks),
        "target_landmarks": floats(pair.target_landmarks),
    }
    if pair.gt_coords is not None:
        feature["gt_coords"] = floats(pair.gt_coords)
        feature["gt_visibility"] = floats(pair.gt_visibility)
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def feature_spec(manifest: Manifest) -> dict[str, tf.io.FixedLenFeature]:
    """The `tf.io.parse_single_example` spec of a dataset's records."""
    string, int64, f32 = tf.string, tf.int64, tf.float32
    spec = {
        "source": tf.io.FixedLenFeature([], string), "target": tf.io.FixedLenFeature([], string),
        "source_hr": tf.io.FixedLenFeature([], string),
        "target_hr": tf.io.FixedLenFeature([], string),
        "source_expression": tf.io.FixedLenFeature([], int64),
        "target_expression": tf.io.FixedLenFeature([], int64),
        "identity": tf.io.FixedLenFeature([], string),
        "source_id": tf.io.FixedLenFeature([], string),
        "target_id": tf.io.FixedLenFeature([], string),
        "source_landmarks": tf.io.FixedLenFeature([NUM_LANDMARKS * 2], f32),
        "target_landmarks": tf.io.FixedLenFeature([NUM_LANDMARKS * 2], f32),
    }
    if manifest.has_ground_truth:
        pixels = manifest.size * manifest.size
        spec["gt_coords"] = tf.io.FixedLenFeature([pixels * 2], f32)
        spec["gt_visibility"] = tf.io.FixedLenFeature([pixels], f32)
    return spec


def shard_name(split: str, index: int, num_shards: int) -> str:
    """`{split}-NNNNN-of-MMMMM.tfrecord`, NNNNN counting from 0."""
    return f"{split}-{index:05d}-of-{num_shards:05d}.tfrecord"


def write_shards(
    dataset_dir: pathlib.Path,
    split: str,
    examples: Iterable[bytes],
    num_examples: int,
    shard_size: int,
) -> list[ShardInfo]:
    """Writes serialized examples into `ceil(num_examples / shard_size)` shards.

    Each shard goes to `<name>.tmp` and is renamed once complete.

    Args:
      dataset_dir: an existing directory.
      split: "train" or "val".
      examples: exactly `num_examples` serialized examples, in storage order.
      num_examples: their number (names carry the shard count up front).
      shard_size: examples per shard (the last one may hold fewer).

    Returns:
      The shards written, in order.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    num_shards = -(-num_examples // shard_size)
    examples = iter(examples)
    shards = []
    for index in range(num_shards):
        path = pathlib.Path(dataset_dir) / shard_name(split, index, num_shards)
        tmp = path.with_name(path.name + ".tmp")
        count = min(shard_size, num_examples - index * shard_size)
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            for _ in range(count):
                writer.write(next(examples))
        os.replace(tmp, path)
        shards.append(ShardInfo(file=path.name, num_pairs=count, num_bytes=path.stat().st_size))
    return shards


def write_manifest(dataset_dir: pathlib.Path, manifest: Manifest) -> None:
    """Writes `manifest.json` atomically; call it after every shard is in place."""
    atomic_io.write_json(pathlib.Path(dataset_dir) / MANIFEST_NAME, dataclasses.asdict(manifest))


def read_manifest(dataset_dir: pathlib.Path) -> Manifest:
    """Reads and checks a dataset directory's manifest.

    Raises:
      RecordsError: no manifest (the build did not finish), an unreadable or
        foreign manifest, or a listed shard that is missing or has another size.
    """
    path = pathlib.Path(dataset_dir) / MANIFEST_NAME
    if not path.is_file():
        raise RecordsError(path, "missing: not a finished dataset (a build that was "
                           "interrupted writes none); run data_prep.build_dataset")
    try:
        raw = json.loads(path.read_text())
        if raw.get("format_version") != FORMAT_VERSION:
            raise RecordsError(path, f"format_version {raw.get('format_version')!r}, this "
                               f"code reads {FORMAT_VERSION}; rebuild the dataset")
        splits = {
            name: SplitInfo(**{**split, "shards": [ShardInfo(**s) for s in split["shards"]]})
            for name, split in raw.pop("splits").items()
        }
        manifest = Manifest(**raw, splits=splits)
    except (json.JSONDecodeError, TypeError, KeyError, AttributeError) as e:
        raise RecordsError(path, f"not a valid manifest ({e}); rebuild the dataset") from None
    for split in manifest.splits.values():
        for shard in split.shards:
            shard_path = path.parent / shard.file
            if not shard_path.is_file() or shard_path.stat().st_size != shard.num_bytes:
                raise RecordsError(shard_path, "missing or not the size the manifest records "
                                   f"({shard.num_bytes} bytes); rebuild the dataset")
    return manifest


def shard_paths(dataset_dir: pathlib.Path, split: str, manifest: Manifest) -> list[str]:
    """The shard files of `split`, as listed in `manifest`."""
    if split not in manifest.splits:
        raise RecordsError(dataset_dir, f"no split {split!r}; it has {sorted(manifest.splits)}")
    return [str(pathlib.Path(dataset_dir) / s.file) for s in manifest.splits[split].shards]


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """Settings of one dataset build (the flags of `data_prep.build_dataset`)."""

    source: str  # a `datasets.Source` value
    input_dir: str  # the reader's root
    output_dir: str  # the dataset directory to write
    aligned_dir: str | None = None  # reuse `data_prep.align_faces` output instead of detecting
    size: int = 64  # side of the training crops
    hr_size: int = 256  # side of the high-resolution crops
    val_fraction: float = 0.2  # share of identities held out (SPEC: 80/20)
    seed: int = 0  # identity split and storage order
    shard_size: int = 256  # pairs per shard
    illumination: int = MULTIPIE_DEFAULT_ILLUMINATION  # Multi-PIE flash index
    manifest_csv: str | None = None  # folder source: CSV listing instead of folders
    overwrite: bool = False  # replace a dataset already in output_dir
    num_workers: int = 2  # processes for face detection


def _check_output_dir(output_dir: pathlib.Path, overwrite: bool) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise RecordsError(output_dir, "exists and is not a folder")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise RecordsError(output_dir, "is not empty; choose an empty folder or pass "
                           "--overwrite to replace the dataset in it")


def _clear_dataset(output_dir: pathlib.Path) -> None:
    """Removes a previous dataset: the manifest first, so no reader trusts what follows."""
    (output_dir / MANIFEST_NAME).unlink(missing_ok=True)
    for pattern in ("*.tfrecord", "*.tfrecord.tmp", f".{MANIFEST_NAME}.*.tmp"):
        for path in output_dir.glob(pattern):
            path.unlink()


def _make_pair(source: datasets.AlignedImage, target: datasets.AlignedImage, size: int,
               with_ground_truth: bool) -> PairRecord:
    """The record of one ordered pair, the source colour-transferred to the target."""
    ground_truth = (datasets.pair_ground_truth(source, target, size) if with_ground_truth
                    else None)
    return PairRecord(
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


def _serialized(faces: list[datasets.AlignedImage], pairs: list[tuple[int, int]], size: int,
                with_ground_truth: bool, progress: Callable[[int, int], None] | None
                ) -> Iterator[bytes]:
    """Serialized records of `pairs` (indices into `faces`), in order."""
    for done, (s, t) in enumerate(pairs, start=1):
        example = serialize_pair(_make_pair(faces[s], faces[t], size, with_ground_truth))
        if progress is not None:  # before the yield: the consumer stops after the last one
            progress(done, len(pairs))
        yield example


def _count(labels: list[str]) -> dict[str, int]:
    return dict(sorted(collections.Counter(labels).items()))


def build_dataset(
    config: BuildConfig, progress: Callable[[str, int, int], None] | None = None
) -> Manifest:
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
      RecordsError: the output folder is not empty (without overwrite), or
        the input holds no pair at all.
    """
    output_dir = pathlib.Path(config.output_dir)
    _check_output_dir(output_dir, config.overwrite)
    with_ground_truth = datasets.Source(config.source) is datasets.Source.SYNTHETIC
    root = pathlib.Path(config.manifest_csv).parent if config.manifest_csv else config.input_dir
    images = datasets.read_dataset(config.source, config.input_dir,
                                   illumination=config.illumination,
                                   manifest_csv=config.manifest_csv)
    aligned, failures = datasets.align_images(
        images, root, size=config.size, hr_size=config.hr_size,
        aligned_dir=config.aligned_dir, num_workers=config.num_workers,
        progress=None if progress is None else functools.partial(progress, "align"))
    expressions = collections.defaultdict(set)
    for face in aligned:
        expressions[face.image.identity].add(face.image.expression)
    identities = sorted({image.identity for image in images})
    without_pairs = [i for i in identities if len(expressions[i]) < 2]
    if len(without_pairs) == len(identities):
        raise RecordsError(config.input_dir, "no identity has two aligned images with "
                           "different expressions, so there is no pair to train on")

    output_dir.mkdir(parents=True, exist_ok=True)
    _clear_dataset(output_dir)
    splits = {}
    for index, (split, members) in enumerate(zip(SPLITS, datasets.split_identities(
            identities, config.val_fraction, config.seed))):
        member_set = set(members)
        faces = [face for face in aligned if face.image.identity in member_set]
        pairs = datasets.ordered_pairs([face.image for face in faces])
        order = np.random.default_rng([config.seed, index]).permutation(len(pairs))
        pairs = [pairs[k] for k in order]
        report = None if progress is None else functools.partial(progress, split)
        examples = _serialized(faces, pairs, config.size, with_ground_truth, report)
        shards = write_shards(output_dir, split, examples, len(pairs), config.shard_size)
        splits[split] = SplitInfo(
            identities=members,
            num_images=len(faces),
            num_pairs=len(pairs),
            images_per_expression=_count([face.image.expression for face in faces]),
            pairs_per_expression=_count([f"{faces[s].image.expression}->"
                                         f"{faces[t].image.expression}" for s, t in pairs]),
            shards=shards,
        )
    manifest = Manifest(
        source=datasets.Source(config.source).value,
        size=config.size,
        hr_size=config.hr_size,
        has_ground_truth=with_ground_truth,
        alignment=datasets.alignment_description(config.source, config.aligned_dir),
        flags=dataclasses.asdict(config),
        splits=splits,
        failures=[failure._asdict() for failure in failures],
        identities_without_pairs=without_pairs,
    )
    write_manifest(output_dir, manifest)
    return manifest
