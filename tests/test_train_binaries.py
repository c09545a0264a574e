"""End-to-end runs of experiments.train and experiments.train_mask (tiny preset, subprocesses)."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

from conftest import (REPO_ROOT, assert_same_checkpoints, experiment_command, experiment_ok,
                      fails_cleanly, run_experiment)
from fvae_tf.train import checkpoints, latent_stats

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_dir(tiny_dataset) -> pathlib.Path:
    return tiny_dataset[0]


def _run_flags(workdir, data_dir, *flags) -> tuple:
    return (f"--workdir={workdir}", f"--dataset_dir={data_dir}", "--preset=tiny", *flags)


def _command(binary: str, workdir, data_dir, *flags) -> list[str]:
    return experiment_command(binary, *_run_flags(workdir, data_dir, *flags))


def _run(binary: str, workdir, data_dir, *flags) -> subprocess.CompletedProcess:
    return run_experiment(binary, *_run_flags(workdir, data_dir, *flags))


def _ok(binary: str, workdir, data_dir, *flags) -> str:
    return experiment_ok(binary, *_run_flags(workdir, data_dir, *flags))


def _event_tags(run_dir: pathlib.Path) -> set[str]:
    tags = set()
    for path in (run_dir / "summaries").glob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            tags.update(value.tag for value in event.summary.value)
    return tags


def _assert_run_dir(run_dir: pathlib.Path, step: int) -> dict:
    assert (run_dir / "checkpoints" / f"ckpt-{step}.index").exists()
    assert checkpoints.best_checkpoint(run_dir).endswith(f"ckpt-{step}")
    report = json.loads((run_dir / "metrics.json").read_text())
    assert report["step"] == step
    assert all(np.isfinite(v) for k, v in report.items() if k.startswith("eval/"))
    return report


@pytest.fixture(scope="module")
def fvae_run(data_dir, tmp_path_factory) -> tuple[pathlib.Path, str]:
    """A one-step FVAE run of the binary: (workdir, stdout)."""
    workdir = tmp_path_factory.mktemp("fvae")
    return workdir, _ok("train", workdir, data_dir, "--model=fvae", "--num_steps=1",
                        "--eval_every=1")


def test_train_one_step(fvae_run):
    workdir, stdout = fvae_run
    assert "stopped at step 1" in stdout and "eval/l1_no_motion" in stdout
    report = _assert_run_dir(workdir, 1)
    assert {"eval/epe_px", "eval/flow", "eval/psnr"} <= report.keys()
    flags = json.loads((workdir / "flags.json").read_text())
    assert flags["config"]["latent_dim"] == 8 and flags["config"]["num_steps"] == 1
    assert flags["flags"]["model"] == "fvae" and flags["flags"]["learning_rate"] is None
    assert "git_commit" in flags
    tags = _event_tags(workdir)
    assert {"train/loss", "train/rec", "train/kl", "train/flow", "val/loss", "val/flow",
            "val/examples", "eval/l1", "hparams"} <= tags
    stats = latent_stats.load(workdir / latent_stats.FILENAME)
    assert stats.means.shape == (6, 8) and np.all(np.isfinite(stats.means))
    np.testing.assert_array_equal(stats.counts, [4, 4, 4, 0, 0, 0])
    assert np.all(stats.means[3:] == 0) and np.any(stats.means[:3] != 0)


def test_train_mask_one_step(fvae_run, data_dir):
    workdir, _ = fvae_run
    _ok("train_mask", workdir, data_dir, "--num_steps=1", "--eval_every=1")
    _assert_run_dir(workdir / "mask", 1)
    assert {"train/loss", "val/loss", "val/examples", "eval/mask_mae"} <= _event_tags(
        workdir / "mask")
    flags = json.loads((workdir / "mask" / "flags.json").read_text())
    assert flags["config"]["latent_dim"] == 8 and flags["flags"]["num_steps"] == 1


def test_train_vae_one_step_multi_worker(data_dir, tmp_path):
    """The VAE, under MultiWorkerMirroredStrategy without TF_CONFIG (one local worker)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    result = subprocess.run(
        _command("train", tmp_path, data_dir, "--model=vae", "--strategy=multi_worker",
                 "--num_steps=1", "--eval_every=1"),
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    report = _assert_run_dir(tmp_path, 1)
    assert "eval/flow" not in report and "eval/epe_px" not in report
    assert (tmp_path / latent_stats.FILENAME).exists()


def test_killed_run_resumes_to_the_same_weights(data_dir, tmp_path):
    flags = ("--num_steps=12", "--eval_every=4", "--log_every=4")
    _ok("train", tmp_path / "straight", data_dir, *flags)

    workdir = tmp_path / "killed"
    process = subprocess.Popen(_command("train", workdir, data_dir, *flags), cwd=REPO_ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint_dir = str(workdir / "checkpoints")
    deadline = time.monotonic() + 240
    # Kill as soon as the first checkpoint is recorded (CheckpointManager's state file).
    while (tf.train.latest_checkpoint(checkpoint_dir) is None and process.poll() is None
           and time.monotonic() < deadline):
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    killed_at = tf.train.latest_checkpoint(checkpoint_dir)
    assert killed_at is not None and not killed_at.endswith("ckpt-12")
    assert not (workdir / "metrics.json").exists()

    stdout = _ok("train", workdir, data_dir, *flags)
    assert "stopped at step 12" in stdout
    assert_same_checkpoints(
        tf.train.latest_checkpoint(str(tmp_path / "straight" / "checkpoints")),
        tf.train.latest_checkpoint(str(workdir / "checkpoints")))


def test_nan_loss_exits_with_a_clear_message(data_dir, tmp_path):
    result = _run("train", tmp_path, data_dir, "--learning_rate=1e30", "--num_steps=20")
    fails_cleanly(result, "error: loss became")
    assert "lower --learning_rate or --clip_value" in result.stderr


def test_missing_and_incompatible_checkpoints_exit_with_a_clear_message(
        data_dir, fvae_run, tmp_path):
    workdir, _ = fvae_run
    fails_cleanly(_run("train_mask", tmp_path / "nothing", data_dir),
                  "is not a training run directory")
    fails_cleanly(_run("train_mask", tmp_path / "nothing", data_dir,
                       "--mask_label_distance=l1*cenus"), "mask_label_distance must be one of")
    assert not (tmp_path / "nothing").exists()
    fails_cleanly(_run("train", tmp_path / "other", data_dir, "--latent_dim=16",
                       f"--init_from={workdir}"),
                  "was trained with latent_dim=8 (this run: 16)")
    assert not (tmp_path / "other").exists()  # no flags.json, config.json or summaries
    recorded = (workdir / "flags.json").read_text()
    fails_cleanly(_run("train", workdir, data_dir, "--latent_dim=16"),
                  "was trained with latent_dim=8 (this run: 16)")
    assert (workdir / "flags.json").read_text() == recorded  # the refused command not recorded
    fails_cleanly(_run("train", tmp_path / "x", tmp_path / "no_data"), "manifest.json")


_STRATEGY_SCRIPT = textwrap.dedent("""
    import sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np
    from fvae_tf.model import config
    from fvae_tf.train import checkpoints, loop, step

    # Clipping applies per replica (see fvae_tf.train.step's docstring): keep it out of the way.
    cfg = config.get_config("tiny", clip_value=1e9)
    rng = np.random.default_rng(0)
    half = {k: rng.uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32) for k in ("source", "target")}

    def one_step(strategy, batch):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = checkpoints.build_model("fvae", cfg)
            optimizer = step.make_optimizer(cfg, model.trainable_variables)
        train_step = step.make_train_step(strategy, model, optimizer)
        data = tf.data.Dataset.from_tensors(batch)
        terms = train_step(next(iter(strategy.experimental_distribute_dataset(data))))
        return {k: float(v) for k, v in terms.items()}, [w.numpy() for w in model.weights]

    mirrored = step.make_strategy("mirrored", ["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    # Each replica gets one copy of `half`: batch-norm statistics and the
    # reparameterisation noise then match the single-device step on `half`.
    double = {k: np.concatenate([v, v]) for k, v in half.items()}
    single_terms, single_weights = one_step(tf.distribute.get_strategy(), half)
    mirrored_terms, mirrored_weights = one_step(mirrored, double)
    for name in single_terms:
        np.testing.assert_allclose(mirrored_terms[name], single_terms[name], rtol=1e-5)
    for a, b in zip(single_weights, mirrored_weights):
        np.testing.assert_allclose(a, b, atol=1e-4)

    # The whole loop.
    run = loop.train(config.get_config("tiny", num_steps=2, eval_every=2), sys.argv[2],
                     sys.argv[1], strategy=mirrored)
    assert run.step == 2, run
    print("ok", single_terms["loss"], mirrored_terms["loss"])
""")


def test_mirrored_strategy_matches_one_device(data_dir, tmp_path):
    result = subprocess.run([sys.executable, "-c", _STRATEGY_SCRIPT, str(data_dir),
                             str(tmp_path / "run")], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok")
