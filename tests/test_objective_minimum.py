"""fvae_tf.eval.objective_minimum and its binary: the objective's minimum against a known truth."""

import dataclasses
import json
import shutil

import cv2
import numpy as np
import pytest
import tensorflow as tf

from conftest import (experiment_ok, fails_cleanly, random_faces, random_models,
                      run_experiment)
from fvae_tf.eval import data, objective_minimum
from fvae_tf.model.config import get_config
from fvae_tf.warp import sampler

SIZE = 32
SHIFT_PX = (1.5, -1.25)  # the true motion: each target pixel reads this far away in the source


def _shifted_pairs(n: int, claimed_offset_px: float) -> data.Pairs:
    """Targets that are exact warps of textured sources by `SHIFT_PX` (border replicated).

    The stored "truth" is the real field plus `claimed_offset_px` in x, so the
    objective's minimum lies exactly that far from it.
    """
    rng = np.random.default_rng(0)
    noise = rng.uniform(-1, 1, (n, SIZE, SIZE, 3)).astype(np.float32)
    sources = np.stack([cv2.GaussianBlur(image, (0, 0), 1.2) * 2.5 for image in noise])
    real = sampler.identity_grid(SIZE, SIZE).numpy() + np.array(SHIFT_PX) * 2 / SIZE
    real = np.broadcast_to(real, (n, SIZE, SIZE, 2)).astype(np.float32)
    targets = sampler.bilinear_sample(tf.constant(sources), tf.constant(real)).numpy()
    claimed = real + np.array([claimed_offset_px * 2 / SIZE, 0.0], np.float32)
    square = np.array([[-0.8, -0.8], [0.8, -0.8], [0.8, 0.8], [-0.8, 0.8]], np.float32)
    landmarks = np.zeros((n, 68, 2), np.float32)
    landmarks[:, :27] = np.resize(square, (27, 2))  # the face: a square around the centre
    names = np.array([f"p{i}" for i in range(n)])
    return data.Pairs(
        source=sources, target=targets, source_expression=names, target_expression=names,
        identity=names, source_id=names, target_id=names, source_landmarks=landmarks,
        target_landmarks=landmarks, gt_coords=claimed.reshape(n, -1, 2),
        gt_visibility=np.ones((n, SIZE * SIZE), np.float32), source_frame=None,
        target_frame=None, source_hr=None, target_hr=None)


def test_flow_objective_is_what_training_minimises():
    fvae, _ = random_models()
    source, target = random_faces(2, seed=1), random_faces(2, seed=2)
    terms, out = fvae.compute_losses({"source": source, "target": target}, training=False)
    expected = terms["rec"] + fvae.config.flow_weight * terms["flow"]
    got = objective_minimum.flow_objective(fvae, source, target, out.coords)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5)


@pytest.mark.parametrize("photometric", ["l1", "ssim_l1", "census"])
def test_the_descent_finds_the_real_motion_a_misstated_truth_misses(photometric):
    pairs = _shifted_pairs(3, claimed_offset_px=0.75)
    config = get_config("tiny", photometric=photometric, flow_weight=0.1)
    drift = objective_minimum.measure(pairs, config, num_pairs=3, grid=8, steps=300,
                                      learning_rate=2e-3)
    # The lattice holds the constant "truth" exactly; every pixel moves by 1.95 px
    # and the descent ends at the real field, 0.75 px from the "truth".
    for value in (drift.start.epe_visible, drift.start.epe_moving_face):
        assert value == pytest.approx(0.0, abs=1e-4)
    for value in (drift.end.epe_visible, drift.end.epe_moving, drift.end.epe_moving_face):
        assert value == pytest.approx(0.75, abs=0.05)
    assert drift.end.objective < 0.05 * drift.start.objective
    assert drift.start.objective == pytest.approx(drift.objective_at_truth, rel=1e-4)
    assert drift.num_pairs == 3


def test_census_on_a_per_pixel_field_misses_even_an_exact_warp():
    """Why the lattice: free at every pixel, census's minimum is not the motion."""
    config = get_config("tiny", photometric="census", flow_weight=0.1)
    pairs = _shifted_pairs(3, claimed_offset_px=0.75)
    real = _shifted_pairs(3, 0.0).gt_coords.reshape(-1, SIZE, SIZE, 2)
    for grid, low, high in ((SIZE, 0.3, 1.0), (8, 0.0, 0.05)):
        _, end = objective_minimum.descend(config, pairs.source, pairs.target,
                                           pairs.gt_coords.reshape(-1, SIZE, SIZE, 2), grid,
                                           steps=300, learning_rate=2e-3)
        error = np.linalg.norm((end - real) * SIZE / 2, axis=-1).mean()
        assert low < error < high, (grid, error)


def test_the_lattice_start_is_the_area_averaged_truth():
    pairs = _shifted_pairs(1, 0.0)
    truth = pairs.gt_coords.reshape(1, SIZE, SIZE, 2).copy()
    truth[0, :16, :16, 0] += 4 * 2 / SIZE  # a block moving 4 px more: a 2x2 lattice holds it
    start, _ = objective_minimum.descend(get_config("tiny"), pairs.source, pairs.target, truth,
                                         grid=2, steps=1, learning_rate=0.0)
    identity = sampler.identity_grid(SIZE, SIZE).numpy()
    lattice = (truth - identity).reshape(2, 16, 2, 16, 2).mean(axis=(1, 3))  # numpy oracle
    expected = identity + cv2.resize(lattice, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(start[0], expected, atol=1e-5)


def test_real_faces_have_no_truth_to_start_from():
    pairs = _shifted_pairs(1, 0.0)
    no_truth = dataclasses.replace(pairs, gt_coords=None, gt_visibility=None)
    with pytest.raises(ValueError, match="only be measured on a synthetic dataset"):
        objective_minimum.measure(no_truth, get_config("tiny"), 1, 4, 1, 1e-3)


@pytest.mark.slow
def test_binary_prints_the_library_measure_for_its_flags(tiny_dataset):
    out = experiment_ok("objective_minimum", f"--dataset_dir={tiny_dataset[0]}", "--preset=tiny",
                        "--photometric=l1", "--flow_weight=0.5", "--num_pairs=3", "--grid=8",
                        "--steps=5")
    lines = out.strip().splitlines()
    assert lines[0] == ("objective: l1 on 1 pyramid level(s), trim 0, lambda 0.5, coherence "
                        "sigma 0.1 over 5x5; 3 train pairs, 8x8 lattice, 5 steps")
    rows = {line.split(" | ")[0][2:]: [float(x) for x in line.strip(" |").split(" | ")[1:]]
            for line in lines if line.startswith("| the")}
    expected = objective_minimum.measure(
        data.read_pairs(tiny_dataset[0], "train"),
        get_config("tiny", photometric="l1", flow_weight=0.5), 3, 8, 5, 2e-3)
    for name, field in (("the truth on the lattice (start)", expected.start),
                        ("the objective's minimum near it (end)", expected.end)):
        np.testing.assert_allclose(rows[name], [field.epe_visible, field.epe_moving,
                                                field.epe_moving_face, field.objective],
                                   atol=2e-3, rtol=1e-3)
    assert rows["the truth"][3] == pytest.approx(expected.objective_at_truth, rel=1e-3)


@pytest.mark.slow
def test_binary_refuses_real_faces_in_one_line(tiny_dataset, tmp_path):
    real = tmp_path / "real"
    shutil.copytree(tiny_dataset[0], real)
    manifest = json.loads((real / "manifest.json").read_text())
    (real / "manifest.json").write_text(json.dumps(
        {**manifest, "source": "folder", "has_ground_truth": False}))
    fails_cleanly(run_experiment("objective_minimum", f"--dataset_dir={real}", "--preset=tiny"),
                  "error: the pairs have no ground-truth flow", "synthetic dataset")
