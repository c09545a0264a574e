"""Tests for fvae_tf.data.records: the Example format, atomic shards, the manifest."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from fvae_tf.data import records


def _pair(rng: np.random.Generator, size: int = 8, hr_size: int = 16,
          ground_truth: bool = True) -> records.PairRecord:
    return records.PairRecord(
        source=rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
        target=rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
        source_hr=rng.integers(0, 256, (hr_size, hr_size, 3), dtype=np.uint8),
        target_hr=rng.integers(0, 256, (hr_size, hr_size, 3), dtype=np.uint8),
        source_expression=0, target_expression=5, identity="007",
        source_id="a/b", target_id="a/c",
        source_landmarks=rng.uniform(-1, 1, (68, 2)), target_landmarks=rng.uniform(-1, 1, (68, 2)),
        gt_coords=rng.uniform(-1, 1, (size, size, 2)) if ground_truth else None,
        gt_visibility=(rng.random((size, size)) > 0.5).astype(np.float32) if ground_truth else None,
    )


def _manifest(size=8, hr_size=16, ground_truth=True, splits=None) -> records.Manifest:
    return records.Manifest(
        source="synthetic", size=size, hr_size=hr_size, has_ground_truth=ground_truth,
        alignment="test", flags={"seed": 0}, splits=splits or {}, failures=[],
        identities_without_pairs=[])


def test_example_round_trip():
    pair = _pair(np.random.default_rng(0))
    raw = tf.io.parse_single_example(records.serialize_pair(pair),
                                     records.feature_spec(_manifest()))
    for key in ("source", "target", "source_hr", "target_hr"):
        np.testing.assert_array_equal(tf.io.decode_png(raw[key]).numpy(), getattr(pair, key))
    assert int(raw["source_expression"]) == 0 and int(raw["target_expression"]) == 5
    assert raw["identity"].numpy() == b"007" and raw["target_id"].numpy() == b"a/c"
    np.testing.assert_allclose(raw["source_landmarks"].numpy().reshape(68, 2),
                               pair.source_landmarks, rtol=1e-6)
    # gt_coords is stored row-major as [H, W, 2]: element (y, x, c) at (y * W + x) * 2 + c.
    flat = raw["gt_coords"].numpy()
    assert flat[(3 * 8 + 5) * 2 + 1] == pytest.approx(pair.gt_coords[3, 5, 1], rel=1e-6)
    np.testing.assert_array_equal(raw["gt_visibility"].numpy(), pair.gt_visibility.ravel())


def test_example_without_ground_truth_has_no_gt_features():
    example = tf.train.Example.FromString(
        records.serialize_pair(_pair(np.random.default_rng(1), ground_truth=False)))
    assert "gt_coords" not in example.features.feature
    assert "gt_visibility" not in records.feature_spec(_manifest(ground_truth=False))


def test_write_shards_names_counts_and_order(tmp_path):
    examples = [f"example {i}".encode() for i in range(7)]
    shards = records.write_shards(tmp_path, "train", examples, 7, shard_size=3)
    assert [s.file for s in shards] == [
        "train-00000-of-00003.tfrecord", "train-00001-of-00003.tfrecord",
        "train-00002-of-00003.tfrecord"]
    assert [s.num_pairs for s in shards] == [3, 3, 1]
    assert all(s.num_bytes == (tmp_path / s.file).stat().st_size for s in shards)
    assert not list(tmp_path.glob("*.tmp"))
    read = [r.numpy() for r in tf.data.TFRecordDataset([str(tmp_path / s.file) for s in shards])]
    assert read == examples


def test_killed_write_leaves_only_a_tmp_file(tmp_path):
    def dying():
        yield b"one"
        yield b"two"
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        records.write_shards(tmp_path, "train", dying(), 4, shard_size=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "train-00000-of-00004.tfrecord", "train-00001-of-00004.tfrecord",
        "train-00002-of-00004.tfrecord.tmp"]
    with pytest.raises(records.RecordsError, match="not a finished dataset"):
        records.read_manifest(tmp_path)


def test_manifest_round_trip_and_shard_checks(tmp_path):
    shards = records.write_shards(tmp_path, "val", [b"x", b"y"], 2, shard_size=5)
    split = records.SplitInfo(identities=["a"], num_images=2, num_pairs=2,
                              images_per_expression={"neutral": 1, "smile": 1},
                              pairs_per_expression={"neutral->smile": 1, "smile->neutral": 1},
                              shards=shards)
    manifest = _manifest(splits={"val": split})
    records.write_manifest(tmp_path, manifest)
    assert not list(tmp_path.glob("*.tmp"))
    assert records.read_manifest(tmp_path) == manifest
    assert records.shard_paths(tmp_path, "val", manifest) == [str(tmp_path / shards[0].file)]
    # A stray shard the manifest does not list is never read.
    (tmp_path / "val-00000-of-00002.tfrecord").write_bytes(b"stale")
    assert records.shard_paths(tmp_path, "val", records.read_manifest(tmp_path)) == [
        str(tmp_path / shards[0].file)]
    with pytest.raises(records.RecordsError, match="no 'train' split"):
        records.shard_paths(tmp_path, "train", manifest)
    with open(tmp_path / shards[0].file, "ab") as f:
        f.write(b"junk")
    with pytest.raises(records.RecordsError, match="not the size the manifest records"):
        records.read_manifest(tmp_path)


def test_manifest_version_and_garbage(tmp_path):
    records.write_manifest(tmp_path, dataclasses.replace(_manifest(), format_version=99))
    with pytest.raises(records.RecordsError, match="format_version 99"):
        records.read_manifest(tmp_path)
    (tmp_path / records.MANIFEST_NAME).write_text("{not json")
    with pytest.raises(records.RecordsError, match="not a valid manifest"):
        records.read_manifest(tmp_path)
