"""End-to-end evaluation (experiments.evaluate, fvae_tf.eval.evaluate) and its bad inputs.

The runs are tiny untrained models written in the run-directory layout that
training writes (`fvae_tf.train.checkpoints`): the evaluation only needs
their weights and latent statistics, and training four models would take
minutes. The data is a real synthetic set (with graded series) built by the
dataset builder.
"""

import dataclasses
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from fvae_tf.data import alignment, builder, records
from fvae_tf import metrics
from fvae_tf.edit import direction_fit, editing, fitted_directions
from fvae_tf.eval import data, demo_report, evaluate, models, real_faces, table1
from fvae_tf.model import config as config_lib
from fvae_tf.model.fvae import VAE, ConfidenceModel, FVAE
from fvae_tf.synthetic import dataset as synthetic_dataset
from fvae_tf.synthetic import faces
from fvae_tf.train import checkpoints, latent_stats

REPO = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _write_run(run_dir: pathlib.Path, kind: checkpoints.ModelKind, model, config,
               dataset_dir: pathlib.Path | None):
    """A finished run directory: config.json, best/ckpt-1 and, given a dataset, latent_stats.npz."""
    model.build_for_inference()
    checkpoints.write_run_config(run_dir, kind, config)
    tf.train.Checkpoint(model=model).save(str(run_dir / "best" / "ckpt"))
    if dataset_dir is not None:
        batches = latent_stats.unique_images(dataset_dir, "train", 8)
        latent_stats.save(run_dir / latent_stats.FILENAME,
                          latent_stats.compute(model.encode, batches, step=1))


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("eval")
    synthetic_dataset.write_dataset(root / "synthetic", synthetic_dataset.DatasetConfig(
        num_identities=3, size=64, hr_size=128))
    builder.build_dataset(builder.BuildConfig(
        source="synthetic", input_dir=str(root / "synthetic"), output_dir=str(root / "dataset"),
        size=64, hr_size=128, val_fraction=0.34, test_fraction=0.34, num_workers=1))
    dataset = root / "dataset"
    tiny = config_lib.get_config("tiny")
    fvae = FVAE(tiny)
    _write_run(root / "fvae", checkpoints.ModelKind.FVAE, fvae, tiny, dataset)
    _write_run(root / "fvae" / checkpoints.MASK_SUBDIR, checkpoints.ModelKind.MASK,
               ConfidenceModel(fvae), tiny, None)
    for name, decoder in (("vae", "z_only"), ("vae_unet", "source_unet")):
        config = config_lib.get_config("tiny", vae_decoder=decoder)
        _write_run(root / name, checkpoints.ModelKind.VAE, VAE(config), config, dataset)
    small = config_lib.get_config("tiny", image_size=32)
    _write_run(root / "vae32", checkpoints.ModelKind.VAE, VAE(small), small, None)
    return {"root": root, "dataset": dataset}


def _config(setup, output: str, **kwargs) -> evaluate.EvalConfig:
    settings = dict(fvae_dir=str(setup["root"] / "fvae"), dataset_dir=str(setup["dataset"]),
                    output_dir=str(setup["root"] / output),
                    vae_dirs=(str(setup["root"] / "vae"), str(setup["root"] / "vae_unet")),
                    max_pairs=12, max_train_pairs=40, max_series=2, upsampling_pairs=3,
                    num_examples=2)
    return evaluate.EvalConfig(**{**settings, **kwargs})


def _finite(row: dict, *names: str) -> None:
    for name in names:
        assert row[name] is not None and math.isfinite(row[name]), (name, row)


def test_evaluate_binary_end_to_end(setup):
    output = setup["root"] / "out"
    result = subprocess.run(
        [sys.executable, "-m", "experiments.evaluate", f"--fvae_dir={setup['root'] / 'fvae'}",
         f"--vae_dir={setup['root'] / 'vae'}", f"--vae_dir={setup['root'] / 'vae_unet'}",
         f"--dataset_dir={setup['dataset']}", "--split=test", f"--output_dir={output}",
         "--max_pairs=12", "--max_train_pairs=40", "--max_series=2", "--upsampling_pairs=3",
         "--num_examples=2"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "table 1 12/12" in result.stderr and "ETA" in result.stderr  # the progress line
    results = json.loads((output / "results.json").read_text())
    assert results["setting"]["pairs"] == 12 and results["setting"]["split"] == "test"

    table = results["table1"]
    vaes = ["VAE (z only, paper)", "VAE (source U-Net)"]
    assert set(table) == {table1.FVAE, table1.FVAE_CONFIDENCE, table1.AVERAGE_FLOW,
                          table1.TRUE_AVERAGE_FLOW, table1.NO_MOTION, *table1.OPTICAL_FLOW_NAMES.values(), *vaes}
    for method, row in table.items():
        _finite(row, "psnr", "ssim", "l1", "sharpness")
        if method not in vaes and method != table1.FVAE_CONFIDENCE:
            _finite(row, "epe_visible", "epe_moving", "epe_moving_face")
    assert table[table1.FVAE]["n"] == table[table1.FVAE_CONFIDENCE]["n"] == 12
    assert 0.0 <= results["confidence"]["auc_mask"] <= 1.0
    assert 0.0 <= results["confidence"]["auc_label"] <= 1.0
    assert 0.0 <= results["confidence"]["auc_mask_face"] <= 1.0
    assert set(results["upsampling"]) == {"flow upsampling", "pixel upsampling (bilinear)",
                                          "pixel upsampling (bicubic)"}
    for row in results["upsampling"].values():
        _finite(row, "psnr", "sharpness")
    editing = results["editing"]["overall"]
    assert set(editing) == {table1.FVAE, table1.AVERAGE_FLOW, table1.TRUE_AVERAGE_FLOW,
                            table1.NO_MOTION, *vaes}
    for method, row in editing.items():
        _finite(row, "psnr", "ssim", "sharpness")
        assert row["n"] == 8  # two series x four intensities
    _finite(editing[table1.FVAE], "epe_moving", "epe_moving_face")
    assert list(results["editing"]["by_intensity"]) == ["25%", "50%", "75%", "100%"]
    interpolation = results["interpolation"]
    assert list(interpolation["by_step"]) == ["25%", "50%", "75%"]
    assert len(interpolation["overall"]) == 7
    for row in interpolation["overall"].values():
        _finite(row, "psnr", "ssim", "sharpness")

    markdown = (output / "results.md").read_text()
    assert "| FVAE | " in markdown and "18.14" in markdown and "25.41" in markdown
    assert "The paper's orderings, here" in markdown
    for name in ("table1_psnr", "table1_sharpness", "upsampling_sharpness", "editing_psnr",
                 "interpolation_psnr", "table1_grid", "editing_grid", "interpolation_grid",
                 "upsampling_grid"):
        assert (output / f"{name}.png").stat().st_size > 1000, name
    assert not [p for p in output.parent.iterdir() if p.name.startswith(".out.")]


def test_max_pairs_and_blocks(setup):
    results = evaluate.evaluate(_config(setup, "small", blocks=("table1",), max_pairs=5,
                                        vae_dirs=()))
    assert list(results["table1"][table1.FVAE].values())[-1] == 5
    assert "editing" not in results and "upsampling" not in results
    assert (setup["root"] / "small" / "results.md").is_file()


def _fails(setup, message: str, output: str = "bad", **kwargs) -> None:
    with pytest.raises((evaluate.EvalError, models.EvalModelError, data.EvalDataError,
                        records.RecordsError), match=message):
        evaluate.evaluate(_config(setup, output, **kwargs))
    assert not (setup["root"] / output).exists()
    assert not [p for p in setup["root"].iterdir() if p.name.startswith(f".{output}.")]


def test_bad_inputs_each_get_one_clear_message(setup, tmp_path):
    root = setup["root"]
    _fails(setup, "holds a vae run, not a fvae run", fvae_dir=str(root / "vae"))
    _fails(setup, "vae_dir: .*vae32 was trained on 32 px crops but the dataset's are 64 px",
           vae_dirs=(str(root / "vae32"),))
    _fails(setup, "is missing: .* is not a training run directory", vae_dirs=(str(tmp_path),))
    _fails(setup, "unknown block", blocks=("tables",))
    broken = tmp_path / "broken_fitted"
    shutil.copytree(root / "fvae", broken)
    (broken / fitted_directions.FILENAME).write_bytes(b"not an npz")
    _fails(setup, f"--fvae_dir: {broken / fitted_directions.FILENAME} cannot be read",
           fvae_dir=str(broken))
    _fails(setup, "graded series need the synthetic set", synthetic_dir=str(tmp_path))
    old = tmp_path / "old_dataset"
    shutil.copytree(setup["dataset"], old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["splits"]["test"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(records.RecordsError, match="no 'test' split.*rebuild it") as caught:
        evaluate.evaluate(dataclasses.replace(_config(setup, "bad"), dataset_dir=str(old)))
    assert "python -m data_prep.build_dataset --source=synthetic" in caught.value.describe("--{}")
    manifest["splits"]["test"] = manifest["splits"]["val"]
    manifest["source"] = "london"
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(evaluate.EvalError, match="need synthetic faces' graded series"):
        evaluate.evaluate(dataclasses.replace(_config(setup, "bad", blocks=("editing",)),
                                            dataset_dir=str(old)))
    (root / "taken").mkdir()
    (root / "taken" / "mine.txt").write_text("keep")
    with pytest.raises(evaluate.EvalError, match="not empty.*--overwrite"):
        evaluate.evaluate(_config(setup, "taken"))
    assert (root / "taken" / "mine.txt").read_text() == "keep"


def test_graded_series_and_pairs_carry_their_photo_frames(setup):
    # The crops' photo frames, as alignment gives them, travel with the graded
    # series and the pairs (the confidence blends read them).
    series = data.read_graded(setup["root"] / "synthetic", ["001"], 64, 128)[0]
    folder = setup["root"] / "synthetic" / synthetic_dataset.GRADED_DIR / "001"
    path = sorted(folder.glob(f"{series.expression}_*.png"))[-1]
    want = alignment.align_face(alignment.load_image(path), faces.load_landmarks(path),
                                64, 128).frame
    np.testing.assert_array_equal(series.photo_frames[-1, ..., 0], want)
    assert series.neutral_photo_frame.shape == (64, 64, 1)
    pairs = data.read_pairs(setup["dataset"], "test")
    assert pairs.source_frame.shape == pairs.source.shape[:3] + (1,)
    assert 0.0 <= pairs.target_frame.min() and pairs.target_frame.max() == 1.0


def test_binary_bad_input_message(setup):
    output = setup["root"] / "bad_binary"
    result = subprocess.run(
        [sys.executable, "-m", "experiments.evaluate", f"--fvae_dir={setup['root'] / 'vae'}",
         f"--dataset_dir={setup['dataset']}", f"--output_dir={output}"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "error: --fvae_dir:" in result.stderr and "holds a vae run" in result.stderr
    assert not output.exists()


def test_binary_reports_a_failing_optical_flow_without_a_traceback(setup, tmp_path):
    # SparseToDense's edge-aware interpolation returns NaN everywhere, in the binary
    # and in its flow workers: a sitecustomize on PYTHONPATH patches cv2 before
    # anything runs (its setters do nothing).
    (tmp_path / "sitecustomize.py").write_text(
        "import cv2\n"
        "import numpy as np\n"
        "class NaNInterpolator:\n"
        "    def __getattr__(self, name):\n"
        "        return lambda *args: None\n"
        "    def interpolate(self, target, *args):\n"
        "        return np.full((*target.shape[:2], 2), np.nan, np.float32)\n"
        "cv2.ximgproc.createEdgeAwareInterpolator = NaNInterpolator\n")
    output = setup["root"] / "flow_failure"
    result = subprocess.run(
        [sys.executable, "-m", "experiments.evaluate", f"--fvae_dir={setup['root'] / 'fvae'}",
         f"--dataset_dir={setup['dataset']}", f"--output_dir={output}", "--blocks=table1",
         "--max_pairs=2", "--max_train_pairs=4"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "non-finite flow 3 times" in result.stderr and "run the command again" in result.stderr
    assert not output.exists()


def test_demo_report_shows_the_evaluation(setup):
    """The demo report of a folder laid out like `make demo`'s (dataset, fvae, vae, eval)."""
    evaluate.evaluate(_config(setup, "eval", blocks=("table1",), max_pairs=4))
    page = demo_report.build_report(setup["root"], examples=2)
    assert "<h3>Table 1 protocol (true target latent)</h3>" in page
    assert "<td>FVAE with confidence</td>" in page and "<td>18.35</td>" in page
    assert page.count("<img") >= 4  # eval plots and grids, example grids


@pytest.mark.parametrize("wall", [None, 500])
def test_demo_report_times_the_whole_run_by_its_wall_time(tmp_path, wall):
    """Stages that overlap (`make demo -j2`) do not add up: timings/total wins over the sum."""
    (tmp_path / "timings").mkdir()
    for stage, seconds in [("3_fvae", 400), ("5_vae", 130)]:
        (tmp_path / "timings" / stage).write_text(f"{seconds}\n")
    if wall is not None:
        (tmp_path / "timings" / "total").write_text(f"{wall}\n")
    table = demo_report._timings_table(tmp_path)
    assert "<td>3_fvae</td><td>6:40</td>" in table.replace("\n", "")
    last = "whole run (wall time)</td><td>8:20" if wall else "total (sum of stages)</td><td>8:50"
    assert last in table.replace("\n", "")
    assert "<td>total</td>" not in table


def _smile_psnr(fvae: FVAE, pairs: data.Pairs, direction: np.ndarray) -> float:
    """Oracle: PSNR against the real smile of the fitted rule's factor-1 edit along `direction`."""
    smiles = real_faces._smiles(pairs)
    edit = editing.edit(fvae, smiles.source, direction, [1.0], direction_fit.FITTED_RULE)
    return metrics.psnr(edit.warped.numpy()[0], smiles.target)


def test_real_editing_measures_the_direction_saved_with_the_run(setup, tmp_path, monkeypatch):
    """The fitted row edits along the run's saved direction (what users edit with); a
    direction saved for other weights is passed over and one is fitted on the training pairs."""
    run = tmp_path / "fvae"
    shutil.copytree(setup["root"] / "fvae", run)
    stats = latent_stats.load(run / latent_stats.FILENAME)
    rng = np.random.default_rng(0)
    saved, refit = rng.normal(size=(2, stats.means.shape[-1])).astype(np.float32)
    fitted_directions.save(run, "neutral", "smile", saved, stats)
    fits = []
    monkeypatch.setattr(direction_fit, "fit_on_pairs",
                        lambda *args: fits.append(args) or refit)
    fvae = models.load_models(run, [], 64).fvae
    pairs = data.read_pairs(setup["dataset"], "test", with_hr=True)

    config = _config(setup, "saved", fvae_dir=str(run), blocks=("real_editing",), vae_dirs=())
    real = evaluate.evaluate(config)["real_editing"]
    assert not fits and "saved with the run" in real["fitted_direction"]
    assert real["rows"][real_faces.FVAE_FITTED]["psnr"] == pytest.approx(
        _smile_psnr(fvae, pairs, saved), abs=1e-4)
    results_md = (setup["root"] / "saved" / "results.md").read_text()
    assert "The fitted direction: the one saved with the run" in results_md

    older = dataclasses.replace(stats, means=stats.means + 1.0)  # other weights
    fitted_directions.save(run, "neutral", "smile", saved, older)
    config = _config(setup, "refit", fvae_dir=str(run), blocks=("real_editing",), vae_dirs=())
    real = evaluate.evaluate(config)["real_editing"]
    assert len(fits) == 1 and "fitted here on" in real["fitted_direction"]
    assert real["rows"][real_faces.FVAE_FITTED]["psnr"] == pytest.approx(
        _smile_psnr(fvae, pairs, refit), abs=1e-4)
