"""`FVAEConfig` fields as flags, shared by the binaries that build a config (not a binary).

A binary calls `define` at import with the fields it exposes, then
`flags.adopt_module_key_flags(config_flags)` so that its `--helpshort` and
its key flags (the command line `checkpoints.save_flags` records) include
them; `config_from_flags` applies the ones set to a preset.
"""

import dataclasses

from absl import flags

from fvae_tf.model import config

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
