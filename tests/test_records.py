"""Tests for fvae_tf.data.records: the image and pair Examples, atomic shards, the manifest."""

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import write_dataset

from fvae_tf.data import records


def _image(rng: np.random.Generator, name: str, size: int = 8, hr_size: int = 16
           ) -> records.ImageRecord:
    return records.ImageRecord(
        crop=rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
        crop_hr=rng.integers(0, 256, (hr_size, hr_size, 3), dtype=np.uint8),
        landmarks=rng.uniform(-1, 1, (68, 2)), expression=int(rng.integers(0, 6)),
        identity=name.split("/")[0], image_id=name)


def _pair(rng: np.random.Generator, source: int, target: int, size: int = 8,
          ground_truth: bool = True) -> records.PairRecord:
    return records.PairRecord(
        source=source, target=target,
        gt_coords=rng.uniform(-1, 1, (size, size, 2)) if ground_truth else None,
        gt_visibility=(rng.random((size, size)) > 0.5).astype(np.float32) if ground_truth
        else None)


def _manifest(size=8, hr_size=16, ground_truth=True, splits=None) -> records.Manifest:
    return records.Manifest(
        source="synthetic", size=size, hr_size=hr_size, has_ground_truth=ground_truth,
        alignment="test", flags={"seed": 0}, splits=splits or {}, failures=[],
        identities_without_pairs=[])


def _read(files: list[str], spec: dict) -> list[dict]:
    return [{k: v.numpy() for k, v in tf.io.parse_single_example(r, spec).items()}
            for r in tf.data.TFRecordDataset(files)]


def test_image_example_round_trip():
    image = _image(np.random.default_rng(0), "007/smile")
    raw = _read_one(records.serialize_image(image), records.image_feature_spec())
    np.testing.assert_array_equal(tf.io.decode_png(raw["crop"]).numpy(), image.crop)
    np.testing.assert_array_equal(tf.io.decode_png(raw["crop_hr"]).numpy(), image.crop_hr)
    np.testing.assert_allclose(raw["landmarks"].reshape(68, 2), image.landmarks, rtol=1e-6)
    assert raw["expression"] == image.expression
    assert raw["identity"] == b"007" and raw["image_id"] == b"007/smile"
    assert "crop_hr" not in records.image_feature_spec(with_hr=False)


def test_image_frame_round_trip():
    image = _image(np.random.default_rng(2), "007/smile")
    frame = np.linspace(0.0, 1.0, 64).reshape(8, 8)
    raw = _read_one(records.serialize_image(dataclasses.replace(image, frame=frame)),
                    records.image_feature_spec(with_frame=True))
    stored = np.frombuffer(raw["frame"], np.uint8).reshape(8, 8)
    np.testing.assert_array_equal(stored, np.round(frame * 255))
    assert "frame" not in records.image_feature_spec()
    with pytest.raises(Exception, match="frame"):  # an image stored without one
        _read_one(records.serialize_image(image), records.image_feature_spec(with_frame=True))


def _read_one(serialized: bytes, spec: dict) -> dict:
    return {k: v.numpy() for k, v in tf.io.parse_single_example(serialized, spec).items()}


def test_pair_example_round_trip():
    pair = _pair(np.random.default_rng(1), 3, 11)
    raw = _read_one(records.serialize_pair(pair), records.pair_feature_spec(_manifest()))
    assert (raw["source"], raw["target"]) == (3, 11)
    # gt_coords is stored row-major as [H, W, 2]: element (y, x, c) at (y * W + x) * 2 + c.
    assert raw["gt_coords"][(3 * 8 + 5) * 2 + 1] == pytest.approx(pair.gt_coords[3, 5, 1],
                                                                  rel=1e-6)
    visibility = np.frombuffer(raw["gt_visibility"], np.uint8)
    assert visibility.size == 64  # one byte per pixel, not a float
    np.testing.assert_array_equal(visibility, pair.gt_visibility.ravel())


def test_pair_without_ground_truth_is_two_indices():
    serialized = records.serialize_pair(_pair(np.random.default_rng(2), 0, 1, ground_truth=False))
    assert set(tf.train.Example.FromString(serialized).features.feature) == {"source", "target"}
    assert set(records.pair_feature_spec(_manifest(ground_truth=False))) == {"source", "target"}
    with pytest.raises(ValueError, match="only 0 and 1"):
        records.serialize_pair(records.PairRecord(0, 1, np.zeros((8, 8, 2)),
                                                  np.full((8, 8), 0.5)))


def test_write_shards_streams_names_counts_and_order(tmp_path):
    examples = (f"example {i}".encode() for i in range(7))  # a generator: no length up front
    shards = records.write_shards(tmp_path, "train-pairs", examples, shard_size=3)
    assert [s.file for s in shards] == [
        "train-pairs-00000.tfrecord", "train-pairs-00001.tfrecord", "train-pairs-00002.tfrecord"]
    assert [s.num_records for s in shards] == [3, 3, 1]
    assert all(s.num_bytes == (tmp_path / s.file).stat().st_size for s in shards)
    assert not list(tmp_path.glob("*.tmp"))
    read = [r.numpy() for r in tf.data.TFRecordDataset([str(tmp_path / s.file) for s in shards])]
    assert read == [f"example {i}".encode() for i in range(7)]
    assert records.write_shards(tmp_path, "val-pairs", [], shard_size=3) == []


def test_killed_write_leaves_only_a_tmp_file(tmp_path):
    def dying():
        yield from (b"one", b"two", b"three")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        records.write_shards(tmp_path, "train-images", dying(), shard_size=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "train-images-00000.tfrecord", "train-images-00001.tfrecord.tmp"]
    with pytest.raises(records.RecordsError, match="not a finished dataset"):
        records.read_manifest(tmp_path)


def test_tables_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    images = [_image(rng, f"{i // 3:03d}/{i % 3}") for i in range(9)]
    pairs = [_pair(rng, s, t) for s, t in rng.integers(0, 9, (7, 2))]
    manifest = write_dataset(tmp_path, {"train": (images, pairs)}, size=8, hr_size=16,
                             shard_size=4)
    assert records.read_manifest(tmp_path) == manifest
    assert [s.num_records for s in manifest.splits["train"].image_shards] == [4, 4, 1]
    stored = _read(records.image_shard_paths(tmp_path, "train", manifest),
                   records.image_feature_spec())
    assert len(stored) == 9
    for image, raw in zip(images, stored):
        np.testing.assert_array_equal(tf.io.decode_png(raw["crop_hr"]).numpy(), image.crop_hr)
        np.testing.assert_allclose(raw["landmarks"].reshape(68, 2), image.landmarks, rtol=1e-6)
        assert raw["image_id"].decode() == image.image_id
    stored = _read(records.shard_paths(tmp_path, "train", manifest),
                   records.pair_feature_spec(manifest))
    assert [(r["source"], r["target"]) for r in stored] == [(p.source, p.target) for p in pairs]
    for pair, raw in zip(pairs, stored):
        np.testing.assert_allclose(raw["gt_coords"].reshape(8, 8, 2), pair.gt_coords, rtol=1e-6)


def test_manifest_round_trip_and_shard_checks(tmp_path):
    image_shards = records.write_shards(tmp_path, "val-images", [b"a", b"b"], shard_size=5)
    shards = records.write_shards(tmp_path, "val-pairs", [b"x", b"y"], shard_size=5)
    split = records.SplitInfo(identities=["a"], num_images=2, num_pairs=2,
                              images_per_expression={"neutral": 1, "smile": 1},
                              pairs_per_expression={"neutral->smile": 1, "smile->neutral": 1},
                              image_shards=image_shards, shards=shards)
    manifest = _manifest(splits={"val": split})
    records.write_manifest(tmp_path, manifest)
    assert not list(tmp_path.glob("*.tmp"))
    assert records.read_manifest(tmp_path) == manifest
    assert records.shard_paths(tmp_path, "val", manifest) == [str(tmp_path / shards[0].file)]
    assert records.image_shard_paths(tmp_path, "val", manifest) == [
        str(tmp_path / image_shards[0].file)]
    # A stray shard the manifest does not list is never read.
    (tmp_path / "val-pairs-00001.tfrecord").write_bytes(b"stale")
    assert records.shard_paths(tmp_path, "val", records.read_manifest(tmp_path)) == [
        str(tmp_path / shards[0].file)]
    with pytest.raises(records.RecordsError, match="no 'train' split"):
        records.shard_paths(tmp_path, "train", manifest)
    # A manifest written before image records had frames reads as having none.
    raw = json.loads((tmp_path / records.MANIFEST_NAME).read_text())
    raw.pop("has_frame")
    (tmp_path / records.MANIFEST_NAME).write_text(json.dumps(raw))
    assert not records.read_manifest(tmp_path).has_frame
    records.write_manifest(tmp_path, dataclasses.replace(manifest, has_frame=True))
    assert records.read_manifest(tmp_path).has_frame
    with open(tmp_path / image_shards[0].file, "ab") as f:
        f.write(b"junk")
    with pytest.raises(records.RecordsError, match="not the size the manifest records"):
        records.read_manifest(tmp_path)


def test_old_format_says_how_to_rebuild_without_naming_flags(tmp_path):
    # What format 1 wrote: one record per pair, shards counted in pairs.
    old = {"source": "london", "size": 64, "hr_size": 256, "has_ground_truth": False,
           "alignment": "dlib", "flags": {"source": "london", "input_dir": "/data/london"},
           "splits": {"train": {"identities": ["001"], "num_images": 2, "num_pairs": 2,
                                "images_per_expression": {}, "pairs_per_expression": {},
                                "shards": [{"file": "train-00000-of-00001.tfrecord",
                                            "num_pairs": 2, "num_bytes": 10}]}},
           "failures": [], "identities_without_pairs": [], "format_version": 1}
    (tmp_path / records.MANIFEST_NAME).write_text(json.dumps(old))
    with pytest.raises(records.RecordsError) as caught:
        records.read_manifest(tmp_path)
    assert "old format" in str(caught.value) and "--" not in str(caught.value)
    assert caught.value.describe("--{}").endswith(
        "python -m data_prep.build_dataset --source=london --input_dir=/data/london "
        f"--output_dir={tmp_path} --overwrite")


def test_manifest_version_and_garbage(tmp_path):
    records.write_manifest(tmp_path, dataclasses.replace(_manifest(), format_version=99))
    with pytest.raises(records.RecordsError, match="format_version 99.*Rebuild"):
        records.read_manifest(tmp_path)
    (tmp_path / records.MANIFEST_NAME).write_text("{not json")
    with pytest.raises(records.RecordsError, match="not a valid manifest"):
        records.read_manifest(tmp_path)
