r"""Fits an editing direction to a dataset's training landmarks and saves it with the run.

    python -m experiments.fit_direction --checkpoint_dir runs/london --to smile

Not in the paper (README: values the paper lost). Algorithm 1's direction
from --from to --to is refined on the dataset's training pairs so that the
edit, under the residual, mirrored rule, carries their landmarks onto the
real expression's (`fvae_tf.edit.direction_fit`; 300 Adam steps with a
progress line). It runs on one CPU thread, so the same machine fits the same
direction every time: with more threads the order of the float sums varies
and so does the fit (by 1e-4 in 60 steps; the London mouth share by up to a
point, 30.5 % to 31.6 %). The result goes into the run's
`fitted_directions.npz` beside any other pair's
(`fvae_tf.edit.fitted_directions`); `experiments.edit --direction=fitted`,
the browser editor (`experiments.serve`) and the evaluation use it. The dataset is the
one the run was trained on (its flags.json) unless --dataset_dir names
another of the model's crop size; only its training pairs are read. Training
the run further makes the saved direction stale: the editors then refuse it
and print this command.
"""

import sys

import numpy as np
import tensorflow as tf
from absl import app, flags

from experiments import expression_flags
from fvae_tf import errors
from fvae_tf.edit import direction_fit, editing, fitted_directions
from fvae_tf.train import checkpoints

CHECKPOINT_DIR = flags.DEFINE_string("checkpoint_dir", None, "An FVAE run directory "
                                     "(experiments.train --workdir).", required=True)
DATASET_DIR = flags.DEFINE_string("dataset_dir", None, "A dataset (data_prep.build_dataset) "
                                  "of the model's crop size with training pairs from --from to "
                                  "--to. Default: the one the run was trained on.")


def main(argv: list[str]) -> None:
    del argv
    tf.config.threading.set_intra_op_parallelism_threads(1)  # reproducible sums (docstring)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    checkpoint_dir = CHECKPOINT_DIR.value
    source, target = expression_flags.source_and_target()
    try:
        model = editing.load_editing_model(checkpoint_dir)
        initial = model.stats.direction(source, target)
        fitted_directions.current(checkpoint_dir, model.stats)  # a broken file stops before the fit
        dataset_dir = DATASET_DIR.value or checkpoints.training_dataset(checkpoint_dir)
        if dataset_dir is None:
            sys.exit(f"error: {checkpoint_dir}/{checkpoints.FLAGS_FILE} names no training "
                     "dataset; pass --dataset_dir")
        pairs = direction_fit.training_pairs(dataset_dir, source, target,
                                             model.fvae.config.image_size)
    except errors.ActionableError as e:
        sys.exit(f"error: {e.describe('--{}')}")
    except ValueError as e:
        sys.exit(f"error: {checkpoint_dir}: {e}; choose --from/--to among those")
    direction = direction_fit.fit_on_pairs(model.fvae, *pairs, initial, source, target)
    path = fitted_directions.save(checkpoint_dir, source, target, direction, model.stats)
    print(f"wrote {path}: the {source}->{target} direction fitted on {len(pairs[0])} training "
          f"pairs of {dataset_dir} (length {np.linalg.norm(initial):.2f} -> "
          f"{np.linalg.norm(direction):.2f}); edit with experiments.edit --direction=fitted")


if __name__ == "__main__":
    app.run(main)
