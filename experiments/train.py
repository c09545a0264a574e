"""Trains an FVAE or the VAE baseline; running it again resumes.

    python -m experiments.train --workdir=runs/x --dataset_dir=data/x --model=fvae --preset=tiny

Every `FVAEConfig` field is a flag; unset ones take the preset's value.
The logic is in `fvae_tf.train.loop`; library errors name settings, shown here as flags.
"""

import logging
import sys

from absl import app, flags

from experiments import config_flags
from fvae_tf import errors
from fvae_tf.data import records
from fvae_tf.model import config
from fvae_tf.train import checkpoints, loop, step

config_flags.define()
flags.adopt_module_key_flags(config_flags)

WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, summaries, metrics).",
                              required=True)
DATASET_DIR = flags.DEFINE_string("dataset_dir", None, "Built by data_prep.build_dataset.",
                                  required=True)
MODEL = flags.DEFINE_enum("model", "fvae", ["fvae", "vae"],
                          "The FVAE or the VAE baseline (the mask: experiments.train_mask).")
PRESET = flags.DEFINE_enum("preset", "paper", config.preset_names(), "Named set of values.")
STRATEGY = flags.DEFINE_enum_class("strategy", step.StrategyKind.DEFAULT,
                                   step.StrategyKind, "tf.distribute strategy.")
INIT_FROM = flags.DEFINE_string("init_from", None,
                                "Run directory whose best weights start a new run.")
LOG_EVERY = flags.DEFINE_integer("log_every", 50, "Steps between console lines.")


def main(argv: list[str]) -> None:
    del argv
    logging.getLogger("absl").setLevel(logging.WARNING)  # TF's per-save chatter
    cli = {f.name: f.value for f in flags.FLAGS.get_key_flags_for_module(sys.argv[0])}
    try:
        run_config = config_flags.config_from_flags(PRESET.value)
    except ValueError as e:
        sys.exit(f"error: {e}")
    try:
        result = loop.train(run_config, WORKDIR.value, DATASET_DIR.value, MODEL.value,
                            step.make_strategy(STRATEGY.value), INIT_FROM.value, LOG_EVERY.value,
                            cli_flags=cli)
    except (loop.TrainingError, checkpoints.CheckpointError, records.RecordsError) as e:
        sys.exit(f"error: {errors.message(e, '--{}')}")
    print(result.report())


if __name__ == "__main__":
    app.run(main)
