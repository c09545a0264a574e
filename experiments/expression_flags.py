"""The --from/--to flags of experiments.edit and experiments.fit_direction (not a binary)."""

import sys

from absl import flags

from fvae_tf.expressions import expression_id

FROM = flags.DEFINE_string("from", "neutral", "Source expression (the photos', for editing).")
TO = flags.DEFINE_string("to", None, "Target expression, e.g. smile.", required=True)


def source_and_target() -> tuple[str, str]:
    """(--from, --to), both known expressions; otherwise exits with one line saying so."""
    try:
        expression_id(FROM.value)
        expression_id(TO.value)
    except ValueError as e:
        sys.exit(f"error: --from/--to: {e}")
    return FROM.value, TO.value
