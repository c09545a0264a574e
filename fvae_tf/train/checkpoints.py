"""Run directories: what a training run saves, and loading it back.

A run directory (`fvae_tf.train.loop` writes it; the mask stage uses `RUN/mask`):
  config.json               model kind and `FVAEConfig` (`read_run_config`)
  flags.json                the binary's flags, resolved config and code version
  checkpoints/ckpt-<step>   latest training state (`tf.train.CheckpointManager`)
  best/ckpt-<step>          the state with the lowest validation loss
  summaries/                TensorBoard events
  latent_stats.npz          mean latent per expression (`fvae_tf.train.latent_stats`)
  fitted_directions.npz     editing directions fitted after training, if any
                            (`fvae_tf.edit.fitted_directions`)
  metrics.json, result_<step>.json   held-out metrics of the best weights

Checkpoints hold the model under the key "model", so `restore_weights` loads
any of them into a built model without its optimizer.
"""

import dataclasses
import enum
import json
import os
import pathlib
import subprocess

import keras
import tensorflow as tf

from fvae_tf import atomic_io, errors
from fvae_tf.model.config import FVAEConfig
from fvae_tf.model.fvae import FVAE, VAE, ConfidenceModel

RUN_CONFIG = "config.json"
FLAGS_FILE = "flags.json"
METRICS = "metrics.json"
MASK_SUBDIR = "mask"
# Fields that shape the weights: a checkpoint only fits a model that agrees on all of them.
ARCHITECTURE_FIELDS = ("image_size", "bottleneck_size", "base_channels", "latent_dim",
                       "kernel_size", "edge_kernel_size", "activation", "source_skips",
                       "flow_head", "flow_head_scale", "global_affine", "global_lattice",
                       "vae_decoder")
# What the mask stage takes from its own settings; the rest comes from the FVAE run.
MASK_FIELDS = ("mask_label_norm", "mask_label_quantile", "mask_label_distance", "mask_frame",
               "learning_rate", "lr_schedule", "weight_averaging", "adam_beta1", "batch_size",
               "clip_value", "num_steps", "eval_every", "patience", "seed")


class ModelKind(str, enum.Enum):
    """What a run trains."""

    FVAE = "fvae"
    VAE = "vae"  # the paper's baseline: same architecture, RGB output
    MASK = "mask"  # stage two: the confidence mask M


class CheckpointError(errors.ActionableError):
    """A checkpoint that is missing or does not fit the model."""


def save_flags(run_dir: str | os.PathLike, config: FVAEConfig, cli_flags: dict) -> None:
    """Writes `run_dir/flags.json`: resolved config, command-line flags, code version."""
    pathlib.Path(run_dir).mkdir(parents=True, exist_ok=True)
    atomic_io.write_json(pathlib.Path(run_dir) / FLAGS_FILE, {
        "config": dataclasses.asdict(config), "flags": cli_flags, "git_commit": _git_commit()})


def training_dataset(run_dir: str | os.PathLike) -> str | None:
    """The --dataset_dir the run was trained on, as flags.json records it; None if not."""
    try:
        value = json.loads((pathlib.Path(run_dir) / FLAGS_FILE).read_text())["flags"]
        return value.get("dataset_dir") or None
    except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None


def _git_commit() -> str | None:
    """HEAD of the repository holding this code, or None outside a repository with commits."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=pathlib.Path(__file__).parent,
                              capture_output=True, text=True, check=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def read_run_config(run_dir: str | os.PathLike) -> tuple[ModelKind, FVAEConfig]:
    """The model kind and config a run directory was trained with.

    Raises:
      CheckpointError: no readable config.json (not a run directory).
    """
    path = pathlib.Path(run_dir) / RUN_CONFIG
    try:
        raw = json.loads(path.read_text())
        return ModelKind(raw["model"]), FVAEConfig(**raw["config"])
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing: {run_dir} is not a training run "
                              "directory (train one with experiments.train)") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path} is not a run config this code reads ({e})") from None


def build_model(kind: ModelKind | str, config: FVAEConfig,
                fvae: FVAE | None = None) -> FVAE | VAE | ConfidenceModel:
    """A model with all its variables created (needed before restoring).

    Args:
      kind: what to build.
      config: its settings.
      fvae: for MASK, the trained FVAE whose E and D stay frozen.
    """
    kind = ModelKind(kind)
    if kind is ModelKind.MASK:
        model = ConfidenceModel(fvae)
    else:
        model = FVAE(config) if kind is ModelKind.FVAE else VAE(config)
    model.build_for_inference()
    return model


def inference_config(config: FVAEConfig) -> FVAEConfig:
    """`config` computing in float32: a run trained in mixed precision is loaded in float32.

    Variables are float32 under every precision (`networks`), so the same
    checkpoint loads; float32 inference gives the same numbers on a CPU and a
    GPU, where float16 convolutions would be slow on a CPU.
    """
    return dataclasses.replace(config, precision="float32")


def best_checkpoint(run_dir: str | os.PathLike) -> str:
    """Path of a run's best checkpoint.

    Raises:
      CheckpointError: the run has none yet.
    """
    path = tf.train.latest_checkpoint(str(pathlib.Path(run_dir) / "best"))
    if path is None:
        raise CheckpointError(f"no checkpoint in {pathlib.Path(run_dir) / 'best'}: train this "
                              "run first (experiments.train, or experiments.train_mask for a mask)")
    return path


def restore(checkpoint: tf.train.Checkpoint, path: str) -> None:
    """Restores every object of `checkpoint` (all created beforehand) from `path`.

    Raises:
      CheckpointError: the checkpoint does not fit (another architecture or model).
    """
    try:
        checkpoint.restore(path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise CheckpointError(f"{path} does not fit this model ({_first_line(e)}); was it "
                              "trained with other architecture settings?") from None


def restore_weights(model: keras.Model, path: str) -> None:
    """Loads a checkpoint's model weights (not its optimizer) into a built model.

    Raises:
      CheckpointError: the checkpoint does not fit the model.
    """
    restore(tf.train.Checkpoint(model=model), path)


def load_model(run_dir: str | os.PathLike) -> FVAE | VAE:
    """The FVAE or VAE of a run directory, with its best weights.

    Raises:
      CheckpointError: not an FVAE/VAE run directory, or no checkpoint that fits.
    """
    kind, config = read_run_config(run_dir)
    if kind is ModelKind.MASK:
        raise CheckpointError(f"{run_dir} is a mask run; load_confidence_model takes its FVAE run")
    model = build_model(kind, inference_config(config))
    restore_weights(model, best_checkpoint(run_dir))
    return model


def load_confidence_model(run_dir: str | os.PathLike) -> ConfidenceModel:
    """The mask stage of the FVAE run `run_dir` (trained into `run_dir/mask`), best weights.

    Raises:
      CheckpointError: no trained mask stage in `run_dir`.
    """
    mask_dir = pathlib.Path(run_dir) / MASK_SUBDIR
    if not mask_dir.is_dir():
        raise CheckpointError(f"{run_dir} has no confidence mask ({mask_dir} is missing)")
    _, config = read_run_config(mask_dir)
    config = inference_config(config)
    model = build_model(ModelKind.MASK, config, fvae=build_model(ModelKind.FVAE, config))
    restore_weights(model, best_checkpoint(mask_dir))
    return model


def write_run_config(run_dir: str | os.PathLike, kind: ModelKind, config: FVAEConfig) -> None:
    """Writes `run_dir/config.json`, which `read_run_config` reads."""
    atomic_io.write_json(pathlib.Path(run_dir) / RUN_CONFIG,
                         {"model": kind.value, "config": dataclasses.asdict(config)})


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def check_compatible(run_dir: pathlib.Path, kind: ModelKind, config: FVAEConfig,
                     what: str) -> None:
    """Raises CheckpointError unless `run_dir` trained a `kind` model of `config`'s architecture.

    A run resumed ("workdir") must also keep weight averaging on or off: its
    checkpoints hold the average's variables only when it is on.

    Args:
      what: the setting that named `run_dir` (e.g. "workdir", "init_from").
    """
    stored_kind, stored = read_run_config(run_dir)
    if stored_kind is not kind:
        raise CheckpointError(f"{{{what}}} {run_dir} holds a {stored_kind.value} run, not "
                              f"{kind.value}", [what])
    differences = [f"{f}={getattr(stored, f)!r} (this run: {getattr(config, f)!r})"
                   for f in ARCHITECTURE_FIELDS if getattr(stored, f) != getattr(config, f)]
    if differences:
        raise CheckpointError(f"{{{what}}} {run_dir} was trained with {', '.join(differences)}; "
                              f"use the same architecture settings or another {{{what}}}", [what])
    if what == "workdir" and (stored.weight_averaging > 0) != (config.weight_averaging > 0):
        raise CheckpointError(f"{{workdir}} {run_dir} was trained with {{weight_averaging}} "
                              f"{stored.weight_averaging} (this run: {config.weight_averaging}); "
                              "resume it with weight averaging "
                              f"{'on' if stored.weight_averaging else 'off'} or use another "
                              "{workdir}", ["workdir", "weight_averaging"])


def mask_config(fvae_dir: str | os.PathLike, config: FVAEConfig) -> FVAEConfig:
    """The mask stage's config: the FVAE run's, with `config`'s `MASK_FIELDS`.

    Raises:
      CheckpointError: fvae_dir is not an FVAE run directory.
    """
    kind, fvae_config = read_run_config(fvae_dir)
    if kind is not ModelKind.FVAE:
        raise CheckpointError(f"{fvae_dir} holds a {kind.value} run; the mask needs an FVAE run")
    return dataclasses.replace(fvae_config, **{f: getattr(config, f) for f in MASK_FIELDS})
