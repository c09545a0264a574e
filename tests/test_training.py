"""Tests for fvae_tf.train.loop, checkpoints, latent_stats and summaries on the tiny preset."""

import json
import math
import re

import numpy as np
import pytest
import tensorflow as tf

from conftest import TINY_EXPRESSIONS, TINY_SIZE, assert_same_checkpoints, checkpoint_values
from fvae_tf.data import input_pipeline
from fvae_tf.model import config as config_lib
from fvae_tf.train import checkpoints, latent_stats, loop, summaries, weight_average
from fvae_tf.warp import sampler


def _to_float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 127.5 - 1.0


def _config(**overrides) -> config_lib.FVAEConfig:
    # 24 training pairs, batch 8: 3 steps per epoch, so runs cross epochs.
    values = dict(num_steps=8, eval_every=4, patience=5)
    values.update(overrides)
    return config_lib.get_config("tiny", **values)


@pytest.fixture(scope="module")
def trained(tiny_dataset, tmp_path_factory):
    """An 8-step FVAE run shared by the tests that only read it."""
    data_dir, _ = tiny_dataset
    workdir = tmp_path_factory.mktemp("run8")
    return workdir, loop.train(_config(), workdir, data_dir)


def test_restore_round_trip_covers_every_variable(trained):
    """Weights, batch-norm statistics, Adam slots and run state survive a checkpoint."""
    workdir, result = trained
    path = checkpoints.best_checkpoint(workdir)
    values = checkpoint_values(path)
    model = checkpoints.load_model(workdir)
    assert int(values["step/.ATTRIBUTES/VARIABLE_VALUE"]) == result.best_step
    assert "noise/.ATTRIBUTES/VARIABLE_VALUE" in values
    # Adam's two moments per weight, non-zero after training.
    moments = [n for n in values if n.startswith("optimizer/_variables/")]
    assert len(moments) == 2 * len(model.trainable_weights)
    assert all(np.any(values[n] != 0) for n in moments)
    fresh = checkpoints.build_model("fvae", _config())
    assert not all(np.array_equal(a.numpy(), b.numpy())
                   for a, b in zip(fresh.weights, model.weights))
    checkpoints.restore_weights(fresh, path)
    for a, b in zip(fresh.weights, model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_resume_equals_uninterrupted_run(tiny_dataset, trained, tmp_path):
    data_dir, _ = tiny_dataset
    straight, straight_result = trained
    first = loop.train(_config(num_steps=4), tmp_path, data_dir)
    assert first.step == 4
    second = loop.train(_config(), tmp_path, data_dir)
    assert second.step == 8
    assert_same_checkpoints(tf.train.latest_checkpoint(str(straight / "checkpoints")),
                             tf.train.latest_checkpoint(str(tmp_path / "checkpoints")))
    assert second.metrics == pytest.approx(straight_result.metrics, rel=1e-5)
    # A finished run started again trains nothing and reports the same.
    again = loop.train(_config(), tmp_path, data_dir)
    assert again.step == 8 and again.metrics == pytest.approx(second.metrics)


def test_weight_averaging_keeps_the_average_as_best_and_resumes(tiny_dataset, trained,
                                                                tmp_path):
    """The best checkpoint holds the debiased average of the steps' weights (eval_every =
    num_steps: the one evaluation is the best), the latest the last step's own; a
    resumed run continues the same average; resuming without it is refused."""
    data_dir, _ = tiny_dataset
    straight = loop.train(_config(eval_every=8, weight_averaging=0.5), tmp_path / "a", data_dir)
    model = checkpoints.build_model("fvae", _config())
    average = weight_average.WeightAverage(model.trainable_variables, 0.5)
    tf.train.Checkpoint(weight_average=average).read(
        tf.train.latest_checkpoint(str(tmp_path / "a" / "checkpoints"))).expect_partial()
    assert int(average.count) == 8
    best = checkpoints.load_model(tmp_path / "a")
    for want, got in zip(average.averaged(), best.trainable_weights):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-7)
    checkpoints.restore_weights(model, tf.train.latest_checkpoint(str(tmp_path / "a" / "checkpoints")))
    assert not all(np.allclose(a.numpy(), b.numpy())
                   for a, b in zip(model.trainable_weights, best.trainable_weights))
    # Killed at step 4 and resumed: the same checkpoints, average included.
    loop.train(_config(num_steps=4, eval_every=4, weight_averaging=0.5), tmp_path / "b", data_dir)
    resumed = loop.train(_config(eval_every=4, weight_averaging=0.5), tmp_path / "b", data_dir)
    assert_same_checkpoints(tf.train.latest_checkpoint(str(tmp_path / "a" / "checkpoints")),
                            tf.train.latest_checkpoint(str(tmp_path / "b" / "checkpoints")))
    assert resumed.step == straight.step == 8
    with pytest.raises(checkpoints.CheckpointError, match="weight_averaging 0.5 .this run: 0.0.") as error:
        loop.train(_config(num_steps=12, eval_every=4), tmp_path / "b", data_dir)
    assert "--weight_averaging 0.5" in error.value.describe("--{}")
    with pytest.raises(checkpoints.CheckpointError, match="weight_averaging 0.0 .this run: 0.9."):
        loop.train(_config(num_steps=12, weight_averaging=0.9), trained[0], data_dir)


def test_resume_in_mixed_float16_keeps_the_loss_scale(tiny_dataset, tmp_path):
    """The dynamic loss scale and its counter are checkpointed with the optimizer: a
    resumed float16 run ends where an uninterrupted one does. 20 steps, so that the
    scale has fallen from 2^15 (the first steps overflow and are skipped) and the
    weights have moved."""
    data_dir, _ = tiny_dataset
    def config(num_steps):
        return _config(num_steps=num_steps, eval_every=10, precision="mixed_float16",
                       jit_compile=True)
    loop.train(config(20), tmp_path / "straight", data_dir)
    assert loop.train(config(10), tmp_path / "resumed", data_dir).step == 10
    assert loop.train(config(20), tmp_path / "resumed", data_dir).step == 20
    straight = tf.train.latest_checkpoint(str(tmp_path / "straight" / "checkpoints"))
    assert_same_checkpoints(straight,
                            tf.train.latest_checkpoint(str(tmp_path / "resumed" / "checkpoints")))
    values = checkpoint_values(straight)
    assert 0 < values["optimizer/dynamic_scale/.ATTRIBUTES/VARIABLE_VALUE"] < 2.0 ** 15
    # Adam's own count: the steps that were not skipped.
    assert 0 < values["optimizer/inner_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"] < 20


def test_outputs_metrics_and_latent_stats(tiny_dataset, trained):
    _, data = tiny_dataset
    workdir, result = trained
    report = json.loads((workdir / "metrics.json").read_text())
    assert report == json.loads((workdir / "result_8.json").read_text())
    assert report["step"] == 8 and report["best_step"] == result.best_step
    # No-motion metrics against an independent computation over the val pairs.
    sources = np.stack([_to_float(s) for s, _, _, _ in data["val"]])
    targets = np.stack([_to_float(t) for _, t, _, _ in data["val"]])
    assert report["eval/l1_no_motion"] == pytest.approx(np.mean(np.abs(sources - targets)),
                                                        rel=1e-5)
    psnr = np.mean([10 * np.log10(4 / np.mean((s - t) ** 2)) for s, t in zip(sources, targets)])
    assert report["eval/psnr_no_motion"] == pytest.approx(psnr, rel=1e-5)
    # gt_coords are the identity shifted by 0.05 * (t - s) in x and y: 1.6 px per unit.
    shifts = [abs(t - s) for s in TINY_EXPRESSIONS for t in TINY_EXPRESSIONS if s != t]
    assert report["eval/epe_px_no_motion"] == pytest.approx(
        np.mean(shifts) * 0.05 * TINY_SIZE / 2 * math.sqrt(2), rel=1e-4)
    for key in ("eval/l1", "eval/psnr", "eval/epe_px", "eval/loss", "eval/rec", "eval/kl",
                "eval/flow"):
        assert math.isfinite(report[key]), key
    assert json.loads((workdir / "config.json").read_text())["config"]["latent_dim"] == 8
    assert list((workdir / "summaries").glob("events.out.tfevents.*"))

    stats = latent_stats.load(workdir / latent_stats.FILENAME)
    assert stats.step == result.best_step
    np.testing.assert_array_equal(stats.counts, [4, 4, 4, 0, 0, 0])
    model = checkpoints.load_model(workdir)
    for e in TINY_EXPRESSIONS:
        images = np.stack([_to_float(img) for img, label in data["images"].values() if label == e])
        np.testing.assert_allclose(stats.means[e], np.mean(model.encode(images), axis=0),
                                   atol=1e-5)
    np.testing.assert_allclose(stats.direction("neutral", "smile"),
                               stats.means[1] - stats.means[0])
    with pytest.raises(ValueError, match="no training image is labelled 'scream'"):
        stats.mean("scream")


def test_early_stopping_keeps_the_best_checkpoint(tiny_dataset, tmp_path):
    data_dir, _ = tiny_dataset
    losses = iter([5.0, 4.0, 4.5, 4.2, 9.0])
    result = loop.train(_config(num_steps=100, eval_every=1, patience=2), tmp_path, data_dir,
                        evaluate=lambda eval_step, batches: {"loss": next(losses)})
    assert result.early_stopped and result.step == 4
    assert result.best_step == 2 and result.best_val_loss == 4.0
    assert checkpoints.best_checkpoint(tmp_path).endswith("ckpt-2")
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-4")


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_dataset, tmp_path, monkeypatch):
    """Epoch 1 (steps 4-6) is poisoned; the checkpoint of step 3 stays the latest."""
    data_dir, _ = tiny_dataset
    real = input_pipeline.make_dataset
    calls = []

    def poisoned(dataset_dir, split, batch_size, **kwargs):
        data = real(dataset_dir, split, batch_size, **kwargs)
        if split == "train":
            calls.append(kwargs)
            if len(calls) > 1:
                return data.map(lambda b: {**b, "source": b["source"] * np.nan})
        return data

    monkeypatch.setattr(input_pipeline, "make_dataset", poisoned)
    with pytest.raises(loop.DivergenceError) as error:
        loop.train(_config(num_steps=20, eval_every=3), tmp_path, data_dir)
    assert str(error.value).startswith("loss became NaN at step 4")
    assert f"the last good checkpoint (step 3) is kept in {tmp_path}" in str(error.value)
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    assert latest.endswith("ckpt-3")
    assert all(np.all(np.isfinite(v)) for v in checkpoint_values(latest).values()
               if np.issubdtype(v.dtype, np.floating))


def test_checkpoint_errors(tiny_dataset, trained, tmp_path):
    data_dir, _ = tiny_dataset
    workdir, _ = trained
    with pytest.raises(checkpoints.CheckpointError, match=r"latent_dim=8 \(this run: 16\)"):
        loop.train(_config(latent_dim=16), workdir, data_dir)
    with pytest.raises(checkpoints.CheckpointError, match=r"init_from .* latent_dim=8") as error:
        loop.train(_config(latent_dim=16), tmp_path / "new", data_dir, init_from=workdir)
    assert re.match(r"--init_from .* latent_dim=8", error.value.describe("--{}"))
    with pytest.raises(checkpoints.CheckpointError, match=r"init_from .* global_affine=False"):
        loop.train(_config(flow_head="residual", global_affine=True), tmp_path / "affine",
                   data_dir, init_from=workdir)
    with pytest.raises(checkpoints.CheckpointError, match="holds a fvae run, not vae"):
        loop.train(_config(), workdir, data_dir, model_kind="vae")
    with pytest.raises(checkpoints.CheckpointError, match="not a training run directory"):
        loop.train_mask(_config(), tmp_path / "empty", data_dir)
    with pytest.raises(loop.TrainingError, match="fewer than one batch"):
        loop.train(_config(batch_size=64), tmp_path / "big", data_dir)
    with pytest.raises(loop.TrainingError, match="^patience must be at least 1, got 0") as error:
        loop.train(_config(patience=0), tmp_path / "impatient", data_dir)
    # A binary names its flag.
    assert error.value.describe("--{}").startswith("--patience must be at least 1, got 0")


def test_init_from_starts_from_the_other_runs_best_weights(tiny_dataset, trained, tmp_path):
    data_dir, _ = tiny_dataset
    workdir, _ = trained
    # learning_rate 0: the new run's weights stay what init_from loaded (batch-norm
    # statistics aside).
    loop.train(_config(num_steps=1, eval_every=1, learning_rate=0.0), tmp_path, data_dir,
                   init_from=workdir)
    a, b = checkpoints.load_model(workdir), checkpoints.load_model(tmp_path)
    for wa, wb in zip(a.trainable_weights, b.trainable_weights):
        np.testing.assert_array_equal(wa.numpy(), wb.numpy(), err_msg=wa.path)


def test_mask_stage_trains_only_the_mask(tiny_dataset, trained):
    data_dir, _ = tiny_dataset
    workdir, _ = trained
    result = loop.train_mask(_config(num_steps=2, eval_every=2, latent_dim=99), workdir,
                                 data_dir)
    assert result.step == 2 and math.isfinite(result.metrics["eval/mask_mae"])
    fvae = checkpoints.load_model(workdir)
    mask = checkpoints.load_confidence_model(workdir)
    for a, b in zip(fvae.weights, mask.fvae.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert json.loads((workdir / "mask" / "config.json").read_text())["config"]["latent_dim"] == 8
    assert not (workdir / "mask" / latent_stats.FILENAME).exists()


def test_pair_grid_layout():
    rng = np.random.default_rng(0)
    images = [rng.uniform(-1, 1, (2, 16, 16, 3)) for _ in range(3)]
    coords = np.broadcast_to(sampler.identity_grid(16, 16).numpy(), (2, 16, 16, 2))
    fvae = summaries.pair_grid(*images, coords=coords)
    mask = summaries.pair_grid(*images, label=np.ones((2, 16, 16, 1)),
                               confidence=np.zeros((2, 16, 16, 1)))
    # scale 2: 32-pixel cells; 6 columns (legend included) vs 5.
    assert fvae.dtype == np.uint8 and fvae.shape[1] == 6 * 32 + 7 * 2
    assert mask.shape[1] == 5 * 32 + 6 * 2
    # The flow column of an identity field is white (zero motion).
    assert np.all(fvae[-2 - 32:-2, 2 + 3 * 34:2 + 3 * 34 + 32] == 255)


def test_progress_line():
    line = summaries.progress_line(50, 150, {"loss": 12.3456, "kl": 0.5}, 2.0)
    assert line == "step 50/150  loss 12.35  kl 0.5  2.00 steps/s  ETA 0:00:50"
