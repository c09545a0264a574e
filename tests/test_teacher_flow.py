"""Teacher flows (`fvae_tf.eval.teacher_flow`, `data_prep.add_teacher_flow`) and their path
through the records, the input pipeline and the supervision term."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO_ROOT, experiment_ok, fails_cleanly, shift_batch, write_dataset
from fvae_tf.data import input_pipeline, jitter, records
from fvae_tf.eval import teacher_flow
from fvae_tf.model import config as config_lib
from fvae_tf.model import fvae, losses
from fvae_tf.warp import sampler

HR, SIZE, HR_SHIFT = 128, 32, 4  # the target is the source moved right by HR_SHIFT hr pixels


def _shift_coords(side: int, pixels: float) -> np.ndarray:
    """The identity field of a side x side crop displaced by `pixels` in x, normalized."""
    return sampler.identity_grid(side, side).numpy() + [2.0 * pixels / side, 0.0]


def _shifted_pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(target, source) uint8 [HR, HR, 3]: target(p) = source(p - HR_SHIFT in x), textured."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (HR, HR + HR_SHIFT, 3)).astype(np.float32)
    wide = np.clip(cv2.GaussianBlur(noise, (0, 0), 2.0) * 3 - 255, 0, 255).astype(np.uint8)
    return wide[:, :HR], wide[:, HR_SHIFT:]


def test_forward_backward_check_against_hand_cases():
    side = 16
    forward = _shift_coords(side, 1.0)
    assert teacher_flow.consistent(forward, _shift_coords(side, -1.0)).all()  # a round trip
    # |1 - 0.5|^2 = 0.25 < 0.01 (1 + 0.25) + 0.5; |1 + 0|^2 = 1 is not.
    assert teacher_flow.consistent(forward, _shift_coords(side, -0.5)).all()
    assert not teacher_flow.consistent(forward, _shift_coords(side, 0.0)).any()
    # Long flows are allowed 1 % of their squared lengths: 10 px there and 9.8 back passes
    # (0.04 < 0.01 * 196.04 + 0.5), 7 back does not (9 > 0.01 * 149 + 0.5).
    far = _shift_coords(side, 10.0)
    assert teacher_flow.consistent(far, _shift_coords(side, -9.8)).all()
    assert not teacher_flow.consistent(far, _shift_coords(side, -7.0)).any()


def test_downsampled_labels_keep_the_field_and_vote_visibility():
    coords = _shift_coords(64, 2.0)  # 2 px at 64 px is 0.5 px at 16 px: the same point
    valid = np.zeros((64, 64), bool)
    valid[:4, :4] = True  # block (0, 0) all valid
    valid[4:6, 4:8] = True  # block (1, 1): 8 of 16
    valid[8:10, 8:11] = True  # block (2, 2): 6 of 16
    small, visible = teacher_flow.downsample_labels(coords, valid, 16)
    np.testing.assert_allclose(small, _shift_coords(16, 0.5), atol=1e-6)
    assert visible[0, 0] == 1 and visible[1, 1] == 1 and visible[2, 2] == 0
    assert visible.sum() == 2 and small.dtype == np.float32 and visible.dtype == np.uint8


def test_pair_labels_recover_a_known_shift():
    pairs = [_shifted_pair(seed) for seed in (0, 1)]
    labels = teacher_flow.pair_labels([t for t, _ in pairs], [s for _, s in pairs], SIZE,
                                      "dis", num_workers=2)
    # target(p) = source(p - 4): each target pixel reads 4 hr px (1 px at 32) to its left.
    want = _shift_coords(SIZE, -HR_SHIFT * SIZE / HR)
    inner = (slice(4, -4), slice(4, -4))
    for coords, visible in labels:
        error = np.linalg.norm((coords - want)[inner] * SIZE / 2, axis=-1)
        assert error.mean() < 0.1, error.mean()  # pixels at 32 px
        assert visible[inner].mean() > 0.95


def _shifted_dataset(root, with_truth: bool) -> records.Manifest:
    """Train and val splits of two people, each a pair (both orders) moved by HR_SHIFT."""
    tables = {}
    for split, seeds in (("train", (0, 1)), ("val", (2,))):
        images, pairs = [], []
        for seed in seeds:
            target, source = _shifted_pair(seed)
            for expression, image in ((0, source), (1, target)):
                images.append(records.ImageRecord(
                    crop=cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA),
                    crop_hr=image, landmarks=np.zeros((68, 2)), expression=expression,
                    identity=f"p{seed}", image_id=f"p{seed}/{expression}"))
            for s, t, pixels in ((0, 1, -1.0), (1, 0, 1.0)):
                truth = {}
                if with_truth:
                    truth = {"gt_coords": _shift_coords(SIZE, pixels),
                             "gt_visibility": np.ones((SIZE, SIZE), np.uint8)}
                pairs.append(records.PairRecord(len(images) - 2 + s, len(images) - 2 + t,
                                                **truth))
        tables[split] = (images, pairs)
    return write_dataset(root, tables, size=SIZE, hr_size=HR,
                         source="synthetic" if with_truth else "london")


def _first_batch(dataset_dir, split: str) -> dict:
    return next(iter(input_pipeline.make_dataset(dataset_dir, split, 8, shuffle=False,
                                                 flip=False, repeat=False)))


def test_add_teacher_flow_copies_the_dataset_and_labels_every_pair(tmp_path):
    original, labelled = tmp_path / "original", tmp_path / "labelled"
    _shifted_dataset(original, with_truth=True)
    seen = []
    manifest = teacher_flow.add_teacher_flow(original, labelled, "dis", num_workers=1,
                                             progress=lambda *args: seen.append(args))
    assert manifest == records.read_manifest(labelled)
    assert manifest.teacher_flow == "dis" and manifest.has_ground_truth
    assert manifest.flags["teacher_flow_from"] == str(original)
    assert ("train", 4, 4) in seen and ("val", 2, 2) in seen
    for split in ("train", "val"):
        for shard in manifest.splits[split].image_shards:
            assert (labelled / shard.file).read_bytes() == (original / shard.file).read_bytes()
        before, after = _first_batch(original, split), _first_batch(labelled, split)
        assert "teacher_coords" not in before
        np.testing.assert_array_equal(after["gt_coords"], before["gt_coords"])
        np.testing.assert_array_equal(after["target"], before["target"])
        # The oracle: the teacher finds the motion the pairs were made with.
        error = np.linalg.norm((after["teacher_coords"] - after["gt_coords"]).numpy()
                               [:, 4:-4, 4:-4] * SIZE / 2, axis=-1)
        assert error.mean() < 0.1, error.mean()
        assert after["teacher_visibility"].numpy()[:, 4:-4, 4:-4].mean() > 0.95
    assert not list(labelled.glob("*.tmp"))


def test_add_teacher_flow_refuses_to_overwrite_or_to_write_over_its_input(tmp_path):
    original = tmp_path / "original"
    _shifted_dataset(original, with_truth=False)
    with pytest.raises(records.RecordsError, match="is the dataset read"):
        teacher_flow.add_teacher_flow(original, original)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(records.RecordsError, match="not empty") as error:
        teacher_flow.add_teacher_flow(original, tmp_path / "busy")
    assert error.value.describe("--{}").endswith("set --overwrite to replace the dataset in it")
    with pytest.raises(records.RecordsError, match="manifest.json: missing"):
        teacher_flow.add_teacher_flow(tmp_path / "nothing", tmp_path / "out")


def test_flip_and_jitter_move_teacher_labels_as_they_move_ground_truth():
    rng = np.random.default_rng(3)
    coords = _shift_coords(SIZE, 1.5) + rng.normal(0, 0.02, (SIZE, SIZE, 2))
    visibility = (rng.uniform(size=(SIZE, SIZE, 1)) > 0.2).astype(np.float32)
    example = {f"{prefix}_{field}": tf.constant(value, tf.float32)
               for prefix in records.FLOW_LABELS
               for field, value in (("coords", coords), ("visibility", visibility))}
    for moved in (input_pipeline.flip_pair(example),
                  jitter.jitter_pair(example, 0.1, tf.constant([4, 2]))):
        np.testing.assert_array_equal(moved["teacher_coords"], moved["gt_coords"])
        np.testing.assert_array_equal(moved["teacher_visibility"], moved["gt_visibility"])
        assert not np.allclose(moved["teacher_coords"], coords)


def test_supervision_reads_the_ground_truth_else_the_teacher():
    batch = dict(shift_batch(2))
    identity = np.broadcast_to(sampler.identity_grid(64, 64).numpy(), (2, 64, 64, 2))
    shifted = identity + [2.0 * 3 / 64, 0.0]
    visible = np.ones((2, 64, 64, 1), np.float32)
    model = fvae.FVAE(config_lib.get_config("tiny", flow_supervision=1.0))
    coords = model.forward(batch["source"], batch["target"], training=False).coords

    def supervision(extra: dict) -> float:
        return float(model.compute_losses({**batch, **extra}, training=False)[0]["supervision"])

    teacher = {"teacher_coords": shifted, "teacher_visibility": visible}
    truth = {"gt_coords": identity, "gt_visibility": visible}
    assert supervision(teacher) == pytest.approx(
        float(losses.flow_supervision(coords, shifted, visible)), rel=1e-5)
    assert supervision({**teacher, **truth}) == pytest.approx(
        float(losses.flow_supervision(coords, identity, visible)), rel=1e-5)
    assert supervision(teacher) != pytest.approx(supervision({**teacher, **truth}), rel=1e-3)


def _add_teacher_flow(*flags) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "data_prep.add_teacher_flow", *map(str, flags)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_binary_labels_a_dataset_that_training_supervises_with(tmp_path):
    original, labelled = tmp_path / "original", tmp_path / "labelled"
    _shifted_dataset(original, with_truth=False)
    fails_cleanly(_add_teacher_flow(f"--dataset_dir={tmp_path / 'missing'}",
                                    f"--output_dir={labelled}"),
                  "error: ", "manifest.json: missing")
    done = _add_teacher_flow(f"--dataset_dir={original}", f"--output_dir={labelled}")
    assert done.returncode == 0, done.stderr
    assert "dis teacher labels for pairs {'train': 4, 'val': 2}" in done.stdout
    fails_cleanly(_add_teacher_flow(f"--dataset_dir={original}", f"--output_dir={labelled}"),
                  "not empty", "--overwrite")
    run = tmp_path / "run"
    experiment_ok("train", f"--workdir={run}", f"--dataset_dir={labelled}", "--preset=tiny",
                  "--image_size=32", "--bottleneck_size=4", "--flow_supervision=1",
                  "--num_steps=2", "--eval_every=2", "--batch_size=2")
    assert "eval/supervision" in json.loads((run / "metrics.json").read_text())
