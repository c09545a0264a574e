"""Tests for fvae_tf.data.input_pipeline: the image table, colour transfer, the pair flip,
determinism."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import write_dataset

from fvae_tf.data import alignment, color_transfer, input_pipeline, records

SIZE, HR = 8, 16
NUM_IMAGES = 6


def _tinted(rng: np.random.Generator, side: int) -> np.ndarray:
    """A random uint8 picture with its own colour cast, so colour transfer has work to do."""
    return (rng.integers(0, 256, (side, side, 3)) * rng.uniform(0.3, 1.0, 3)).astype(np.uint8)


def _write_dataset(tmp_path, num_pairs: int = 10, ground_truth: bool = True) -> list[dict]:
    """A dataset directory of random pairs over NUM_IMAGES images.

    Returns:
      Each pair as the pipeline should decode it (uint8 images, source
      colour-transferred by the numpy reference), in storage order.
    """
    rng = np.random.default_rng(0)
    # Photo frames as stored: whole 255ths.
    images = [records.ImageRecord(
        crop=_tinted(rng, SIZE), crop_hr=_tinted(rng, HR), landmarks=rng.uniform(-1, 1, (68, 2)),
        expression=i, identity=f"id{i}", image_id=f"id{i}/{i}",
        frame=rng.integers(0, 256, (SIZE, SIZE)) / 255.0) for i in range(NUM_IMAGES)]
    pairs, want = [], []
    for i in range(num_pairs):
        s, t = i % NUM_IMAGES, (i + 1 + i // NUM_IMAGES) % NUM_IMAGES
        pair = records.PairRecord(
            source=s, target=t,
            gt_coords=rng.uniform(-1, 1, (SIZE, SIZE, 2)) if ground_truth else None,
            gt_visibility=(rng.random((SIZE, SIZE)) > 0.5).astype(np.float32)
            if ground_truth else None)
        pairs.append(pair)
        source, target = images[s], images[t]
        want.append({
            "source": color_transfer.transfer_color(source.crop, target.crop),
            "target": target.crop,
            "source_hr": color_transfer.transfer_color(source.crop_hr, target.crop_hr),
            "target_hr": target.crop_hr,
            "source_expression": s, "target_expression": t,
            "identity": target.identity.encode(),
            "source_id": source.image_id.encode(), "target_id": target.image_id.encode(),
            "source_landmarks": source.landmarks, "target_landmarks": target.landmarks,
            "source_frame": source.frame[..., None], "target_frame": target.frame[..., None],
            "gt_coords": pair.gt_coords,
            "gt_visibility": None if pair.gt_visibility is None else pair.gt_visibility[..., None]})
    write_dataset(tmp_path, {"train": (images, pairs)}, size=SIZE, hr_size=HR,
                  source="synthetic" if ground_truth else "london")
    return want


def _numpy_flip(pair: dict) -> dict[str, np.ndarray]:
    """The mirrored pair, written independently in numpy (uint8 images)."""
    def landmarks(lm):
        out = np.empty_like(lm)
        for i, j in enumerate(alignment.MIRROR_PERMUTATION):
            out[i] = (-lm[j, 0], lm[j, 1])
        return out

    coords = pair["gt_coords"][:, ::-1].copy()
    coords[..., 0] *= -1
    return {"source": pair["source"][:, ::-1], "target": pair["target"][:, ::-1],
            "source_landmarks": landmarks(pair["source_landmarks"]),
            "target_landmarks": landmarks(pair["target_landmarks"]),
            "source_frame": pair["source_frame"][:, ::-1],
            "target_frame": pair["target_frame"][:, ::-1],
            "gt_coords": coords, "gt_visibility": pair["gt_visibility"][:, ::-1]}


def _as_pixels(batch_images):
    return np.round((batch_images.numpy() + 1.0) * 127.5).astype(np.uint8)


def test_mirror_permutation_is_an_involution_that_swaps_sides():
    perm = np.array(alignment.MIRROR_PERMUTATION)
    assert sorted(perm) == list(range(68))
    np.testing.assert_array_equal(perm[perm], np.arange(68))
    # The canonical template is left-right symmetric, so mirroring maps it to itself.
    template = alignment.canonical_template()
    np.testing.assert_allclose(template[perm] * [-1, 1], template, atol=1e-4)


def test_flip_pair_matches_numpy():
    rng = np.random.default_rng(1)
    example = {
        "source": rng.random((4, 5, 3)), "target": rng.random((4, 5, 3)),
        "source_landmarks": rng.random((68, 2)), "target_landmarks": rng.random((68, 2)),
        "gt_coords": rng.random((4, 5, 2)), "gt_visibility": rng.random((4, 5, 1)),
        "identity": "x",
    }
    got = input_pipeline.flip_pair({k: tf.constant(v) for k, v in example.items()})
    perm = alignment.MIRROR_PERMUTATION
    np.testing.assert_array_equal(got["source"], example["source"][:, ::-1])
    np.testing.assert_array_equal(got["target"], example["target"][:, ::-1])
    assert got["target_landmarks"][36].numpy().tolist() == [
        -example["target_landmarks"][45, 0], example["target_landmarks"][45, 1]]
    np.testing.assert_array_equal(got["source_landmarks"][:, 0],
                                  -example["source_landmarks"][list(perm), 0])
    np.testing.assert_array_equal(got["gt_coords"][:, :, 0], -example["gt_coords"][:, ::-1, 0])
    np.testing.assert_array_equal(got["gt_coords"][:, :, 1], example["gt_coords"][:, ::-1, 1])
    np.testing.assert_array_equal(got["gt_visibility"], example["gt_visibility"][:, ::-1])
    assert got["identity"].numpy() == b"x"


def test_flipped_ground_truth_still_warps_source_to_target():
    # A warp on pixel centres (exact under bilinear sampling): target(p) =
    # source(G(p)). After flipping source, target and G, it must still hold.
    rng = np.random.default_rng(2)
    h, w = 6, 7
    source = rng.random((h, w, 3))
    cols, rows = rng.integers(0, w, (h, w)), rng.integers(0, h, (h, w))
    target = source[rows, cols]
    coords = np.stack([(2 * cols + 1) / w - 1, (2 * rows + 1) / h - 1], axis=-1)
    got = input_pipeline.flip_pair({"source": tf.constant(source), "target": tf.constant(target),
                                    "gt_coords": tf.constant(coords),
                                    "gt_visibility": tf.ones((h, w, 1))})
    gx, gy = got["gt_coords"].numpy()[..., 0], got["gt_coords"].numpy()[..., 1]
    read_cols = np.round(((gx + 1) * w - 1) / 2).astype(int)
    read_rows = np.round(((gy + 1) * h - 1) / 2).astype(int)
    np.testing.assert_allclose(got["source"].numpy()[read_rows, read_cols], got["target"].numpy())


def test_make_dataset_keys_shapes_and_values(tmp_path):
    want = _write_dataset(tmp_path)
    ds = input_pipeline.make_dataset(tmp_path, "train", 4, shuffle=False, flip=False,
                                     repeat=False, with_hr=True, with_ids=True)
    batches = list(ds)
    assert [int(b["source"].shape[0]) for b in batches] == [4, 4, 2]
    first = batches[0]
    assert set(first) == {"source", "target", "source_expression", "target_expression",
                          "identity", "source_landmarks", "target_landmarks", "gt_coords",
                          "gt_visibility", "source_hr", "target_hr", "source_id", "target_id",
                          "source_frame", "target_frame"}
    assert first["source"].dtype == tf.float32 and first["source"].shape == (4, SIZE, SIZE, 3)
    assert first["source_hr"].shape == (4, HR, HR, 3)
    assert first["source_expression"].dtype == tf.int32
    assert first["gt_coords"].shape == (4, SIZE, SIZE, 2)
    assert first["gt_visibility"].shape == (4, SIZE, SIZE, 1)
    assert first["source_landmarks"].shape == (4, 68, 2)
    # uint8 v -> v / 127.5 - 1: 0 -> -1, 255 -> +1.
    np.testing.assert_allclose(first["target"][1].numpy(), want[1]["target"] / 127.5 - 1,
                               atol=1e-6)
    # Every pair read back equals the pair written, sources colour-transferred
    # (to within one grey level of the numpy reference).
    got = [{k: v[i] for k, v in b.items()} for b in batches for i in range(len(b["source"]))]
    for pair, expected in zip(got, want, strict=True):
        for key in ("source", "target", "source_hr", "target_hr"):
            difference = _as_pixels(pair[key]).astype(int) - expected[key]
            assert np.abs(difference).max() <= 1, key
        for key in ("source_landmarks", "target_landmarks", "gt_coords", "gt_visibility",
                    "source_frame", "target_frame"):
            np.testing.assert_allclose(pair[key].numpy(), expected[key], atol=1e-6, err_msg=key)
        for key in ("source_expression", "target_expression", "identity", "source_id",
                    "target_id"):
            assert pair[key].numpy() == expected[key], key
    assert "source_id" not in next(iter(input_pipeline.make_dataset(tmp_path, "train", 2)))


def test_make_dataset_flips_pairs_consistently(tmp_path):
    want = _write_dataset(tmp_path, num_pairs=40)
    ds = input_pipeline.make_dataset(tmp_path, "train", 40, shuffle=False, flip=True, seed=3,
                                     repeat=False)
    batch = next(iter(ds))
    flipped = 0
    for i, pair in enumerate(want):
        got_source = _as_pixels(batch["source"][i])
        is_flipped = not np.array_equal(got_source, pair["source"])
        expected = _numpy_flip(pair) if is_flipped else pair
        flipped += is_flipped
        np.testing.assert_array_equal(got_source, expected["source"])
        np.testing.assert_array_equal(_as_pixels(batch["target"][i]), expected["target"])
        for key in ("source_landmarks", "target_landmarks", "gt_coords", "gt_visibility",
                    "source_frame", "target_frame"):
            np.testing.assert_allclose(batch[key][i].numpy(), expected[key], atol=1e-6)
    assert 10 <= flipped <= 30  # a fair coin over 40 pairs


def test_make_dataset_is_deterministic_for_a_seed(tmp_path):
    _write_dataset(tmp_path, num_pairs=10)

    def ids(seed):
        ds = input_pipeline.make_dataset(tmp_path, "train", 3, seed=seed)
        batches = list(ds.take(7))  # crosses epoch boundaries (repeat)
        return ([b"".join(b["identity"].numpy()) for b in batches],
                np.concatenate([b["source"].numpy() for b in batches]))

    ids_a, images_a = ids(0)
    ids_b, images_b = ids(0)
    assert ids_a == ids_b
    np.testing.assert_array_equal(images_a, images_b)
    assert ids(1)[0] != ids_a
    assert all(len(x) > 0 for x in ids_a)


def test_make_dataset_one_pass_sees_every_pair_once(tmp_path):
    want = _write_dataset(tmp_path, num_pairs=10, ground_truth=False)
    ds = input_pipeline.make_dataset(tmp_path, "train", 4, shuffle=True, repeat=False, seed=5)
    seen = [tuple(ids) for b in ds for ids in zip(b["source_expression"].numpy().tolist(),
                                                  b["target_expression"].numpy().tolist())]
    stored = [(p["source_expression"], p["target_expression"]) for p in want]
    assert sorted(seen) == sorted(stored)
    assert seen != stored  # shuffled
    assert "gt_coords" not in next(iter(ds))


def test_make_dataset_errors(tmp_path):
    with pytest.raises(records.RecordsError, match="not a finished dataset"):
        input_pipeline.make_dataset(tmp_path, "train", 2)
    _write_dataset(tmp_path)
    with pytest.raises(records.RecordsError, match="no 'val' split"):
        input_pipeline.make_dataset(tmp_path, "val", 2)


def test_mirror_permutation_matches_dlib_on_a_mirrored_photo(london_dir):
    image = alignment.load_image(london_dir / "neutral" / "001_03.jpg")
    width = image.shape[1]
    landmarks = alignment.detect_landmarks(image)
    mirrored = alignment.detect_landmarks(np.ascontiguousarray(image[:, ::-1]))
    # Pixel x -> width - 1 - x, then relabel left and right.
    predicted = np.stack([width - 1 - landmarks[:, 0], landmarks[:, 1]], axis=-1)
    predicted = predicted[list(alignment.MIRROR_PERMUTATION)]
    errors = np.linalg.norm(predicted - mirrored, axis=1)
    interocular = np.linalg.norm(landmarks[36] - landmarks[45])
    assert np.median(errors) < 0.03 * interocular
    # Without the relabelling the eyes land on the wrong side.
    wrong = np.stack([width - 1 - landmarks[:, 0], landmarks[:, 1]], axis=-1)
    assert np.linalg.norm(wrong[36] - mirrored[36]) > 0.5 * interocular
