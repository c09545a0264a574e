"""`FVAEConfig` fields as flags, shared by the binaries that build a config (not a binary).

A binary calls `define` at import with the fields it exposes, then
`flags.adopt_module_key_flags(config_flags)` so that its `--helpshort` and
its key flags (the command line `checkpoints.save_flags` records) include
them; `config_from_flags` applies the ones set to a preset, and the training
binaries' `main` is `run_training`.
"""

import dataclasses
import logging
import sys
from collections.abc import Callable

from absl import flags

from fvae_tf import errors
from fvae_tf.data import records
from fvae_tf.model import config
from fvae_tf.train import checkpoints, loop

_DEFINE = {int: flags.DEFINE_integer, float: flags.DEFINE_float, str: flags.DEFINE_string,
           bool: flags.DEFINE_boolean}
_defined: list[str] = []


def define(names: set[str] | None = None, stage: str = "") -> None:
    """One flag per `FVAEConfig` field (those in `names`; all when None), unset by default."""
    for field in dataclasses.fields(config.FVAEConfig):
        if names is None or field.name in names:
            _DEFINE[field.type](field.name, None,
                                f"FVAEConfig.{field.name}{stage}; unset: the preset's")
            _defined.append(field.name)


def config_from_flags(preset: str) -> config.FVAEConfig:
    """Preset `preset` with every defined field flag that was set.

    Raises:
      ValueError: as `config.get_config` (an unknown preset, a bad value).
    """
    overrides = {name: flags.FLAGS[name].value for name in _defined
                 if flags.FLAGS[name].value is not None}
    return config.get_config(preset, **overrides)


def run_training(preset: str,
                 start: Callable[[config.FVAEConfig, dict], loop.TrainResult]) -> None:
    """A training binary's main: `start(config, cli_flags)`, then its report.

    The config is `preset` with the set flags; cli_flags are the binary's key
    flags, for `checkpoints.save_flags`. A bad setting, dataset or run
    directory exits with one line naming the flag, never a traceback.
    """
    logging.getLogger("absl").setLevel(logging.WARNING)  # TF's per-save chatter
    cli = {f.name: f.value for f in flags.FLAGS.get_key_flags_for_module(sys.argv[0])}
    try:
        run_config = config_from_flags(preset)
    except ValueError as e:
        sys.exit(f"error: {e}")
    try:
        result = start(run_config, cli)
    except (loop.TrainingError, checkpoints.CheckpointError, records.RecordsError) as e:
        sys.exit(f"error: {errors.message(e, '--{}')}")
    print(result.report())
