"""Stage two (eq. 7-8): trains the confidence mask M of a trained FVAE; running it again resumes.

    python -m experiments.train_mask --workdir=runs/x --dataset_dir=data/x --preset=tiny

`--workdir` is the FVAE's run directory; E and D are loaded from its best
checkpoint and frozen, and the mask run is written into `workdir/mask`. The
architecture is the FVAE's; the training settings are flags, unset ones
taking the preset's value. The logic is in `fvae_tf.train.loop`; library errors
name settings, shown here as flags.
"""

import logging
import sys

from absl import app, flags

from experiments import config_flags
from fvae_tf import errors
from fvae_tf.data import records
from fvae_tf.model import config
from fvae_tf.train import checkpoints, loop, step

config_flags.define(set(checkpoints.MASK_FIELDS), " of the mask stage")
flags.adopt_module_key_flags(config_flags)

WORKDIR = flags.DEFINE_string("workdir", None, "The FVAE's run directory.", required=True)
DATASET_DIR = flags.DEFINE_string("dataset_dir", None, "Built by data_prep.build_dataset.",
                                  required=True)
PRESET = flags.DEFINE_enum("preset", "paper", config.preset_names(), "Named set of values.")
STRATEGY = flags.DEFINE_enum_class("strategy", step.StrategyKind.DEFAULT,
                                   step.StrategyKind, "tf.distribute strategy.")
LOG_EVERY = flags.DEFINE_integer("log_every", 50, "Steps between console lines.")


def main(argv: list[str]) -> None:
    del argv
    logging.getLogger("absl").setLevel(logging.WARNING)  # TF's per-save chatter
    cli = {f.name: f.value for f in flags.FLAGS.get_key_flags_for_module(sys.argv[0])}
    try:
        preset_config = config_flags.config_from_flags(PRESET.value)
    except ValueError as e:
        sys.exit(f"error: {e}")
    try:
        mask_config = checkpoints.mask_config(WORKDIR.value, preset_config)
        result = loop.train_mask(mask_config, WORKDIR.value, DATASET_DIR.value,
                                 step.make_strategy(STRATEGY.value), LOG_EVERY.value,
                                 cli_flags=cli)
    except (loop.TrainingError, checkpoints.CheckpointError, records.RecordsError) as e:
        sys.exit(f"error: {errors.message(e, '--{}')}")
    print(result.report())


if __name__ == "__main__":
    app.run(main)
