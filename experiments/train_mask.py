"""Stage two (eq. 7-8): trains the confidence mask M of a trained FVAE; running it again resumes.

    python -m experiments.train_mask --workdir=runs/x --dataset_dir=data/x --preset=tiny

`--workdir` is the FVAE's run directory; E and D are loaded from its best
checkpoint and frozen, and the mask run is written into `workdir/mask`. The
architecture is the FVAE's; the training settings are flags, unset ones
taking the preset's value. The logic is in `fvae_tf.train.loop`; library errors
name settings, shown here as flags.
"""

from absl import app, flags

from experiments import config_flags
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
    config_flags.run_training(PRESET.value, lambda preset_config, cli: loop.train_mask(
        preset_config, WORKDIR.value, DATASET_DIR.value, step.make_strategy(STRATEGY.value),
        LOG_EVERY.value, cli_flags=cli))


if __name__ == "__main__":
    app.run(main)
