"""The training input: `tf.data` over a dataset directory's pair tables.

`make_dataset` loads the split's image table (`fvae_tf.data.records`) into
memory once: the training crops decoded (uint8, ~12 kB an image at 64 px),
the high-resolution crops, only when asked for, as PNG bytes decoded per
pair. It then streams the pair records (two indices into the table and, for
synthetic data, the ground truth), shuffles them, gathers each pair's images,
applies the same random horizontal flip to everything that travels with a
pair (paper 5.2: augmentation), batches, recolours each source to its target
(paper 5.2; `color_transfer.transfer_color_tf`, equal to the numpy reference;
a mirror does not change the statistics it matches), scales images to
[-1, 1] and prefetches.

Determinism: for a given seed the stream is the same on every run. Shuffling
uses a seeded `shuffle` (pairs are also shuffled once when the shards are
written, so a bounded buffer mixes identities well); the flip of the n-th
element of the stream is `stateless_uniform(seed=[seed, n]) < 0.5`; and
`tf.data.Options.deterministic` keeps parallel decoding in order.

Horizontal flip of a pair, all in one go (normalized coordinates follow the
sampler's convention, so mirroring the image maps x to -x exactly):
  * images (source, target and their high-res crops) and their photo
    frames: columns reversed;
  * landmarks: x -> -x, then dlib's left/right points swapped
    (`face_template.MIRROR_PERMUTATION`);
  * gt_coords (target to source): the field is mirrored and its x negated,
    because mirrored target pixel p reads the mirror of where p read;
  * gt_visibility: mirrored;
  * teacher_coords and teacher_visibility (a teacher flow's labels, when the
    dataset has them) as gt_coords and gt_visibility.
"""

import pathlib
from typing import NamedTuple

import tensorflow as tf

from fvae_tf.data import color_transfer, records
from fvae_tf.data import jitter as jitter_lib
from fvae_tf.face_template import MIRROR_PERMUTATION

# Pair records are two indices, plus ~50 kB of ground truth for a synthetic
# pair at 64 px; this bounds the shuffle buffer's memory.
_MAX_SHUFFLE_BUFFER = 1024
_TABLE_BATCH = 256  # image records parsed and decoded at a time when loading a table


def flip_pair(example: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Mirrors one decoded pair horizontally (see the module docstring).

    Args:
      example: unbatched; images [H, W, 3], frames [H, W, 1], landmarks
        [68, 2], gt_ and teacher_coords [H, W, 2], gt_ and teacher_visibility
        [H, W, 1]; any of them may be absent, other keys pass through.

    Returns:
      The same keys, mirrored.
    """
    out = dict(example)
    for key in jitter_lib.IMAGE_KEYS + jitter_lib.FRAME_KEYS:
        if key in out:
            out[key] = tf.reverse(out[key], axis=[1])
    for key in jitter_lib.LANDMARK_KEYS:
        if key in out:
            out[key] = tf.gather(out[key] * [-1.0, 1.0], MIRROR_PERMUTATION)
    for prefix in records.FLOW_LABELS:
        if f"{prefix}_coords" in out:
            out[f"{prefix}_coords"] = tf.reverse(out[f"{prefix}_coords"], axis=[1]) * [-1.0, 1.0]
            out[f"{prefix}_visibility"] = tf.reverse(out[f"{prefix}_visibility"], axis=[1])
    return out


def decode_image(png: tf.Tensor, side: int) -> tf.Tensor:
    """PNG bytes of a stored crop -> uint8 [side, side, 3]."""
    return tf.ensure_shape(tf.io.decode_png(png, channels=3), [side, side, 3])


def to_float(pixels: tf.Tensor) -> tf.Tensor:
    """uint8 pixels -> float32 in [-1, 1]."""
    return tf.cast(pixels, tf.float32) / 127.5 - 1.0


class ImageTable(NamedTuple):
    """A split's image table in memory, indexed by the pair records.

    The training crops are decoded once; the high-resolution crops, when
    loaded, stay PNG bytes and are decoded per pair (a split's decoded crops
    at 256 px would take ~200 kB each).
    """

    crops: tf.Tensor  # uint8 [N, size, size, 3] RGB
    crops_hr: tf.Tensor | None  # string [N], PNG bytes of [hr_size, hr_size, 3] RGB
    landmarks: tf.Tensor  # float32 [N, 68, 2], normalized crop coords (x, y)
    expression: tf.Tensor  # int32 [N], expression ids
    identity: tf.Tensor  # string [N]
    image_id: tf.Tensor  # string [N]
    frames: tf.Tensor | None = None  # float32 [N, size, size, 1]: inside the photo (has_frame)


def load_images(dataset_dir: str | pathlib.Path, split: str, manifest: records.Manifest,
                with_hr: bool = False) -> ImageTable:
    """Reads a split's image table (`records`) into memory.

    Raises:
      records.RecordsError: no such split, or it holds no image.
    """
    files = records.image_shard_paths(dataset_dir, split, manifest)
    if manifest.splits[split].num_images == 0:
        raise records.RecordsError(dataset_dir, f"split {split!r} has no images")
    spec = records.image_feature_spec(with_hr, manifest.has_frame)
    parsed = (tf.data.TFRecordDataset(files)
              .batch(_TABLE_BATCH)
              .map(lambda serialized: tf.io.parse_example(serialized, spec)))
    columns: dict[str, list] = {}
    for batch in parsed:
        batch["crop"] = tf.map_fn(lambda png: decode_image(png, manifest.size), batch["crop"],
                                  fn_output_signature=tf.uint8)
        if manifest.has_frame:
            frame = tf.io.decode_raw(batch["frame"], tf.uint8)
            batch["frame"] = tf.reshape(tf.cast(frame, tf.float32) / 255.0,
                                        [-1, manifest.size, manifest.size, 1])
        for key, value in batch.items():
            columns.setdefault(key, []).append(value)
    table = {key: tf.concat(values, axis=0) for key, values in columns.items()}
    return ImageTable(
        crops=table["crop"], crops_hr=table.get("crop_hr"),
        landmarks=tf.reshape(table["landmarks"], [-1, records.NUM_LANDMARKS, 2]),
        expression=tf.cast(table["expression"], tf.int32),
        identity=table["identity"], image_id=table["image_id"], frames=table.get("frame"))


def _decoder(manifest: records.Manifest, table: ImageTable, with_hr: bool, with_ids: bool):
    """Returns a function: serialized pair record -> unbatched pair dict, images still uint8
    and the source not yet colour-transferred (`_finish` does both, per batch)."""
    spec = records.pair_feature_spec(manifest)
    size, hr_size = manifest.size, manifest.hr_size

    def decode(serialized):
        raw = tf.io.parse_single_example(serialized, spec)
        s, t = raw["source"], raw["target"]
        out = {
            "source": tf.gather(table.crops, s),
            "target": tf.gather(table.crops, t),
            "source_expression": tf.gather(table.expression, s),
            "target_expression": tf.gather(table.expression, t),
            "identity": tf.gather(table.identity, t),
            "source_landmarks": tf.gather(table.landmarks, s),
            "target_landmarks": tf.gather(table.landmarks, t),
        }
        if with_hr:
            out["source_hr"] = decode_image(tf.gather(table.crops_hr, s), hr_size)
            out["target_hr"] = decode_image(tf.gather(table.crops_hr, t), hr_size)
        if table.frames is not None:
            out["source_frame"] = tf.gather(table.frames, s)
            out["target_frame"] = tf.gather(table.frames, t)
        if with_ids:
            out["source_id"] = tf.gather(table.image_id, s)
            out["target_id"] = tf.gather(table.image_id, t)
        for prefix in records.flow_labels(manifest):
            out[f"{prefix}_coords"] = tf.reshape(raw[f"{prefix}_coords"], [size, size, 2])
            visibility = tf.io.decode_raw(raw[f"{prefix}_visibility"], tf.uint8)
            out[f"{prefix}_visibility"] = tf.reshape(tf.cast(visibility, tf.float32),
                                                     [size, size, 1])
        return out

    return decode


def _finish(batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Recolours a batch's sources to their targets and scales images to [-1, 1].

    After the flip, per batch: the transfer uses per-image statistics, which a
    mirror leaves unchanged, and a batch amortizes the ops' overhead.
    """
    out = dict(batch)
    for suffix in ("", "_hr"):
        if f"source{suffix}" in batch:
            target = batch[f"target{suffix}"]
            out[f"source{suffix}"] = to_float(
                color_transfer.transfer_color_tf(batch[f"source{suffix}"], target))
            out[f"target{suffix}"] = to_float(target)
    return out


def make_dataset(
    dataset_dir: str | pathlib.Path,
    split: str,
    batch_size: int,
    *,
    shuffle: bool = True,
    flip: bool = True,
    seed: int = 0,
    repeat: bool = True,
    with_hr: bool = False,
    with_ids: bool = False,
    jitter: float = 0.0,
    table: ImageTable | None = None,
) -> tf.data.Dataset:
    """Batches of decoded pairs from a dataset directory.

    Args:
      dataset_dir: written by `data_prep.build_dataset`.
      split: "train" or "val".
      batch_size: pairs per batch.
      shuffle: shuffle pairs (seeded; a new order each epoch).
      flip: the same random horizontal flip for everything in a pair.
      seed: seeds the shuffle and the flips.
      repeat: repeat forever; batches then all have `batch_size` pairs (the
        last partial batch of each pass is dropped). Without it, one pass
        over every pair, the last batch possibly smaller.
      with_hr: also decode the high-resolution crops.
      with_ids: also return the images' ids.
      jitter: size of a random similarity applied to each pair after the
        flip (`fvae_tf.data.jitter`; not in the paper); 0: none.
      table: the split's image table (`load_images`, with the high-res crops
        when with_hr), so that a caller making one dataset per epoch reads it
        once; None: loaded here.

    Returns:
      A dataset of dicts:
        "source", "target": float32 [B, size, size, 3] in [-1, 1] (source
          colour-transferred to the target);
        "source_expression", "target_expression": int32 [B], expression ids;
        "identity": string [B];
        "source_landmarks", "target_landmarks": float32 [B, 68, 2],
          normalized crop coords (x, y);
        "gt_coords": float32 [B, size, size, 2] and "gt_visibility": float32
          [B, size, size, 1], when the dataset has ground truth (synthetic);
        "teacher_coords", "teacher_visibility": the same, when the dataset
          has a teacher flow (`records.Manifest.teacher_flow`);
        "source_frame", "target_frame": float32 [B, size, size, 1] in [0, 1],
          how much of each pixel lies inside its photo, when the dataset's
          manifest `has_frame`;
        "source_hr", "target_hr": float32 [B, hr_size, hr_size, 3] when with_hr
          (source colour-transferred to the target at this resolution);
        "source_id", "target_id": string [B] when with_ids.

    Raises:
      records.RecordsError: the directory is not a finished dataset, or the
        split does not exist or is empty.
    """
    manifest = records.read_manifest(dataset_dir)
    files = records.shard_paths(dataset_dir, split, manifest)
    num_pairs = manifest.splits[split].num_pairs
    if num_pairs == 0:
        raise records.RecordsError(dataset_dir, f"split {split!r} has no pairs")
    if table is None:
        table = load_images(dataset_dir, split, manifest, with_hr)
    options = tf.data.Options()
    options.deterministic = True

    ds = tf.data.TFRecordDataset(files).with_options(options)
    if shuffle:
        ds = ds.shuffle(min(num_pairs, _MAX_SHUFFLE_BUFFER), seed=seed,
                        reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    decode = _decoder(manifest, table, with_hr, with_ids)

    def prepare(index, serialized):
        example = decode(serialized)
        key = tf.stack([tf.constant(seed, tf.int64), index])
        if flip:
            coin = tf.random.stateless_uniform([], seed=key)
            example = tf.cond(coin < 0.5, lambda: flip_pair(example), lambda: example)
        return jitter_lib.jitter_pair(example, jitter,
                                      tf.random.experimental.stateless_fold_in(key, 1))

    ds = ds.enumerate().map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=repeat)
    ds = ds.map(_finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
