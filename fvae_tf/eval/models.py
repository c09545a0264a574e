"""The trained models an evaluation compares, loaded and checked against the dataset.

An FVAE run (with its confidence mask when `RUN/mask` exists, and the editing
directions fitted for its current weights when `experiments.fit_direction`
saved any) and any number of VAE runs, each with the latent statistics
Algorithm 1 needs. Every run must have been trained on crops of the
dataset's size; a mismatch, a run of the wrong kind or an unfinished run is
one `EvalModelError` naming the directory and what to do.
"""

import dataclasses
import os
import pathlib

import numpy as np

from fvae_tf.edit import fitted_directions
from fvae_tf.model.fvae import FVAE, VAE, ConfidenceModel
from fvae_tf.train import checkpoints, latent_stats
from fvae_tf.train.latent_stats import LatentStats

# Row names of the two VAE decoders (`FVAEConfig.vae_decoder`).
VAE_NAMES = {"z_only": "VAE (z only, paper)", "source_unet": "VAE (source U-Net)"}


class EvalModelError(Exception):
    """A run directory that cannot be evaluated; the message says what to do."""


@dataclasses.dataclass(frozen=True, eq=False)
class Models:
    """What the evaluation runs."""

    fvae: FVAE
    fvae_stats: LatentStats | None  # None: the run did not finish (no editing blocks)
    mask: ConfidenceModel | None  # None: no trained RUN/mask
    vaes: dict[str, VAE]  # row name -> model
    vae_stats: dict[str, LatentStats]  # row name -> its latent statistics
    # (source, target) -> [latent]: the directions `experiments.fit_direction` saved with
    # the FVAE run for its current weights (`fitted_directions.current`)
    fvae_fitted: dict[tuple[str, str], np.ndarray]


def _stats(run_dir: pathlib.Path, latent_dim: int) -> LatentStats | None:
    path = run_dir / latent_stats.FILENAME
    if not path.is_file():
        return None
    stats = latent_stats.load(path)
    if stats.means.shape[-1] != latent_dim:
        raise EvalModelError(f"{path} holds {stats.means.shape[-1]}-dim latents but the model's "
                             f"are {latent_dim}-dim; it belongs to another run")
    return stats


def _load(run_dir: pathlib.Path, kind: checkpoints.ModelKind, flag: str, image_size: int):
    """Loads a run's best model after checking its kind and crop size."""
    try:
        stored_kind, config = checkpoints.read_run_config(run_dir)
    except checkpoints.CheckpointError as e:
        raise EvalModelError(f"{flag}: {e}") from None
    if stored_kind is not kind:
        raise EvalModelError(f"{flag}: {run_dir} holds a {stored_kind.value} run, not a "
                             f"{kind.value} run (experiments.train --model={kind.value})")
    if config.image_size != image_size:
        raise EvalModelError(f"{flag}: {run_dir} was trained on {config.image_size} px crops but "
                             f"the dataset's are {image_size} px; evaluate it on a dataset "
                             f"built with --size={config.image_size}")
    try:
        return checkpoints.load_model(run_dir), config
    except checkpoints.CheckpointError as e:
        raise EvalModelError(f"{flag}: {e}") from None


def load_models(fvae_dir: str | os.PathLike, vae_dirs: list[str | os.PathLike],
                image_size: int) -> Models:
    """Loads and checks the runs to compare.

    Args:
      fvae_dir: an FVAE run directory (experiments.train --model=fvae).
      vae_dirs: VAE run directories (experiments.train --model=vae), any
        decoder; two runs with the same decoder are told apart by their folder.
      image_size: the dataset's crop side.

    Raises:
      EvalModelError: a run of the wrong kind or size, unfinished, or not a run.
    """
    fvae_dir = pathlib.Path(fvae_dir)
    fvae, config = _load(fvae_dir, checkpoints.ModelKind.FVAE, "--fvae_dir", image_size)
    mask = None
    if (fvae_dir / checkpoints.MASK_SUBDIR).is_dir():
        try:
            mask = checkpoints.load_confidence_model(fvae_dir)
        except checkpoints.CheckpointError as e:
            raise EvalModelError(f"--fvae_dir: {e} (train it with experiments.train_mask, or "
                                 f"remove {fvae_dir / checkpoints.MASK_SUBDIR})") from None
    vaes, vae_stats = {}, {}
    for vae_dir in map(pathlib.Path, vae_dirs):
        vae, vae_config = _load(vae_dir, checkpoints.ModelKind.VAE, "--vae_dir", image_size)
        name = VAE_NAMES.get(vae_config.vae_decoder, f"VAE ({vae_config.vae_decoder})")
        if name in vaes:
            name = f"{name} [{vae_dir.name}]"
        vaes[name] = vae
        stats = _stats(vae_dir, vae_config.latent_dim)
        if stats is not None:
            vae_stats[name] = stats
    fvae_stats = _stats(fvae_dir, config.latent_dim)
    try:
        fitted = {} if fvae_stats is None else fitted_directions.current(fvae_dir, fvae_stats)
    except fitted_directions.FittedDirectionError as e:
        raise EvalModelError(f"--fvae_dir: {e}") from None
    return Models(fvae, fvae_stats, mask, vaes, vae_stats, fitted)
