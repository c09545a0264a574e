"""Training (paper 5.4): the loop, checkpoints, early stopping and the NaN guard.

`train` fits an FVAE or the VAE baseline on a dataset directory's pairs with
Adam, gradient clipping by value and mini-batches (`step`), evaluating on the
val split every `config.eval_every` steps (`evaluation`) and stopping early
after `config.patience` evaluations without improvement (`run_state`).
`train_mask` is stage two (eq. 7-8): it fits M with a trained FVAE's E and D
frozen. Running either again on the same workdir resumes from the last
checkpoint.

It writes a run directory (layout: `fvae_tf.train.checkpoints`): checkpoints of
the latest state (model, optimizer, `RunState`, sampling-noise state) and of
the best one, TensorBoard summaries, held-out metrics of the best weights and,
for the FVAE and the VAE, the latent statistics Algorithm 1 needs
(`latent_stats`). With `config.weight_averaging` every evaluation, and so the
best checkpoint, uses the moving average of the weights (`weight_average`);
the latest checkpoint keeps the last step's own weights and the average.

Determinism: weights start from `config.seed`; epoch e reads the training
pairs in `input_pipeline.make_dataset`'s order for a seed derived from
(`config.seed`, e), so a resumed run skips to its place in the epoch instead
of checkpointing tf.data buffers; the reparameterisation noise's seed state is
checkpointed. A run killed and resumed ends with an uninterrupted run's weights.
"""

import contextlib
import dataclasses
import logging
import math
import os
import pathlib
import shutil
import time
from collections.abc import Iterator

import keras
import numpy as np
import tensorflow as tf

from fvae_tf import atomic_io, errors
from fvae_tf.data import input_pipeline, records
from fvae_tf.model.config import FVAEConfig
from fvae_tf.train import evaluation, latent_stats, summaries
from fvae_tf.train.checkpoints import (MASK_SUBDIR, METRICS, ModelKind, best_checkpoint,
                                       build_model, check_compatible, mask_config, restore,
                                       restore_weights, save_flags, write_run_config)
from fvae_tf.train.run_state import RunState
from fvae_tf.train.step import is_chief, make_optimizer, make_train_step
from fvae_tf.train.weight_average import WeightAverage

log = logging.getLogger(__name__)


class TrainingError(errors.ActionableError):
    """A run that cannot start or go on; the message says what to do."""


class DivergenceError(TrainingError):
    """The loss became NaN or Inf."""


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """How a run ended."""

    workdir: pathlib.Path
    step: int  # last step trained
    best_step: int  # step of the best checkpoint
    best_val_loss: float
    early_stopped: bool
    metrics: dict[str, float]  # held-out metrics of the best weights (metrics.json)

    def report(self) -> str:
        """A few lines for a person: where the run stopped and its held-out metrics."""
        why = "early stopping" if self.early_stopped else "num_steps reached"
        lines = [f"{self.workdir}: stopped at step {self.step} ({why}); best val loss "
                 f"{self.best_val_loss:.6g} at step {self.best_step}"]
        lines += [f"  {name} {value:.6g}" for name, value in sorted(self.metrics.items())]
        return "\n".join(lines)


def train(
    config: FVAEConfig,
    workdir: str | os.PathLike,
    dataset_dir: str | os.PathLike,
    model_kind: ModelKind | str = ModelKind.FVAE,
    strategy: tf.distribute.Strategy | None = None,
    init_from: str | os.PathLike | None = None,
    log_every: int = 50,
    evaluate: evaluation.Evaluate = evaluation.evaluate,
    cli_flags: dict | None = None,
) -> TrainResult:
    """Trains an FVAE or the VAE baseline, or resumes the run in `workdir`.

    Args:
      config: the run's settings.
      workdir: run directory (layout: `fvae_tf.train.checkpoints`); created if needed.
      dataset_dir: written by `fvae_tf.data.builder` (train and val splits).
      model_kind: FVAE or VAE.
      strategy: a `tf.distribute.Strategy` (default: one device).
      init_from: a run directory of the same kind and architecture whose best
        weights start a new run (ignored when resuming).
      log_every: steps between console lines and train/* summaries.
      evaluate: held-out metrics of the model on the val split (with "loss",
        the early-stopping criterion), run every `config.eval_every` steps and
        on the best weights at the end.
      cli_flags: a binary's command line, recorded in `workdir`/flags.json
        (`checkpoints.save_flags`) once the settings, the dataset, `init_from`
        and a run to resume are checked: a refused start writes nothing.

    Returns:
      How the run ended, with held-out metrics of the best weights.

    Raises:
      CheckpointError: workdir or init_from holds a run that does not fit.
      DivergenceError: the loss became NaN or Inf (the last good checkpoint is kept).
      TrainingError: a setting out of range, or a dataset too small for the batch size.
      records.RecordsError: dataset_dir is not a finished dataset.
    """
    model_kind = ModelKind(model_kind)
    if model_kind is ModelKind.MASK:
        raise ValueError("the mask stage is train_mask")
    workdir = pathlib.Path(workdir)
    start_from = None
    if init_from is not None and tf.train.latest_checkpoint(str(workdir / "checkpoints")) is None:
        check_compatible(pathlib.Path(init_from), model_kind, config, "init_from")
        start_from = best_checkpoint(init_from)
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        keras.utils.set_random_seed(config.seed)
        model = build_model(model_kind, config)
    run = _Run(model_kind, config, workdir, pathlib.Path(dataset_dir), strategy, model,
               log_every, evaluate)
    run.resume()
    if start_from is not None:
        restore_weights(model, start_from)
        log.info("initialised from %s", start_from)
    if cli_flags is not None:
        save_flags(workdir, config, cli_flags)
    return run.fit()


def train_mask(
    config: FVAEConfig,
    fvae_dir: str | os.PathLike,
    dataset_dir: str | os.PathLike,
    strategy: tf.distribute.Strategy | None = None,
    log_every: int = 50,
    evaluate: evaluation.Evaluate = evaluation.evaluate,
    cli_flags: dict | None = None,
) -> TrainResult:
    """Stage two (eq. 7-8): trains M into `fvae_dir/mask` with the FVAE's E and D frozen.

    Args:
      config: only its `MASK_FIELDS` are used; the architecture is the FVAE's.
      fvae_dir: a finished FVAE run directory.
      dataset_dir, strategy, log_every, evaluate: as in `train`.
      cli_flags: as in `train`, recorded in `fvae_dir`/mask/flags.json.

    Raises:
      CheckpointError: fvae_dir holds no FVAE checkpoint, or the mask run does not fit.
      DivergenceError, TrainingError, records.RecordsError: as in `train`.
    """
    fvae_dir = pathlib.Path(fvae_dir)
    config = mask_config(fvae_dir, config)
    fvae_path = best_checkpoint(fvae_dir)
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        keras.utils.set_random_seed(config.seed)
        fvae = build_model(ModelKind.FVAE, config)
        restore_weights(fvae, fvae_path)
        model = build_model(ModelKind.MASK, config, fvae=fvae)
    log.info("mask stage on the frozen FVAE %s", fvae_path)
    run = _Run(ModelKind.MASK, config, fvae_dir / MASK_SUBDIR, pathlib.Path(dataset_dir),
               strategy, model, log_every, evaluate)
    run.resume()
    if cli_flags is not None:
        save_flags(fvae_dir / MASK_SUBDIR, config, cli_flags)
    return run.fit()


def check_settings(config: FVAEConfig, dataset_dir: pathlib.Path) -> int:
    """Checks that a run can train with `config` on `dataset_dir`; returns its steps per epoch.

    Raises:
      TrainingError: a count below 1, or fewer training pairs than one batch.
      records.RecordsError: dataset_dir is not a finished dataset.
    """
    for name in ("num_steps", "eval_every", "patience", "batch_size"):
        if getattr(config, name) < 1:
            raise TrainingError(f"{{{name}}} must be at least 1, got {getattr(config, name)}",
                                [name])
    num_pairs = records.read_manifest(dataset_dir).splits["train"].num_pairs
    if num_pairs < config.batch_size:
        raise TrainingError(f"the train split of {dataset_dir} has {num_pairs} pairs, fewer "
                            f"than one batch ({config.batch_size}); lower {{batch_size}}",
                            ["batch_size"])
    return num_pairs // config.batch_size


def epoch_seed(seed: int, epoch: int) -> int:
    """A data-order seed for each epoch, reproducible from (seed, epoch)."""
    return int(np.random.SeedSequence((seed, epoch)).generate_state(1)[0])


def train_batches(strategy: tf.distribute.Strategy, dataset_dir: pathlib.Path,
                  config: FVAEConfig, steps_per_epoch: int, start_step: int) -> Iterator:
    """Training batches of model inputs from `start_step` on, distributed over the replicas.

    Epoch e is `input_pipeline.make_dataset`'s order for `epoch_seed(config.seed, e)`
    cut to `steps_per_epoch` full batches, so step s always sees the same batch.
    """
    epoch, offset = divmod(start_step, steps_per_epoch)
    table = input_pipeline.load_images(dataset_dir, "train", records.read_manifest(dataset_dir))
    while True:
        data = input_pipeline.make_dataset(dataset_dir, "train", config.batch_size,
                                           seed=epoch_seed(config.seed, epoch), repeat=False,
                                           jitter=config.geometric_jitter, table=table)
        # take() drops the short last batch, so every epoch has steps_per_epoch steps.
        data = data.take(steps_per_epoch).skip(offset).map(evaluation.model_inputs)
        yield from strategy.experimental_distribute_dataset(data)
        epoch, offset = epoch + 1, 0


class _Run:
    """One run directory: model, optimizer, checkpoints, summaries and the loop."""

    def __init__(self, kind: ModelKind, config: FVAEConfig, workdir: pathlib.Path,
                 dataset_dir: pathlib.Path, strategy: tf.distribute.Strategy,
                 model: keras.Model, log_every: int, evaluate: evaluation.Evaluate):
        self.kind, self.config, self.workdir = kind, config, workdir
        self.dataset_dir, self.strategy, self.model = dataset_dir, strategy, model
        self.log_every, self.evaluate = log_every, evaluate
        self.chief = is_chief(strategy)
        self.steps_per_epoch = check_settings(config, dataset_dir)
        with strategy.scope():
            self.optimizer = make_optimizer(config, model.trainable_variables)
            self.average = (WeightAverage(model.trainable_variables, config.weight_averaging)
                            if config.weight_averaging > 0 else None)
        self.state = RunState()
        tracked = dict(model=model, optimizer=self.optimizer, **self.state.trackables())
        if self.average is not None:
            tracked["weight_average"] = self.average
        if hasattr(model, "noise_seed"):
            tracked["noise"] = model.noise_seed.state
        self.checkpoint = tf.train.Checkpoint(**tracked)
        # Other workers of a multi-worker run save into scratch directories (TF's rule).
        task = None if self.chief else strategy.cluster_resolver.task_id
        save_root = workdir if self.chief else workdir / f".worker-{task}"
        save_root.mkdir(parents=True, exist_ok=True)
        self.scratch = None if self.chief else save_root
        self.latest = tf.train.CheckpointManager(self.checkpoint, save_root / "checkpoints", 2)
        self.best = tf.train.CheckpointManager(self.checkpoint, save_root / "best", 1)
        self.writer = (tf.summary.create_file_writer(str(workdir / "summaries")) if self.chief
                       else tf.summary.create_noop_writer())
        self.train_step = make_train_step(strategy, model, self.optimizer, self.average)
        self.eval_step = evaluation.make_eval_step(model)
        self.val_data = evaluation.val_batches(dataset_dir, config.batch_size)

    def resume(self) -> bool:
        """Restores the workdir's latest checkpoint, if any; records the run config."""
        path = tf.train.latest_checkpoint(str(self.workdir / "checkpoints"))
        if path is not None:
            check_compatible(self.workdir, self.kind, self.config, "workdir")
            restore(self.checkpoint, path)
            log.info("resuming from %s (step %d)", path, int(self.state.step))
        if self.chief:
            write_run_config(self.workdir, self.kind, self.config)
        return path is not None

    def fit(self) -> TrainResult:
        """Trains until num_steps or early stopping, then evaluates the best weights."""
        with self.writer.as_default():
            if int(self.state.step) == 0:
                summaries.write_config(self.kind.value, self.config)
            self._loop()
            result = self._finish()
        self.writer.flush()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
        return result

    def _done(self) -> bool:
        return self.state.done(self.config.num_steps, self.config.patience)

    def _loop(self) -> None:
        config, state = self.config, self.state
        if self._done():
            log.info("nothing to train: the run in %s ended at step %d", self.workdir,
                     int(state.step))
            return
        batches = train_batches(self.strategy, self.dataset_dir, config, self.steps_per_epoch,
                                int(state.step))
        sums: dict[str, float] = {}
        count, seconds = 0, 0.0  # since the last console line; evaluation time excluded
        while not self._done():
            start = time.perf_counter()
            terms = {name: float(value) for name, value in self.train_step(next(batches)).items()}
            seconds += time.perf_counter() - start
            step = int(state.step) + 1
            if not all(math.isfinite(v) for v in terms.values()):
                self._diverged(step, terms)
            state.step.assign(step)
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value
            count += 1
            if step % self.log_every == 0 or step == config.num_steps:
                means = {name: total / count for name, total in sums.items()}
                log.info("%s: %s", self.workdir, summaries.progress_line(
                    step, config.num_steps, means, count / seconds))
                summaries.write_scalars("train", means, step)
                sums, count, seconds = {}, 0, 0.0
            if step % config.eval_every == 0 or step == config.num_steps:
                self._evaluate_and_save(step)

    def _diverged(self, step: int, terms: dict[str, float]) -> None:
        last = self.latest.latest_checkpoint
        kept = (f"the last good checkpoint (step {last.rsplit('-', 1)[1]}) is kept in "
                f"{self.workdir}" if last else f"no checkpoint was saved in {self.workdir} yet")
        raise DivergenceError(
            f"loss became {'NaN' if any(map(math.isnan, terms.values())) else 'Inf'} at step "
            f"{step} ({', '.join(f'{k} {v:.4g}' for k, v in terms.items())}); {kept}; lower "
            "{learning_rate} or {clip_value}", ["learning_rate", "clip_value"])

    def _evaluate_and_save(self, step: int) -> None:
        """Evaluates (with `config.weight_averaging`, the averaged weights, which the best
        checkpoint then keeps) and saves; `latest` keeps the training weights to resume."""
        state = self.state
        averaged = self.average is not None
        with self.average.swapped_in() if averaged else contextlib.nullcontext():
            values = self.evaluate(self.eval_step, self.val_data)
            summaries.write_scalars("val", values, step)
            summaries.write_grid("val/examples",
                                 evaluation.example_grid(self.eval_step, self.val_data), step)
            loss = values["loss"]
            if not math.isfinite(loss):
                self._diverged(step, {"val_loss": loss})
            improved = state.record_evaluation(step, loss)
            if improved:
                self.best.save(checkpoint_number=step)
        self.latest.save(checkpoint_number=step)
        log.info("%s: eval at step %d: val loss %.4g (best %.4g at step %d)%s", self.workdir,
                 step, loss, float(state.best_val), int(state.best_step),
                 "" if improved else f", {int(state.bad_evals)}/{self.config.patience} "
                 "evaluations without improvement")
        if state.stopped_early(self.config.patience):
            log.info("early stopping at step %d", step)

    def _finish(self) -> TrainResult:
        """Evaluates the best weights; writes metrics and, for FVAE/VAE, latent statistics."""
        state = self.state
        restore_weights(self.model, self.best.latest_checkpoint)
        best_step, step = int(state.best_step), int(state.step)
        values = {f"eval/{name}": value
                  for name, value in self.evaluate(self.eval_step, self.val_data).items()}
        result = TrainResult(self.workdir, step, best_step, float(state.best_val),
                             state.stopped_early(self.config.patience), values)
        if not self.chief:
            return result
        if self.kind is not ModelKind.MASK:
            batches = latent_stats.unique_images(self.dataset_dir, "train", self.config.batch_size)
            stats = latent_stats.compute(self.model.encode, batches, best_step)
            latent_stats.save(self.workdir / latent_stats.FILENAME, stats)
        summaries.write_scalars("eval", {k.split("/", 1)[1]: v for k, v in values.items()}, step)
        report = {"model": self.kind.value, "step": step, "best_step": best_step,
                  "best_val_loss": result.best_val_loss,
                  "early_stopped": result.early_stopped, **values}
        atomic_io.write_json(self.workdir / METRICS, report)
        atomic_io.write_json(self.workdir / f"result_{step}.json", report)
        log.info("held-out (val) metrics of step %d: %s", best_step,
                 ", ".join(f"{k} {v:.4g}" for k, v in values.items()))
        return result
