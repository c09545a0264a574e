"""Training (paper 5.4): the loop, checkpoints, early stopping and the NaN guard.

`train` fits an FVAE or the VAE baseline on a dataset directory's pairs with
Adam, gradient clipping by value and mini-batches, evaluating on the val
split every `config.eval_every` steps and stopping early after
`config.patience` evaluations without improvement. `train_mask` is stage two
(eq. 7-8): it fits M with a trained FVAE's E and D frozen. Running either
again on the same workdir resumes from the last checkpoint.

It writes a run directory (layout: `fvae_tf.train.checkpoints`): checkpoints of
the latest state (model, optimizer, step, best validation loss and its step,
evaluations without improvement, sampling-noise state) and of the best one,
TensorBoard summaries, held-out metrics of the best weights and, for the FVAE
and the VAE, the latent statistics Algorithm 1 needs (`latent_stats`).

Determinism: weights start from `config.seed`; epoch e reads the training
pairs in `input_pipeline.make_dataset`'s order for a seed derived from
(`config.seed`, e), so a resumed run skips to its place in the epoch instead
of checkpointing tf.data buffers; the reparameterisation noise's seed state is
checkpointed. A run killed and resumed ends with an uninterrupted run's weights.

Several replicas (`tf.distribute`): each replica's loss is divided by the
replica count and Keras sums the gradients. Keras clips each replica's
gradient before that sum, so with R replicas the clipped sum is bounded by
R * clip_value.
"""

import dataclasses
import enum
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

from fvae_tf import atomic_io, metrics
from fvae_tf.data import input_pipeline, records
from fvae_tf.train import latent_stats, summaries
from fvae_tf.warp import sampler
from fvae_tf.train.checkpoints import (MASK_SUBDIR, METRICS, CheckpointError, ModelKind,
                                 best_checkpoint, build_model, check_compatible, mask_config,
                                 read_run_config, restore, restore_weights, write_run_config)
from fvae_tf.model.config import FVAEConfig
from fvae_tf.model.fvae import FVAE, VAE, ConfidenceModel

log = logging.getLogger(__name__)

_GRID_EXAMPLES = 4


class StrategyKind(str, enum.Enum):
    """`tf.distribute` strategies."""

    DEFAULT = "default"  # one device
    MIRRORED = "mirrored"  # the GPUs of one machine
    MULTI_WORKER = "multi_worker"  # several machines, from TF_CONFIG


class TrainingError(Exception):
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


def make_strategy(kind: StrategyKind | str, devices: list[str] | None = None
                  ) -> tf.distribute.Strategy:
    """Returns the strategy `kind`.

    Args:
      kind: which strategy.
      devices: MIRRORED only: its devices (default: all GPUs, else the CPU).
    """
    kind = StrategyKind(kind)
    if kind is StrategyKind.MIRRORED:
        return tf.distribute.MirroredStrategy(devices)
    if kind is StrategyKind.MULTI_WORKER:
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def load_model(run_dir: str | os.PathLike) -> FVAE | VAE:
    """The FVAE or VAE of a run directory, with its best weights."""
    kind, config = read_run_config(run_dir)
    if kind is ModelKind.MASK:
        raise CheckpointError(f"{run_dir} is a mask run; load_confidence_model takes its FVAE run")
    model = build_model(kind, config)
    restore_weights(model, best_checkpoint(run_dir))
    return model


def load_confidence_model(run_dir: str | os.PathLike) -> ConfidenceModel:
    """The mask stage of the FVAE run `run_dir` (trained into `run_dir/mask`), best weights."""
    mask_dir = pathlib.Path(run_dir) / MASK_SUBDIR
    if not mask_dir.is_dir():
        raise CheckpointError(f"{run_dir} has no confidence mask ({mask_dir} is missing)")
    _, config = read_run_config(mask_dir)
    model = build_model(ModelKind.MASK, config, fvae=build_model(ModelKind.FVAE, config))
    restore_weights(model, best_checkpoint(mask_dir))
    return model


def train(
    config: FVAEConfig,
    workdir: str | os.PathLike,
    dataset_dir: str | os.PathLike,
    model_kind: ModelKind | str = ModelKind.FVAE,
    strategy: tf.distribute.Strategy | None = None,
    init_from: str | os.PathLike | None = None,
    log_every: int = 50,
) -> TrainResult:
    """Trains an FVAE or the VAE baseline, or resumes the run in `workdir`.

    Args:
      config: the run's settings.
      workdir: run directory (layout: `fvae_tf.train.checkpoints`); created if needed.
      dataset_dir: written by `data_prep.build_dataset` (train and val splits).
      model_kind: FVAE or VAE.
      strategy: a `tf.distribute.Strategy` (default: one device).
      init_from: a run directory of the same kind and architecture whose best
        weights start a new run (ignored when resuming).
      log_every: steps between console lines and train/* summaries.

    Returns:
      How the run ended, with held-out metrics of the best weights.

    Raises:
      CheckpointError: workdir or init_from holds a run that does not fit.
      DivergenceError: the loss became NaN or Inf (the last good checkpoint is kept).
      TrainingError: a dataset too small for the batch size.
      records.RecordsError: dataset_dir is not a finished dataset.
    """
    model_kind = ModelKind(model_kind)
    if model_kind is ModelKind.MASK:
        raise ValueError("the mask stage is train_mask")
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        keras.utils.set_random_seed(config.seed)
        model = build_model(model_kind, config)
    run = _Run(model_kind, config, pathlib.Path(workdir), pathlib.Path(dataset_dir), strategy,
               model, log_every)
    if not run.resume() and init_from is not None:
        check_compatible(pathlib.Path(init_from), model_kind, config, "--init_from")
        restore_weights(model, best_checkpoint(init_from))
        log.info("initialised from %s", best_checkpoint(init_from))
    return run.fit()


def train_mask(
    config: FVAEConfig,
    fvae_dir: str | os.PathLike,
    dataset_dir: str | os.PathLike,
    strategy: tf.distribute.Strategy | None = None,
    log_every: int = 50,
) -> TrainResult:
    """Stage two (eq. 7-8): trains M into `fvae_dir/mask` with the FVAE's E and D frozen.

    Args:
      config: only its `MASK_FIELDS` are used; the architecture is the FVAE's.
      fvae_dir: a finished FVAE run directory.
      dataset_dir, strategy, log_every: as in `train`.

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
               strategy, model, log_every)
    run.resume()
    return run.fit()


def make_optimizer(config: FVAEConfig, variables: list) -> keras.optimizers.Optimizer:
    """Adam with gradient clipping by value (paper 5.4), its slots built for `variables`.

    The slots must exist before a checkpoint restore can fill them.
    """
    optimizer = keras.optimizers.Adam(config.learning_rate, beta_1=config.adam_beta1,
                                      clipvalue=config.clip_value)
    optimizer.build(variables)
    return optimizer


def make_train_step(strategy: tf.distribute.Strategy, model: keras.Model,
                    optimizer: keras.optimizers.Optimizer):
    """A tf.function: distributed batch -> loss terms averaged over the replicas.

    It updates `model`'s trainable variables (for the mask stage, M's only).
    """
    variables = model.trainable_variables

    def replica_step(batch):
        with tf.GradientTape() as tape:
            terms = _forward(model, batch, training=True)[0]
            scaled = terms["loss"] / strategy.num_replicas_in_sync
        optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return terms

    @tf.function
    def train_step(batch):
        terms = strategy.run(replica_step, args=(batch,))
        return {name: strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
                for name, value in terms.items()}

    return train_step


def _epoch_seed(seed: int, epoch: int) -> int:
    """A data-order seed for each epoch, reproducible from (seed, epoch)."""
    return int(np.random.SeedSequence((seed, epoch)).generate_state(1)[0])


def _model_inputs(batch: dict) -> dict:
    return {"source": batch["source"], "target": batch["target"]}


def _forward(model: keras.Model, batch: dict, training: bool) -> tuple[dict, dict]:
    """Returns (loss terms, pictures).

    Pictures: "output" [B, H, W, 3]; FVAE "coords" [B, H, W, 2]; mask stage
    "label" and "confidence" [B, H, W, 1].
    """
    if isinstance(model, ConfidenceModel):
        loss, confidence, label, warped = model.compute_loss_and_outputs(batch, training)
        return {"loss": loss}, {"output": warped, "label": label, "confidence": confidence}
    terms, out = model.compute_losses(batch, training)
    views = {"output": out.warped}
    if out.coords is not None:
        views["coords"] = out.coords
    return terms, views


def _batch_metrics(batch: dict, views: dict) -> dict[str, float]:
    """Held-out metrics of one batch; "no_motion" is the identity warp, i.e. the source itself."""
    source, target = batch["source"].numpy(), batch["target"].numpy()
    output = views["output"].numpy()
    values = {"l1": metrics.l1(output, target), "psnr": metrics.psnr(output, target),
              "l1_no_motion": metrics.l1(source, target),
              "psnr_no_motion": metrics.psnr(source, target)}
    if "coords" in views and "gt_coords" in batch:
        truth, visible = batch["gt_coords"].numpy(), batch["gt_visibility"].numpy()
        identity = np.broadcast_to(sampler.identity_grid(*truth.shape[1:3]).numpy(), truth.shape)
        values["epe_px"] = metrics.endpoint_error(views["coords"].numpy(), truth, visible)
        values["epe_px_no_motion"] = metrics.endpoint_error(identity, truth, visible)
    if "confidence" in views:
        values["mask_mae"] = float(np.mean(np.abs(views["confidence"] - views["label"])))
    return values


def _is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this worker writes the run directory (always, outside multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    cluster = resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster)


class _Run:
    """One run directory: model, optimizer, checkpoints, summaries and the loop."""

    def __init__(self, kind: ModelKind, config: FVAEConfig, workdir: pathlib.Path,
                 dataset_dir: pathlib.Path, strategy: tf.distribute.Strategy,
                 model: keras.Model, log_every: int):
        self.kind, self.config, self.workdir = kind, config, workdir
        self.dataset_dir, self.strategy, self.model = dataset_dir, strategy, model
        self.log_every = log_every
        self.chief = _is_chief(strategy)
        for name in ("num_steps", "eval_every", "patience", "batch_size"):
            if getattr(config, name) < 1:
                raise TrainingError(f"--{name} must be at least 1, got {getattr(config, name)}")
        manifest = records.read_manifest(dataset_dir)
        num_pairs = manifest.splits["train"].num_pairs
        self.steps_per_epoch = num_pairs // config.batch_size
        if self.steps_per_epoch == 0:
            raise TrainingError(f"the train split of {dataset_dir} has {num_pairs} pairs, fewer "
                                f"than one batch ({config.batch_size}); lower --batch_size")
        with strategy.scope():
            self.optimizer = make_optimizer(config, model.trainable_variables)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.best_val = tf.Variable(math.inf, dtype=tf.float32, trainable=False)
        self.best_step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.bad_evals = tf.Variable(0, dtype=tf.int64, trainable=False)
        tracked = dict(model=model, optimizer=self.optimizer, step=self.step,
                       best_val=self.best_val, best_step=self.best_step,
                       bad_evals=self.bad_evals)
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
        self.train_step = make_train_step(strategy, model, self.optimizer)
        self.eval_step = tf.function(lambda batch: _forward(model, batch, training=False))
        self.val_data = input_pipeline.make_dataset(
            dataset_dir, "val", config.batch_size, shuffle=False, flip=False, repeat=False)

    def resume(self) -> bool:
        """Restores the workdir's latest checkpoint, if any; records the run config."""
        path = tf.train.latest_checkpoint(str(self.workdir / "checkpoints"))
        if path is not None:
            check_compatible(self.workdir, self.kind, self.config, "--workdir")
            restore(self.checkpoint, path)
            log.info("resuming from %s (step %d)", path, int(self.step))
        if self.chief:
            write_run_config(self.workdir, self.kind, self.config)
        return path is not None

    def fit(self) -> TrainResult:
        """Trains until num_steps or early stopping, then evaluates the best weights."""
        with self.writer.as_default():
            if int(self.step) == 0:
                summaries.write_config(self.kind.value, self.config)
            self._loop()
            result = self._finish()
        self.writer.flush()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
        return result

    def _done(self) -> bool:
        return (int(self.step) >= self.config.num_steps
                or int(self.bad_evals) >= self.config.patience)

    def _batches(self) -> Iterator:
        """Training batches from the current step on, distributed over the replicas."""
        epoch, offset = divmod(int(self.step), self.steps_per_epoch)
        while True:
            data = input_pipeline.make_dataset(
                self.dataset_dir, "train", self.config.batch_size,
                seed=_epoch_seed(self.config.seed, epoch), repeat=False)
            # take() drops the short last batch, so every epoch has steps_per_epoch steps.
            data = data.take(self.steps_per_epoch).skip(offset).map(_model_inputs)
            yield from self.strategy.experimental_distribute_dataset(data)
            epoch, offset = epoch + 1, 0

    def _loop(self) -> None:
        config = self.config
        if self._done():
            log.info("nothing to train: the run in %s ended at step %d", self.workdir,
                     int(self.step))
            return
        batches = self._batches()
        sums: dict[str, float] = {}
        count, seconds = 0, 0.0  # since the last console line; evaluation time excluded
        while not self._done():
            start = time.perf_counter()
            terms = {name: float(value) for name, value in self.train_step(next(batches)).items()}
            seconds += time.perf_counter() - start
            step = int(self.step) + 1
            if not all(math.isfinite(v) for v in terms.values()):
                self._diverged(step, terms)
            self.step.assign(step)
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value
            count += 1
            if step % self.log_every == 0 or step == config.num_steps:
                means = {name: total / count for name, total in sums.items()}
                log.info("%s", summaries.progress_line(step, config.num_steps, means,
                                                       count / seconds))
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
            "--learning_rate or --clip_value")

    def _evaluate(self) -> dict[str, float]:
        """Validation loss terms and held-out metrics, averaged over the val split's pairs."""
        sums: dict[str, float] = {}
        total = 0
        for batch in self.val_data:
            terms, views = self.eval_step(_model_inputs(batch))
            size = int(batch["source"].shape[0])
            values = {name: float(value) for name, value in terms.items()}
            values.update(_batch_metrics(batch, views))
            for name, value in values.items():
                sums[name] = sums.get(name, 0.0) + value * size
            total += size
        return {name: value / total for name, value in sums.items()}

    def _write_grid(self, step: int) -> None:
        batch = next(iter(self.val_data.unbatch().batch(_GRID_EXAMPLES)))
        _, views = self.eval_step(_model_inputs(batch))
        views = {name: value.numpy() for name, value in views.items()}
        grid = summaries.pair_grid(batch["source"].numpy(), batch["target"].numpy(), **views)
        summaries.write_grid("val/examples", grid, step)

    def _evaluate_and_save(self, step: int) -> None:
        values = self._evaluate()
        summaries.write_scalars("val", values, step)
        self._write_grid(step)
        loss = values["loss"]
        if not math.isfinite(loss):
            self._diverged(step, {"val_loss": loss})
        improved = loss < float(self.best_val)
        if improved:
            self.best_val.assign(loss)
            self.best_step.assign(step)
            self.bad_evals.assign(0)
            self.best.save(checkpoint_number=step)
        else:
            self.bad_evals.assign_add(1)
        self.latest.save(checkpoint_number=step)
        log.info("eval at step %d: val loss %.4g (best %.4g at step %d)%s", step, loss,
                 float(self.best_val), int(self.best_step),
                 "" if improved else f", {int(self.bad_evals)}/{self.config.patience} "
                 "evaluations without improvement")
        if int(self.bad_evals) >= self.config.patience:
            log.info("early stopping at step %d", step)

    def _finish(self) -> TrainResult:
        """Evaluates the best weights; writes metrics and, for FVAE/VAE, latent statistics."""
        best_path = self.best.latest_checkpoint
        restore_weights(self.model, best_path)
        best_step, step = int(self.best_step), int(self.step)
        values = {f"eval/{name}": value for name, value in self._evaluate().items()}
        result = TrainResult(self.workdir, step, best_step, float(self.best_val),
                             int(self.bad_evals) >= self.config.patience, values)
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
