"""Dataset storage: an image table and a pair table per split, in TFRecord shards, plus a manifest.

A dataset directory holds

    DATASET_DIR/{split}-images-NNNNN.tfrecord   the image table of a split
    DATASET_DIR/{split}-pairs-NNNNN.tfrecord    the pair table of a split
    DATASET_DIR/manifest.json

Each aligned image is stored once, as one `tf.train.Example` of its split's
image table (its index is its position in the table: shards in manifest
order, records in file order):

    crop                      PNG bytes, uint8 RGB [size, size, 3]
    crop_hr                   PNG bytes, uint8 RGB [hr_size, hr_size, 3]
    landmarks                 float [136]: 68 dlib landmarks (x, y) in
                                normalized crop coordinates (sampler convention)
    expression                int64, index into `fvae_tf.expressions.EXPRESSIONS`
    identity, image_id        bytes; the id is unique (`fvae_tf.data.readers.image_id`)
    frame                     when the manifest's `has_frame`: bytes, uint8
                                [size * size], 255 x the share of each crop
                                pixel inside the photo
                                (`fvae_tf.data.alignment.photo_coverage`)

Each ordered pair (source, target) of one identity is one `tf.train.Example`
of the pair table, referring to the image table by index; only what belongs
to the pair itself is stored with it:

    source, target            int64, indices into the split's image table
    gt_coords                 synthetic only: float [size * size * 2], the
                                ground-truth target-to-source sampling
                                coordinates [size, size, 2]
    gt_visibility             synthetic only: bytes, uint8 [size * size] in
                                {0, 1}, 1 where the target pixel is visible in
                                the source
    teacher_coords,           when the manifest names a `teacher_flow`
    teacher_visibility          (`fvae_tf.eval.teacher_flow`): the same two
                                fields from an optical flow of the pair's
                                high-resolution crops, a label for the opt-in
                                supervision term, never a ground truth

Pixels are stored as aligned, without colour transfer: the input pipeline
recolours each source to its target when it reads a pair. The ground truth
stays per pair (it depends on both images); everything else is shared, so the
shards grow with the number of images, not with its square.

Atomicity: each shard is written to `<name>.tmp` and renamed when complete;
the manifest is written last, also atomically, and lists every shard with its
record count and byte size. Readers trust only shards the manifest lists and
check their sizes, so a killed build leaves no shard a later run reads.
Format 1 (one record per pair holding both images) is refused with a request
to rebuild.
"""

import dataclasses
import itertools
import json
import os
import pathlib
from collections.abc import Iterable

import numpy as np
import tensorflow as tf

from fvae_tf import atomic_io, errors

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 2
SPLITS = ("train", "val", "test")  # by identity; val: early stopping, test: reported numbers
NUM_LANDMARKS = 68
# A pair's optional flow labels, each `{prefix}_coords` and `{prefix}_visibility`: the
# synthetic render's ground truth, and an optical-flow teacher's (module docstring).
FLOW_LABELS = ("gt", "teacher")


class RecordsError(errors.ActionableError):
    """A dataset directory that cannot be read or written: `.path` and `.reason`.

    `reason` may name settings as `{name}` (see `fvae_tf.errors`).
    """

    def __init__(self, path: pathlib.Path | str, reason: str, settings: tuple[str, ...] = ()):
        super().__init__(f"{path}: {reason}", settings)
        self.path = path
        self.reason = reason


@dataclasses.dataclass(frozen=True, eq=False)
class ImageRecord:
    """One aligned image of a split's image table (see the module docstring)."""

    crop: np.ndarray  # uint8 [size, size, 3] RGB
    crop_hr: np.ndarray  # uint8 [hr_size, hr_size, 3] RGB
    landmarks: np.ndarray  # [68, 2] normalized crop coords (x, y)
    expression: int
    identity: str
    image_id: str
    frame: np.ndarray | None = None  # float [size, size] in [0, 1]: crop pixel inside the photo


@dataclasses.dataclass(frozen=True, eq=False)
class PairRecord:
    """One training pair: two indices into its split's image table, and its ground truth."""

    source: int  # index of the source image
    target: int  # index of the target image
    gt_coords: np.ndarray | None = None  # [size, size, 2] normalized (x, y), target to source
    gt_visibility: np.ndarray | None = None  # [size, size] in {0, 1}
    teacher_coords: np.ndarray | None = None  # like gt_coords, from an optical-flow teacher
    teacher_visibility: np.ndarray | None = None  # like gt_visibility: where it is trusted


@dataclasses.dataclass(frozen=True)
class ShardInfo:
    """One finished shard file."""

    file: str  # name inside the dataset directory
    num_records: int
    num_bytes: int


@dataclasses.dataclass(frozen=True)
class SplitInfo:
    """What one split holds."""

    identities: list[str]
    num_images: int  # the image table's length: every aligned image of the split
    num_pairs: int
    images_per_expression: dict[str, int]
    pairs_per_expression: dict[str, int]  # "source->target" -> count
    image_shards: list[ShardInfo]
    shards: list[ShardInfo]  # the pair table


@dataclasses.dataclass(frozen=True)
class Manifest:
    """The description of a finished dataset directory (`manifest.json`)."""

    source: str  # the reader: synthetic, london, multipie, folder
    size: int  # side of `crop`
    hr_size: int  # side of `crop_hr`
    has_ground_truth: bool  # pairs carry gt_coords / gt_visibility (synthetic)
    alignment: str  # how the crops were made, for a person
    flags: dict  # the build settings
    splits: dict[str, SplitInfo]
    failures: list[dict]  # {"path", "reason"} of images left out
    identities_without_pairs: list[str]  # fewer than two expressions aligned
    has_frame: bool = False  # image records carry `frame` (datasets built before it: no)
    teacher_flow: str = ""  # pairs carry teacher_coords / teacher_visibility of this flow
    format_version: int = FORMAT_VERSION


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def _floats(array: np.ndarray) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(
        value=np.asarray(array, np.float32).ravel()))


def _example(feature: dict[str, tf.train.Feature]) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def serialize_image(image: ImageRecord) -> bytes:
    """Encodes an image of the table as a serialized `tf.train.Example`."""
    feature = {
        "crop": _bytes(atomic_io.encode_png(image.crop)),
        "crop_hr": _bytes(atomic_io.encode_png(image.crop_hr)),
        "landmarks": _floats(image.landmarks),
        "expression": _int64(image.expression),
        "identity": _bytes(image.identity.encode()),
        "image_id": _bytes(image.image_id.encode()),
    }
    if image.frame is not None:
        frame = np.round(np.clip(image.frame, 0.0, 1.0) * 255.0).astype(np.uint8)
        feature["frame"] = _bytes(frame.tobytes())
    return _example(feature)


def serialize_pair(pair: PairRecord) -> bytes:
    """Encodes a pair as a serialized `tf.train.Example`.

    Raises:
      ValueError: gt_visibility holds values other than 0 and 1 (it is stored as bytes).
    """
    feature = {"source": _int64(pair.source), "target": _int64(pair.target)}
    for prefix in FLOW_LABELS:
        coords = getattr(pair, f"{prefix}_coords")
        if coords is not None:
            visibility = np.asarray(getattr(pair, f"{prefix}_visibility"))
            if not np.isin(visibility, (0, 1)).all():
                raise ValueError(f"{prefix}_visibility must hold only 0 and 1")
            feature[f"{prefix}_coords"] = _floats(coords)
            feature[f"{prefix}_visibility"] = _bytes(visibility.astype(np.uint8).tobytes())
    return _example(feature)


def image_feature_spec(with_hr: bool = True, with_frame: bool = False
                       ) -> dict[str, tf.io.FixedLenFeature]:
    """The `tf.io.parse_example` spec of an image table (`crop_hr`, `frame` only when asked)."""
    spec = {
        "crop": tf.io.FixedLenFeature([], tf.string),
        "landmarks": tf.io.FixedLenFeature([NUM_LANDMARKS * 2], tf.float32),
        "expression": tf.io.FixedLenFeature([], tf.int64),
        "identity": tf.io.FixedLenFeature([], tf.string),
        "image_id": tf.io.FixedLenFeature([], tf.string),
    }
    if with_hr:
        spec["crop_hr"] = tf.io.FixedLenFeature([], tf.string)
    if with_frame:
        spec["frame"] = tf.io.FixedLenFeature([], tf.string)
    return spec


def pair_feature_spec(manifest: Manifest) -> dict[str, tf.io.FixedLenFeature]:
    """The `tf.io.parse_example` spec of a dataset's pair table."""
    spec = {"source": tf.io.FixedLenFeature([], tf.int64),
            "target": tf.io.FixedLenFeature([], tf.int64)}
    for prefix in flow_labels(manifest):
        spec[f"{prefix}_coords"] = tf.io.FixedLenFeature([manifest.size * manifest.size * 2],
                                                         tf.float32)
        spec[f"{prefix}_visibility"] = tf.io.FixedLenFeature([], tf.string)
    return spec


def flow_labels(manifest: Manifest) -> tuple[str, ...]:
    """The flow labels a dataset's pairs carry, of `FLOW_LABELS`."""
    present = {"gt": manifest.has_ground_truth, "teacher": bool(manifest.teacher_flow)}
    return tuple(prefix for prefix in FLOW_LABELS if present[prefix])


def shard_name(table: str, index: int) -> str:
    """`{table}-NNNNN.tfrecord`, NNNNN counting from 0; table is e.g. "train-images"."""
    return f"{table}-{index:05d}.tfrecord"


def write_shards(
    dataset_dir: pathlib.Path,
    table: str,
    examples: Iterable[bytes],
    shard_size: int,
) -> list[ShardInfo]:
    """Writes serialized examples, streamed, into shards of `shard_size` records.

    Each shard goes to `<name>.tmp` and is renamed once complete; only the
    shard being written is open, so memory does not grow with the table.

    Args:
      dataset_dir: an existing directory.
      table: the shards' name prefix, "{split}-images" or "{split}-pairs".
      examples: serialized examples in storage order, consumed once.
      shard_size: records per shard (the last one may hold fewer).

    Returns:
      The shards written, in order (none for no examples).
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    examples = iter(examples)
    shards = []
    while (first := next(examples, None)) is not None:
        path = pathlib.Path(dataset_dir) / shard_name(table, len(shards))
        tmp = path.with_name(path.name + ".tmp")
        count = 0
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            for example in itertools.chain([first], itertools.islice(examples, shard_size - 1)):
                writer.write(example)
                count += 1
        os.replace(tmp, path)
        shards.append(ShardInfo(file=path.name, num_records=count,
                                num_bytes=path.stat().st_size))
    return shards


def write_manifest(dataset_dir: pathlib.Path, manifest: Manifest) -> None:
    """Writes `manifest.json` atomically; call it after every shard is in place."""
    atomic_io.write_json(pathlib.Path(dataset_dir) / MANIFEST_NAME, dataclasses.asdict(manifest))


def _rebuild_error(path: pathlib.Path, raw: dict) -> RecordsError:
    """The refusal of a manifest of another format, with the build command that replaces it."""
    flags = raw.get("flags") if isinstance(raw.get("flags"), dict) else {}
    source = flags.get("source") or "SOURCE"
    input_dir = flags.get("input_dir") or "INPUT_DIR"
    version = raw.get("format_version")
    what = ("the old format (one record per pair holding both images)" if version == 1
            else f"format_version {version!r}")
    return RecordsError(
        path, f"written in {what}; this code reads format {FORMAT_VERSION}. Rebuild the "
        f"dataset: python -m data_prep.build_dataset {{source}}={source} "
        f"{{input_dir}}={input_dir} {{output_dir}}={path.parent} {{overwrite}}",
        ("source", "input_dir", "output_dir", "overwrite"))


def read_manifest(dataset_dir: pathlib.Path) -> Manifest:
    """Reads and checks a dataset directory's manifest.

    Raises:
      RecordsError: no manifest (the build did not finish), a manifest of
        another format (the message says how to rebuild), an unreadable one,
        or a listed shard that is missing or has another size.
    """
    path = pathlib.Path(dataset_dir) / MANIFEST_NAME
    if not path.is_file():
        raise RecordsError(path, "missing: not a finished dataset (a build that was "
                           "interrupted writes none); run data_prep.build_dataset")
    try:
        raw = json.loads(path.read_text())
        if raw.get("format_version") != FORMAT_VERSION:
            raise _rebuild_error(path, raw)
        splits = {
            name: SplitInfo(**{**split,
                               "image_shards": [ShardInfo(**s) for s in split["image_shards"]],
                               "shards": [ShardInfo(**s) for s in split["shards"]]})
            for name, split in raw.pop("splits").items()
        }
        manifest = Manifest(**raw, splits=splits)
    except (json.JSONDecodeError, TypeError, KeyError, AttributeError) as e:
        raise RecordsError(path, f"not a valid manifest ({e}); rebuild the dataset") from None
    for split in manifest.splits.values():
        for shard in split.image_shards + split.shards:
            shard_path = path.parent / shard.file
            if not shard_path.is_file() or shard_path.stat().st_size != shard.num_bytes:
                raise RecordsError(shard_path, "missing or not the size the manifest records "
                                   f"({shard.num_bytes} bytes); rebuild the dataset")
    return manifest


def _split(dataset_dir: pathlib.Path, split: str, manifest: Manifest) -> SplitInfo:
    if split not in manifest.splits:
        if split in SPLITS and "test" not in manifest.splits:  # built before the three-way split
            source = manifest.flags.get("source") or "SOURCE"
            input_dir = manifest.flags.get("input_dir") or "INPUT_DIR"
            raise RecordsError(dataset_dir, f"has no {split!r} split (it was built before "
                               "datasets had train/val/test splits); rebuild it: python -m "
                               f"data_prep.build_dataset {{source}}={source} "
                               f"{{input_dir}}={input_dir} {{output_dir}}={dataset_dir} "
                               "{overwrite}", ("source", "input_dir", "output_dir", "overwrite"))
        raise RecordsError(dataset_dir, f"no split {split!r}; it has {sorted(manifest.splits)}")
    return manifest.splits[split]


def shard_paths(dataset_dir: pathlib.Path, split: str, manifest: Manifest) -> list[str]:
    """The pair-table shard files of `split`, as listed in `manifest`."""
    return [str(pathlib.Path(dataset_dir) / s.file)
            for s in _split(dataset_dir, split, manifest).shards]


def image_shard_paths(dataset_dir: pathlib.Path, split: str, manifest: Manifest) -> list[str]:
    """The image-table shard files of `split`, in table order, as listed in `manifest`."""
    return [str(pathlib.Path(dataset_dir) / s.file)
            for s in _split(dataset_dir, split, manifest).image_shards]
