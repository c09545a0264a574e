"""The training input: `tf.data` over a dataset directory's pair shards.

`make_dataset` reads the shards the manifest lists (`fvae_tf.data.records`),
decodes the PNGs, scales images to [-1, 1], applies the same random
horizontal flip to everything that travels with a pair (paper 5.2:
augmentation), shuffles, batches and prefetches.

Determinism: for a given seed the stream is the same on every run. Shuffling
uses a seeded `shuffle` (pairs are also shuffled once when the shards are
written, so a bounded buffer mixes identities well); the flip of the n-th
element of the stream is `stateless_uniform(seed=[seed, n]) < 0.5`; and
`tf.data.Options.deterministic` keeps parallel decoding in order.

Horizontal flip of a pair, all in one go (normalized coordinates follow the
sampler's convention, so mirroring the image maps x to -x exactly):
  * images (source, target and their high-res crops): columns reversed;
  * landmarks: x -> -x, then dlib's left/right points swapped
    (`face_template.MIRROR_PERMUTATION`);
  * gt_coords (target to source): the field is mirrored and its x negated,
    because mirrored target pixel p reads the mirror of where p read;
  * gt_visibility: mirrored.
"""

import pathlib

import tensorflow as tf

from fvae_tf.data import jitter as jitter_lib
from fvae_tf.data import records
from fvae_tf.face_template import MIRROR_PERMUTATION

_IMAGE_KEYS = ("source", "target", "source_hr", "target_hr")
_LANDMARK_KEYS = ("source_landmarks", "target_landmarks")
# Serialized pairs hold two high-res PNGs (~100-200 kB); this bounds the
# shuffle buffer's memory.
_MAX_SHUFFLE_BUFFER = 1024


def flip_pair(example: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Mirrors one decoded pair horizontally (see the module docstring).

    Args:
      example: unbatched; images [H, W, 3], landmarks [68, 2], gt_coords
        [H, W, 2], gt_visibility [H, W, 1]; any of them may be absent, other
        keys pass through.

    Returns:
      The same keys, mirrored.
    """
    out = dict(example)
    for key in _IMAGE_KEYS:
        if key in out:
            out[key] = tf.reverse(out[key], axis=[1])
    for key in _LANDMARK_KEYS:
        if key in out:
            out[key] = tf.gather(out[key] * [-1.0, 1.0], MIRROR_PERMUTATION)
    if "gt_coords" in out:
        out["gt_coords"] = tf.reverse(out["gt_coords"], axis=[1]) * [-1.0, 1.0]
        out["gt_visibility"] = tf.reverse(out["gt_visibility"], axis=[1])
    return out


def decode_image(png: tf.Tensor, side: int) -> tf.Tensor:
    """PNG bytes of a stored crop -> float32 [side, side, 3] in [-1, 1]."""
    pixels = tf.ensure_shape(tf.io.decode_png(png, channels=3), [side, side, 3])
    return tf.cast(pixels, tf.float32) / 127.5 - 1.0


def _decoder(manifest: records.Manifest, with_hr: bool):
    """Returns a function: serialized Example -> decoded, unbatched dict."""
    spec = records.feature_spec(manifest)
    keys = ["source", "target", "source_expression", "target_expression", "identity",
            "source_landmarks", "target_landmarks"]
    if with_hr:
        keys += ["source_hr", "target_hr"]
    if manifest.has_ground_truth:
        keys += ["gt_coords", "gt_visibility"]
    spec = {key: spec[key] for key in keys}
    size, hr_size = manifest.size, manifest.hr_size

    def decode(serialized):
        raw = tf.io.parse_single_example(serialized, spec)
        out = {
            "source": decode_image(raw["source"], size),
            "target": decode_image(raw["target"], size),
            "source_expression": tf.cast(raw["source_expression"], tf.int32),
            "target_expression": tf.cast(raw["target_expression"], tf.int32),
            "identity": raw["identity"],
            "source_landmarks": tf.reshape(raw["source_landmarks"], [records.NUM_LANDMARKS, 2]),
            "target_landmarks": tf.reshape(raw["target_landmarks"], [records.NUM_LANDMARKS, 2]),
        }
        if with_hr:
            out["source_hr"] = decode_image(raw["source_hr"], hr_size)
            out["target_hr"] = decode_image(raw["target_hr"], hr_size)
        if manifest.has_ground_truth:
            out["gt_coords"] = tf.reshape(raw["gt_coords"], [size, size, 2])
            out["gt_visibility"] = tf.reshape(raw["gt_visibility"], [size, size, 1])
        return out

    return decode


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
    jitter: float = 0.0,
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
      jitter: size of a random similarity applied to each pair
        (`fvae_tf.data.jitter`; not in the paper); 0: none.

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
        "source_hr", "target_hr": float32 [B, hr_size, hr_size, 3] when with_hr.

    Raises:
      records.RecordsError: the directory is not a finished dataset, or the
        split does not exist or is empty.
    """
    manifest = records.read_manifest(dataset_dir)
    files = records.shard_paths(dataset_dir, split, manifest)
    num_pairs = manifest.splits[split].num_pairs
    if num_pairs == 0:
        raise records.RecordsError(dataset_dir, f"split {split!r} has no pairs")
    options = tf.data.Options()
    options.deterministic = True

    ds = tf.data.TFRecordDataset(files).with_options(options)
    if shuffle:
        ds = ds.shuffle(min(num_pairs, _MAX_SHUFFLE_BUFFER), seed=seed,
                        reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    decode = _decoder(manifest, with_hr)

    def prepare(index, serialized):
        example = decode(serialized)
        key = tf.stack([tf.constant(seed, tf.int64), index])
        if flip:
            coin = tf.random.stateless_uniform([], seed=key)
            example = tf.cond(coin < 0.5, lambda: flip_pair(example), lambda: example)
        return jitter_lib.jitter_pair(example, jitter,
                                      tf.random.experimental.stateless_fold_in(key, 1))

    ds = ds.enumerate().map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=repeat).prefetch(tf.data.AUTOTUNE)
