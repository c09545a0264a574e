"""Tests for the parts of a training run: held-out evaluation, run state and
early stopping, the weights' moving average, and settings errors
(fvae_tf.train.evaluation, run_state, weight_average, fvae_tf.errors)."""

import math

import numpy as np
import pytest
import skimage.metrics
import tensorflow as tf

from fvae_tf import errors
from fvae_tf.model import config as config_lib
from fvae_tf.train import evaluation, run_state, step, weight_average
from fvae_tf.warp import sampler


def _batches(sizes: list[int], size: int = 8, shift: float = 0.25) -> list[dict]:
    """Random pairs with ground truth: the identity field shifted by `shift` in x."""
    rng = np.random.default_rng(0)
    identity = sampler.identity_grid(size, size).numpy()
    out = []
    for n in sizes:
        out.append({
            "source": tf.constant(rng.uniform(-1, 1, (n, size, size, 3)), tf.float32),
            "target": tf.constant(rng.uniform(-1, 1, (n, size, size, 3)), tf.float32),
            "gt_coords": tf.constant(np.broadcast_to(identity + [shift, 0.0], (n, size, size, 2)),
                                     tf.float32),
            "gt_visibility": tf.ones((n, size, size)),
        })
    return out


def _identity_step(batch: dict) -> tuple[dict, dict]:
    """An eval step whose model outputs the source through the identity field."""
    source = batch["source"]
    size = source.shape[1]
    coords = tf.broadcast_to(sampler.identity_grid(size, size), [source.shape[0], size, size, 2])
    return {"loss": tf.reduce_mean(source)}, {"output": source, "coords": coords}


def test_evaluate_averages_over_pairs_not_batches():
    batches = _batches([3, 1])
    values = evaluation.evaluate(_identity_step, batches)
    sources = np.concatenate([b["source"].numpy() for b in batches])
    targets = np.concatenate([b["target"].numpy() for b in batches])
    # A short last batch counts per pair: the loss is the mean over all four sources.
    assert values["loss"] == pytest.approx(sources.mean(), rel=1e-5)
    assert values["l1"] == pytest.approx(np.abs(sources - targets).mean(), rel=1e-5)
    psnr = np.mean([skimage.metrics.peak_signal_noise_ratio(t, s, data_range=2.0)
                    for s, t in zip(sources, targets)])
    assert values["psnr"] == pytest.approx(psnr, rel=1e-5)
    # The model is the identity warp, so it scores its own no-motion baseline.
    assert values["l1_no_motion"] == pytest.approx(values["l1"])
    # A shift of 0.25 normalized units of an 8-pixel side is 1 pixel.
    assert values["epe_px"] == pytest.approx(1.0, rel=1e-5)
    assert values["epe_px_no_motion"] == pytest.approx(1.0, rel=1e-5)
    assert "mask_mae" not in values


def test_batch_metrics_of_the_mask_stage():
    batch = _batches([2])[0]
    views = {"output": batch["source"], "label": tf.fill([2, 8, 8, 1], 1.0),
             "confidence": tf.fill([2, 8, 8, 1], 0.75)}
    values = evaluation.batch_metrics(batch, views)
    assert values["mask_mae"] == pytest.approx(0.25)
    assert "epe_px" not in values  # no field to compare


def test_early_stopping_counts_evaluations_without_improvement():
    state = run_state.RunState()
    improved = []
    for at, loss in enumerate([5.0, 4.0, 4.5, 4.0, 9.0], start=1):
        state.step.assign(at)
        improved.append(state.record_evaluation(at, loss))
        if state.stopped_early(patience=3):
            break
    # An equal loss is no improvement; the third one in a row stops the run.
    assert improved == [True, True, False, False, False]
    assert int(state.best_step) == 2 and float(state.best_val) == 4.0
    assert state.done(num_steps=100, patience=3) and not state.done(num_steps=100, patience=4)
    assert state.done(num_steps=5, patience=4)


def test_run_state_survives_a_checkpoint(tmp_path):
    state = run_state.RunState()
    state.step.assign(7)
    state.record_evaluation(7, 1.5)
    state.record_evaluation(7, 2.0)
    path = tf.train.Checkpoint(**state.trackables()).save(str(tmp_path / "ckpt"))
    restored = run_state.RunState()
    assert math.isinf(float(restored.best_val))
    tf.train.Checkpoint(**restored.trackables()).restore(path).assert_consumed()
    assert (int(restored.step), float(restored.best_val), int(restored.best_step),
            int(restored.bad_evals)) == (7, 1.5, 7, 1)


def test_actionable_error_names_settings_in_library_or_flag_terms():
    error = errors.ActionableError("{batch_size} is 0 in /data/{x}; lower {lr}",
                                   ["batch_size", "lr"])
    assert str(error) == "batch_size is 0 in /data/{x}; lower lr"
    assert error.describe("--{}") == "--batch_size is 0 in /data/{x}; lower --lr"
    assert errors.message(error, "--{}") == error.describe("--{}")
    assert errors.message(ValueError("plain"), "--{}") == "plain"


@pytest.mark.parametrize("schedule, share_at_half, share_at_end", [
    ("constant", 1.0, 1.0),
    # (1 - alpha) * (1 + cos(pi t)) / 2 + alpha, alpha = step.COSINE_FLOOR = 0.05
    ("cosine", 0.95 * 0.5 + 0.05, 0.05)])
def test_learning_rate_schedule_closed_form(schedule, share_at_half, share_at_end):
    config = config_lib.get_config("tiny", learning_rate=1e-3, num_steps=100,
                                   lr_schedule=schedule)
    variable = tf.Variable(1.0)
    optimizer = step.make_optimizer(config, [variable])
    for iteration, share in ((0, 1.0), (50, share_at_half), (100, share_at_end)):
        optimizer.iterations.assign(iteration)
        assert float(optimizer.learning_rate) == pytest.approx(1e-3 * share, rel=1e-5)


def test_weight_average_is_the_debiased_exponential_mean():
    # Closed form: after steps with weights w_1..w_T the average is
    # sum_t (1 - m) m^(T - t) w_t / (1 - m^T); after one step it is w_1 itself.
    momentum = 0.8
    rng = np.random.default_rng(0)
    variable = tf.Variable(np.zeros((2, 3), np.float32))
    average = weight_average.WeightAverage([variable], momentum)
    np.testing.assert_array_equal(average.averaged()[0], variable.numpy())  # before any step
    seen = []
    for t in range(5):
        seen.append(rng.normal(size=(2, 3)).astype(np.float32))
        variable.assign(seen[-1])
        average.update()
        if t == 0:
            np.testing.assert_allclose(average.averaged()[0], seen[0], rtol=1e-6)
    powers = momentum ** np.arange(len(seen))[::-1]
    want = ((1 - momentum) * powers[:, None, None] * np.stack(seen)).sum(0) / (1 - momentum ** 5)
    np.testing.assert_allclose(average.averaged()[0], want, rtol=1e-5)
    with average.swapped_in():
        np.testing.assert_allclose(variable.numpy(), want, rtol=1e-5)
    np.testing.assert_array_equal(variable.numpy(), seen[-1])  # its own value back
    with pytest.raises(ValueError, match=r"momentum must be in \(0, 1\)"):
        weight_average.WeightAverage([variable], 1.0)
    with pytest.raises(ValueError, match=r"weight_averaging must be in \[0, 1\)"):
        config_lib.get_config("tiny", weight_averaging=1.0)
