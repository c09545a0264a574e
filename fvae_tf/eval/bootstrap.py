"""Bootstrap intervals over people, for statistics of a small test split.

London's test split has 20 people. A pooled share of the mouth distance
closed moves by several hundredths when one person with a large smile is in
or out, so two rows 0.01 apart say nothing until their interval says how far
the people alone could move them. Resampling the people with replacement
(the percentile bootstrap, Efron & Tibshirani 1993, ch. 13) gives that
interval. Paired: every column is resampled with the same people, so the
interval of a difference between two methods on the same faces is much
narrower than either method's own.
"""

from collections.abc import Callable, Sequence

import numpy as np

RESAMPLES = 10_000
LEVEL = 0.95
SEED = 0  # fixed: the same results.json from the same scores


def percentile_interval(statistic: Callable[..., np.ndarray], columns: Sequence[np.ndarray],
                        resamples: int = RESAMPLES, level: float = LEVEL,
                        seed: int = SEED) -> tuple[float, float]:
    """The `level` percentile-bootstrap interval of `statistic` over paired people.

    Args:
      statistic: maps the columns, each resampled to [resamples, n], to
        [resamples] values (reduce over the last axis).
      columns: equal-length [n] arrays, one value per person.

    Returns:
      (low, high), the (1 - level) / 2 and (1 + level) / 2 quantiles.
    """
    columns = [np.asarray(c, np.float64) for c in columns]
    n = len(columns[0])
    if n < 1 or any(len(c) != n for c in columns):
        raise ValueError(f"need equal, non-empty columns, got lengths {[len(c) for c in columns]}")
    people = np.random.default_rng(seed).integers(0, n, (resamples, n))
    values = statistic(*(c[people] for c in columns))
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def pooled_share(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """1 - sum(after) / sum(before) over the last axis: the share of the distance closed."""
    return 1.0 - np.sum(after, axis=-1) / np.sum(before, axis=-1)


def pooled_share_gain(before: np.ndarray, after: np.ndarray, reference_after: np.ndarray
                      ) -> np.ndarray:
    """`pooled_share` of a method minus the reference's, on the same people."""
    return pooled_share(before, after) - pooled_share(before, reference_after)
