"""Pair records: TFRecord shards plus a manifest, written so a killed run leaves nothing usable.

A dataset directory holds

    DATASET_DIR/{train,val,test}-NNNNN-of-MMMMM.tfrecord
    DATASET_DIR/manifest.json

One `tf.train.Example` per ordered pair (source, target) of one identity:

    source, target            PNG bytes, uint8 RGB [size, size, 3]; the source
                              is already colour-transferred to the target
    source_hr, target_hr      PNG bytes, uint8 RGB [hr_size, hr_size, 3], same
    source_expression,        int64, index into `fvae_tf.expressions.EXPRESSIONS`
      target_expression
    identity, source_id,      bytes; ids are the images' unique ids
      target_id                 (`fvae_tf.data.readers.image_id`)
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

import dataclasses
import json
import os
import pathlib
from collections.abc import Iterable

import numpy as np
import tensorflow as tf

from fvae_tf import atomic_io

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")  # by identity; val: early stopping, test: reported numbers
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
      split: one of `SPLITS`.
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
        if split in SPLITS and "test" not in manifest.splits:  # built before the three-way split
            source = manifest.flags.get("source") or "SOURCE"
            input_dir = manifest.flags.get("input_dir") or "INPUT_DIR"
            raise RecordsError(dataset_dir, f"has no {split!r} split (it was built before "
                               "datasets had train/val/test splits); rebuild it: python -m "
                               f"data_prep.build_dataset --source={source} "
                               f"--input_dir={input_dir} --output_dir={dataset_dir} --overwrite")
        raise RecordsError(dataset_dir, f"no split {split!r}; it has {sorted(manifest.splits)}")
    return [str(pathlib.Path(dataset_dir) / s.file) for s in manifest.splits[split].shards]
