"""Fitted editing directions saved beside a run's checkpoint (not in the paper).

Fitting a direction to the training people's landmarks (`direction_fit`)
takes about three minutes on one CPU thread. `experiments.fit_direction`
fits it once and saves it here; `experiments.edit --direction=fitted` and the
browser editor read it, so every edit of a run uses the same direction.

A direction belongs to the weights it was fitted on. Each is saved with a
fingerprint of the run's latent statistics, which training rewrites whenever
the best weights change (`latent_stats`); a direction whose fingerprint no
longer matches (the run trained on, or was trained again) is refused with
the command that fits it anew.

File: `fitted_directions.npz` in the run directory. For the pair
"neutral->smile": "neutral->smile" float32 [latent], the direction;
"neutral->smile:weights" the fingerprint; "neutral->smile:step" the step of
the weights, for messages.
"""

import hashlib
import io
import os
import pathlib
import zipfile

import numpy as np

from fvae_tf import atomic_io, errors
from fvae_tf.train.latent_stats import LatentStats

FILENAME = "fitted_directions.npz"


class FittedDirectionError(errors.ActionableError):
    """No usable fitted direction; the message gives the command that fits one."""


def _pair(source: str, target: str) -> str:
    return f"{source}->{target}"


def _fingerprint(stats: LatentStats) -> str:
    """Identifies the weights behind `stats`: a hash of the latent means."""
    return hashlib.sha256(np.ascontiguousarray(stats.means, np.float32).tobytes()).hexdigest()


def _read(path: pathlib.Path) -> dict[str, np.ndarray]:
    """The file's arrays by key; {} when there is no file.

    Raises:
      FittedDirectionError: the file is not a readable .npz.
    """
    if not path.is_file():
        return {}
    try:
        with np.load(path) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise FittedDirectionError(
            f"{path} cannot be read ({e}); remove it and fit the directions again with "
            f"python -m experiments.fit_direction --checkpoint_dir={path.parent} "
            "--to=<expression>") from None


def save(run_dir: str | os.PathLike, source: str, target: str, direction: np.ndarray,
         stats: LatentStats) -> pathlib.Path:
    """Adds (or replaces) the `source`->`target` direction, atomically; returns the file.

    Args:
      run_dir: the FVAE run the direction was fitted for.
      direction: [latent].
      stats: the run's latent statistics (they identify its current weights).
    """
    path = pathlib.Path(run_dir) / FILENAME
    entries = _read(path)
    pair = _pair(source, target)
    entries[pair] = np.asarray(direction, np.float32)
    entries[f"{pair}:weights"] = np.asarray(_fingerprint(stats))
    entries[f"{pair}:step"] = np.asarray(stats.step, np.int64)
    buffer = io.BytesIO()
    np.savez(buffer, **entries)
    atomic_io.write_bytes(path, buffer.getvalue())
    return path


def _fit_command(run_dir: str | os.PathLike, source: str, target: str) -> str:
    """The command that fits the `source`->`target` direction of `run_dir` on its own data."""
    return (f"python -m experiments.fit_direction --checkpoint_dir={run_dir} --from={source} "
            f"--to={target}")


def load(run_dir: str | os.PathLike, source: str, target: str,
         stats: LatentStats) -> np.ndarray:
    """The saved `source`->`target` direction of the run's current weights, [latent].

    Raises:
      FittedDirectionError: none saved, or saved for other weights.
    """
    path = pathlib.Path(run_dir) / FILENAME
    entries, pair = _read(path), _pair(source, target)
    if pair not in entries:
        raise FittedDirectionError(f"{path.parent} has no fitted {pair} direction; fit it "
                                   f"with {_fit_command(run_dir, source, target)}")
    if str(entries[f"{pair}:weights"]) != _fingerprint(stats):
        raise FittedDirectionError(
            f"{path}: the {pair} direction was fitted on the weights of step "
            f"{int(entries[f'{pair}:step'])}, and the run's best weights are now those of "
            f"step {stats.step}; fit it again with {_fit_command(run_dir, source, target)}")
    return entries[pair]


def current(run_dir: str | os.PathLike, stats: LatentStats) -> dict[tuple[str, str], np.ndarray]:
    """Every saved direction fitted on the run's current weights: (source, target) -> [latent]."""
    entries, fingerprint = _read(pathlib.Path(run_dir) / FILENAME), _fingerprint(stats)
    return {tuple(key.split("->")): value for key, value in entries.items()
            if "->" in key and ":" not in key
            and str(entries[f"{key}:weights"]) == fingerprint}
