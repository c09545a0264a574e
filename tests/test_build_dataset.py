"""Tests for builder.build_dataset and the data_prep.build_dataset binary."""

import json
import pathlib
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf

from fvae_tf.data import alignment, color_transfer, builder, input_pipeline, records
from fvae_tf.eval import data as eval_data
from fvae_tf.synthetic import faces
from fvae_tf.train import latent_stats

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SIZE, HR = 16, 32


def _london_with_alignments(tmp_path: pathlib.Path, identities: list[str]):
    """A London-layout tree of placeholder photos plus align_faces-style crops.

    Identity "005", if listed, has no alignment for its smile (align_faces
    could not align it). Returns (input_dir, aligned_dir, crops by image id).
    """
    input_dir, aligned_dir = tmp_path / "london", tmp_path / "aligned"
    rng = np.random.default_rng(0)
    crops = {}
    for identity in identities:
        for folder, number in (("neutral", "03"), ("smiling", "08")):
            image_id = f"{folder}/{identity}_{number}"
            (input_dir / folder).mkdir(parents=True, exist_ok=True)
            (input_dir / f"{image_id}.jpg").write_bytes(b"")
            if identity == "005" and folder == "smiling":
                continue
            # Each image gets its own tint, so colour transfer has work to do.
            tint = rng.uniform(0.3, 1.0, 3)
            crop = (rng.integers(0, 256, (SIZE, SIZE, 3)) * tint).astype(np.uint8)
            crop_hr = cv2.resize(crop, (HR, HR), interpolation=cv2.INTER_NEAREST)
            stem = aligned_dir / image_id
            stem.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(f"{stem}.png", crop[..., ::-1])
            cv2.imwrite(f"{stem}_hr.png", crop_hr[..., ::-1])
            pathlib.Path(f"{stem}_align.json").write_text(json.dumps({
                "crop_size": SIZE, "crop_hr_size": HR, "image_width": 100, "image_height": 200,
                "landmarks_aligned": rng.uniform(-1, 1, (68, 2)).tolist(),
                "transform": [[0.01, 0.0, -1.0], [0.0, 0.01, -1.0]]}))
            crops[image_id] = (crop, crop_hr)
    return input_dir, aligned_dir, crops


def _config(input_dir, output_dir, aligned_dir, **kwargs) -> builder.BuildConfig:
    kwargs.setdefault("test_fraction", 0.0)
    kwargs.setdefault("shard_size", 3)
    return builder.BuildConfig(source="london", input_dir=str(input_dir),
                               output_dir=str(output_dir), aligned_dir=str(aligned_dir),
                               size=SIZE, hr_size=HR, val_fraction=0.4, num_workers=1, **kwargs)


def _read_all(output_dir, split) -> list[dict]:
    """Every pair of a split as the input pipeline gives it, in storage order, unflipped."""
    ds = input_pipeline.make_dataset(output_dir, split, 1, shuffle=False, flip=False,
                                     repeat=False, with_hr=True, with_ids=True)
    return [{key: value[0] for key, value in batch.items()} for batch in ds]


def _pixels(image: tf.Tensor) -> np.ndarray:
    return np.round((image.numpy() + 1.0) * 127.5).astype(np.uint8)


def test_build_splits_pairs_and_colour_transfers(tmp_path):
    input_dir, aligned_dir, crops = _london_with_alignments(
        tmp_path, ["001", "002", "003", "004", "005"])
    out = tmp_path / "out"
    manifest = builder.build_dataset(_config(input_dir, out, aligned_dir, test_fraction=0.2))

    train, val, test = (manifest.splits[s] for s in ("train", "val", "test"))
    # round(5 * 0.2) = 1 test, round(5 * 0.4) = 2 val, the rest train.
    assert [len(s.identities) for s in (train, val, test)] == [2, 2, 1]
    assert sorted(train.identities + val.identities + test.identities) == [
        "001", "002", "003", "004", "005"]
    assert manifest.identities_without_pairs == ["005"]
    assert [f["path"] for f in manifest.failures] == [str(input_dir / "smiling/005_08.jpg")]
    # Two pairs (neutral->smile, smile->neutral) per identity with both images.
    for split in (train, val, test):
        with_pairs = [i for i in split.identities if i != "005"]
        assert split.num_pairs == 2 * len(with_pairs)
        assert split.pairs_per_expression == {"neutral->smile": len(with_pairs),
                                              "smile->neutral": len(with_pairs)}
    assert manifest.flags["seed"] == 0 and manifest.flags["val_fraction"] == 0.4
    assert manifest.flags["test_fraction"] == 0.2
    assert manifest.source == "london" and not manifest.has_ground_truth
    assert json.loads((out / "manifest.json").read_text())["splits"]["val"]["identities"] == (
        val.identities)

    # The image tables hold every aligned crop once, as aligned (no colour transfer).
    stored = {}
    for split in ("train", "val", "test"):
        files = records.image_shard_paths(out, split, manifest)
        for raw in tf.data.TFRecordDataset(files):
            image = tf.io.parse_single_example(raw, records.image_feature_spec(with_frame=True))
            stored[image["image_id"].numpy().decode()] = (
                tf.io.decode_png(image["crop"]).numpy(), tf.io.decode_png(image["crop_hr"]).numpy(),
                np.frombuffer(image["frame"].numpy(), np.uint8).reshape(SIZE, SIZE))
    assert stored.keys() == crops.keys()
    # The crops span photo pixels 0-200 (transform 0.01 x - 1); the photos are
    # 100 wide, 200 high: the right half of each crop lies past the photo.
    transform = np.array([[0.01, 0.0, -1.0], [0.0, 0.01, -1.0]])
    frame = np.round(alignment.photo_coverage(transform, (200, 100), SIZE) * 255)
    assert np.all(frame[:-1, :7] == 255) and np.all(frame[:, 8:] == 0)  # last row: y 187-200
    assert manifest.has_frame
    for image_id, (crop, crop_hr) in crops.items():
        np.testing.assert_array_equal(stored[image_id][0], crop)
        np.testing.assert_array_equal(stored[image_id][1], crop_hr)
        np.testing.assert_array_equal(stored[image_id][2], frame)

    # The pipeline recolours each source to its target.
    seen = set()
    for split in ("train", "val", "test"):
        for example in _read_all(out, split):
            source_id = example["source_id"].numpy().decode()
            target_id = example["target_id"].numpy().decode()
            identity = example["identity"].numpy().decode()
            assert identity in manifest.splits[split].identities
            assert source_id.split("/")[1][:3] == target_id.split("/")[1][:3] == identity
            assert source_id.split("/")[0] != target_id.split("/")[0]
            (src, src_hr), (tgt, tgt_hr) = crops[source_id], crops[target_id]
            source = _pixels(example["source"])
            np.testing.assert_array_equal(_pixels(example["target"]), tgt)
            np.testing.assert_allclose(source, color_transfer.transfer_color(src, tgt), atol=1)
            np.testing.assert_allclose(_pixels(example["source_hr"]),
                                       color_transfer.transfer_color(src_hr, tgt_hr), atol=1)
            assert np.abs(source.astype(int) - src).mean() > 5
            seen.add((source_id, target_id))
    assert len(seen) == 8


def test_build_is_reproducible_and_seeded(tmp_path):
    identities = [f"{i:03d}" for i in range(1, 11)]
    input_dir, aligned_dir, _ = _london_with_alignments(tmp_path, identities)
    a = builder.build_dataset(_config(input_dir, tmp_path / "a", aligned_dir))
    b = builder.build_dataset(_config(input_dir, tmp_path / "b", aligned_dir))
    c = builder.build_dataset(_config(input_dir, tmp_path / "c", aligned_dir, seed=1))
    assert a.splits["val"].identities == b.splits["val"].identities
    assert a.splits["val"].identities != c.splits["val"].identities
    for shard in a.splits["train"].image_shards + a.splits["train"].shards:
        assert ((tmp_path / "a" / shard.file).read_bytes()
                == (tmp_path / "b" / shard.file).read_bytes())


def test_build_refuses_non_empty_output_and_overwrites_cleanly(tmp_path):
    input_dir, aligned_dir, _ = _london_with_alignments(tmp_path, ["001", "002", "003"])
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(records.RecordsError, match="not empty.*set overwrite"):
        builder.build_dataset(_config(input_dir, out, aligned_dir))
    (out / "train-00007-of-00009.tfrecord").write_bytes(b"old shard")
    manifest = builder.build_dataset(_config(input_dir, out, aligned_dir, overwrite=True))
    listed = {s.file for split in manifest.splits.values()
              for s in split.image_shards + split.shards}
    assert {p.name for p in out.iterdir()} == listed | {"manifest.json", "notes.txt"}


@pytest.mark.parametrize("writer", ["serialize_image", "serialize_pair"])
def test_killed_build_leaves_nothing_a_reader_accepts(tmp_path, monkeypatch, writer):
    input_dir, aligned_dir, _ = _london_with_alignments(tmp_path, ["001", "002", "003", "004"])
    out = tmp_path / "out"
    builder.build_dataset(_config(input_dir, out, aligned_dir))
    serialize, calls = getattr(records, writer), []

    def dying(record):
        calls.append(1)
        if len(calls) == 4:  # the second record of the second train shard
            raise KeyboardInterrupt
        return serialize(record)

    monkeypatch.setattr(records, writer, dying)
    with pytest.raises(KeyboardInterrupt):
        builder.build_dataset(_config(input_dir, out, aligned_dir, overwrite=True, shard_size=2))
    # A finished shard and a half-written one are there, but no manifest: the
    # old one went first, so neither old nor new shards are trusted.
    assert list(out.glob("*.tfrecord")) and list(out.glob("*.tfrecord.tmp"))
    for read in (lambda: input_pipeline.make_dataset(out, "train", 2),
                 lambda: latent_stats.unique_images(out, "train", 2),
                 lambda: eval_data.read_pairs(out, "train")):
        with pytest.raises(records.RecordsError, match="not a finished dataset"):
            read()
    monkeypatch.setattr(records, writer, serialize)
    manifest = builder.build_dataset(_config(input_dir, out, aligned_dir, overwrite=True))
    assert not list(out.glob("*.tmp"))
    batch = next(iter(input_pipeline.make_dataset(out, "train", 2)))
    assert batch["source"].shape == (2, SIZE, SIZE, 3)
    assert manifest.splits["train"].num_pairs == 4  # 2 of 4 identities, 2 pairs each


def test_old_format_dataset_says_rebuild_with_overwrite(tmp_path):
    input_dir, aligned_dir, _ = _london_with_alignments(tmp_path, ["001", "002", "003"])
    out = tmp_path / "out"
    builder.build_dataset(_config(input_dir, out, aligned_dir))
    raw = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**raw, "format_version": 1}))
    with pytest.raises(records.RecordsError, match="old format") as caught:
        input_pipeline.make_dataset(out, "train", 2)
    assert caught.value.describe("--{}").endswith(
        f"python -m data_prep.build_dataset --source=london --input_dir={input_dir} "
        f"--output_dir={out} --overwrite")


def test_dataset_without_test_split_says_rebuild(tmp_path):
    input_dir, aligned_dir, _ = _london_with_alignments(tmp_path, ["001", "002", "003"])
    out = tmp_path / "out"
    manifest = builder.build_dataset(_config(input_dir, out, aligned_dir, test_fraction=0.34))
    assert manifest.splits["test"].num_pairs == 2
    # A manifest written before the three-way split: train and val only.
    raw = json.loads((out / "manifest.json").read_text())
    del raw["splits"]["test"]
    (out / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(records.RecordsError, match="no 'test' split") as caught:
        input_pipeline.make_dataset(out, "test", 2)
    assert caught.value.describe("--{}").endswith(
        f"python -m data_prep.build_dataset --source=london --input_dir={input_dir} "
        f"--output_dir={out} --overwrite")
    assert next(iter(input_pipeline.make_dataset(out, "train", 2)))["source"].shape[0] == 2


def _run_binary(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "data_prep.build_dataset", *args],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def test_binary_reports_bad_input_without_traceback(tmp_path):
    result = _run_binary("--source=multipie", f"--input_dir={tmp_path}",
                         f"--output_dir={tmp_path / 'out'}")
    assert result.returncode != 0
    assert "error:" in result.stderr and "illumination 07" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    result = _run_binary("--source=london", f"--input_dir={tmp_path}",
                         f"--output_dir={tmp_path / 'out'}", "--val_fraction=0.5",
                         "--test_fraction=0.5")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "--val_fraction plus --test_fraction must be below 1" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_binary_on_london_identities(london_dir, tmp_path):
    input_dir = tmp_path / "london"
    for folder, number in (("neutral", "03"), ("smiling", "08")):
        (input_dir / folder).mkdir(parents=True)
        for identity in ("001", "002", "003"):
            shutil.copy(london_dir / folder / f"{identity}_{number}.jpg", input_dir / folder)
    out = tmp_path / "out"
    result = _run_binary("--source=london", f"--input_dir={input_dir}", f"--output_dir={out}",
                         "--size=64", "--hr_size=128", "--num_workers=2")
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout
    manifest = records.read_manifest(out)
    assert manifest.failures == []
    # Three people, default 70/10/20: one each.
    assert [manifest.splits[s].num_pairs for s in records.SPLITS] == [2, 2, 2]
    batch = next(iter(input_pipeline.make_dataset(out, "train", 2, with_hr=True, flip=False)))
    assert batch["source_hr"].shape == (2, 128, 128, 3)
    # Aligned faces: the eyes (template at y = -0.2) are darker than the cheeks
    # below them, and the landmarks sit where the template puts them.
    target = batch["target"].numpy()
    assert target[:, 24:28, 16:48].mean() < target[:, 34:38, 16:48].mean()
    np.testing.assert_allclose(batch["target_landmarks"].numpy()[:, 36:48, 1].mean(), -0.2,
                               atol=0.05)


# (session, recording) of three expressions in Multi-PIE's layout.
_SYNTHETIC_RECORDINGS = {"neutral": (1, 1), "smile": (1, 2), "surprise": (2, 2)}


def _write_synthetic(root: pathlib.Path, num_identities: int, render_size: int) -> None:
    """A tiny synthetic set in Multi-PIE layout: renders, landmarks and truth files."""
    rng = np.random.default_rng(0)
    for subject in range(1, num_identities + 1):
        identity = faces.make_identity(subject)
        for expression, (session, recording) in _SYNTHETIC_RECORDINGS.items():
            rendered = faces.render(identity, expression, 1.0, render_size,
                                        pose=faces.random_pose(rng, amount=2.0))
            name = f"{subject:03d}_{session:02d}_{recording:02d}_051_{faces.ILLUMINATION:02d}"
            folder = (root / f"session{session:02d}" / "multiview" / f"{subject:03d}"
                      / f"{recording:02d}" / "05_1")
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{name}.png"), rendered.image[..., ::-1])
            faces.save_landmarks(faces.landmarks_path(folder / f"{name}.png"),
                                     rendered.landmarks)
            faces.save_ground_truth(faces.truth_path(folder / f"{name}.png"),
                                        rendered.truth)


@pytest.mark.slow
def test_synthetic_build_carries_ground_truth_that_matches_the_crops(tmp_path):
    root, out = tmp_path / "synthetic", tmp_path / "out"
    _write_synthetic(root, num_identities=3, render_size=128)
    manifest = builder.build_dataset(builder.BuildConfig(
        source="synthetic", input_dir=str(root), output_dir=str(out), size=32, hr_size=64,
        val_fraction=0.34, test_fraction=0.0, num_workers=1))
    assert manifest.has_ground_truth and manifest.failures == []
    assert manifest.splits["train"].num_pairs == 12 and manifest.splits["val"].num_pairs == 6
    assert manifest.splits["train"].images_per_expression == {
        "neutral": 2, "smile": 2, "surprise": 2}

    # Oracle: align each render ourselves on its stored landmarks, warp the
    # source crop with the stored truth (cv2.remap) and compare with the
    # target where visible. The renders' own truth (no crop transforms) is
    # the mistake this guards against.
    def warp_error(source, target, coords, visible):
        maps = ((coords + 1) * 32 - 1) / 2
        warped = cv2.remap(source, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        return np.abs(warped - target).mean(axis=-1)[visible].mean()

    errors, render_frame_errors, still_errors = [], [], []
    for split in ("train", "val"):
        for example in _read_all(out, split):
            paths = [root / (example[f"{role}_id"].numpy().decode() + ".png")
                     for role in ("source", "target")]
            source, target = (alignment.align_face(alignment.load_image(path),
                                                   faces.load_landmarks(path), 32, 64
                                                   ).crop.astype(np.float32) for path in paths)
            coords = example["gt_coords"].numpy()
            visible = example["gt_visibility"].numpy()[..., 0] > 0.5
            assert visible.mean() > 0.8
            errors.append(warp_error(source, target, coords, visible))
            render_frame = faces.pair_truth_from_files(*paths, 32).coords
            render_frame_errors.append(warp_error(source, target, render_frame, visible))
            still_errors.append(np.abs(source - target).mean(axis=-1)[visible].mean())
            landmarks = example["target_landmarks"].numpy()
            stable = list(alignment.STABLE_POINTS)
            np.testing.assert_allclose(landmarks[stable], alignment.canonical_template()[stable],
                                       atol=0.08)
    assert len(errors) == 18
    assert max(errors) < 2.5  # grey levels: bilinear resampling at 32 px
    assert np.mean(errors) < 0.6 * np.mean(still_errors)
    assert np.mean(errors) < 0.5 * np.mean(render_frame_errors)
    batch = next(iter(input_pipeline.make_dataset(out, "train", 4)))
    assert batch["gt_coords"].shape == (4, 32, 32, 2)
    assert batch["gt_visibility"].shape == (4, 32, 32, 1)
