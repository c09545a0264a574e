"""Trains an FVAE or the VAE baseline; running it again resumes.

    python -m experiments.train --workdir=runs/x --dataset_dir=data/x --model=fvae --preset=tiny

Every `FVAEConfig` field is a flag; unset ones take the preset's value.
The logic is in `fvae_tf.train.loop`; library errors name settings, shown here as flags.
"""

from absl import app, flags

from experiments import config_flags
from fvae_tf.model import config
from fvae_tf.train import loop, step

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
    config_flags.run_training(PRESET.value, lambda run_config, cli: loop.train(
        run_config, WORKDIR.value, DATASET_DIR.value, MODEL.value,
        step.make_strategy(STRATEGY.value), INIT_FROM.value, LOG_EVERY.value, cli_flags=cli))


if __name__ == "__main__":
    app.run(main)
