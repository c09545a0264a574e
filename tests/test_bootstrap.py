"""The percentile bootstrap over people, against scipy.stats.bootstrap and hand cases."""

import numpy as np
import pytest
from scipy import stats

from fvae_tf.eval import bootstrap


def _people(seed=0, n=20):
    rng = np.random.default_rng(seed)
    before = rng.uniform(1.0, 6.0, n)  # px, like London's mouth distances
    return before, before * rng.uniform(0.3, 1.1, n)


def test_pooled_share_interval_agrees_with_scipy():
    before, after = _people()
    ours = bootstrap.percentile_interval(bootstrap.pooled_share, (before, after))
    theirs = stats.bootstrap((before, after),
                             lambda b, a, axis: 1.0 - a.sum(axis) / b.sum(axis), paired=True,
                             vectorized=True, n_resamples=20_000, method="percentile",
                             rng=np.random.default_rng(1)).confidence_interval
    width = theirs.high - theirs.low
    assert ours[0] == pytest.approx(theirs.low, abs=0.05 * width)
    assert ours[1] == pytest.approx(theirs.high, abs=0.05 * width)
    assert ours[0] < bootstrap.pooled_share(before, after) < ours[1]


def test_gain_interval_is_paired():
    before, after = _people(2)
    # The same faces moved the same: every resample's gain is exactly 0.
    assert bootstrap.percentile_interval(bootstrap.pooled_share_gain,
                                         (before, after, after)) == (0.0, 0.0)
    # A method that closes every person's distance by a further 10 % of it gains 0.1 on
    # every resample; unpaired (each side its own people) it would spread out.
    better = after - 0.1 * before
    low, high = bootstrap.percentile_interval(bootstrap.pooled_share_gain,
                                              (before, better, after))
    assert low == pytest.approx(0.1) and high == pytest.approx(0.1)


def test_one_person_has_no_spread_and_columns_must_match():
    assert bootstrap.percentile_interval(bootstrap.pooled_share, ([4.0], [1.0])) == (0.75, 0.75)
    with pytest.raises(ValueError, match="equal, non-empty"):
        bootstrap.percentile_interval(bootstrap.pooled_share, ([4.0, 2.0], [1.0]))
    with pytest.raises(ValueError, match="equal, non-empty"):
        bootstrap.percentile_interval(bootstrap.pooled_share, ([], []))
