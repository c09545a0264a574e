"""Errors whose message says what to do, naming the settings to change.

A setting is written `{name}` in the message template, `name` being the
library's own term for it (an `FVAEConfig` field, a function's argument).
`str(error)` shows the bare names; a binary whose flags carry the same names
shows them as flags with `error.describe("--{}")`.
"""

from collections.abc import Sequence


class ActionableError(Exception):
    """An error for a person: what is wrong and which settings would fix it."""

    def __init__(self, template: str, settings: Sequence[str] = ()):
        """Args: template: the message, with `{name}` for each of `settings`."""
        self.template, self.settings = template, tuple(settings)
        super().__init__(self.describe())

    def describe(self, name_format: str = "{}") -> str:
        """The message with each setting written as `name_format.format(name)`."""
        text = self.template
        for setting in self.settings:
            text = text.replace("{" + setting + "}", name_format.format(setting))
        return text


def message(error: Exception, name_format: str = "{}") -> str:
    """What to tell a person about any error: `describe` for an ActionableError, else str()."""
    if isinstance(error, ActionableError):
        return error.describe(name_format)
    return str(error)
