"""Tests for the fitted directions saved with a run (fvae_tf.edit.fitted_directions)."""

import dataclasses

import numpy as np
import pytest

from fvae_tf.edit import fitted_directions
from fvae_tf.expressions import EXPRESSIONS
from fvae_tf.train.latent_stats import LatentStats


def _stats(seed: int, step: int) -> LatentStats:
    means = np.random.default_rng(seed).normal(0, 1, (len(EXPRESSIONS), 8)).astype(np.float32)
    return LatentStats(means, np.ones(len(EXPRESSIONS), np.int64), EXPRESSIONS, step)


def test_directions_are_kept_per_pair_and_replaced_atomically(tmp_path):
    stats = _stats(0, step=300)
    smile, surprise = np.arange(8, dtype=np.float32), -np.ones(8, np.float32)
    path = fitted_directions.save(tmp_path, "neutral", "smile", smile, stats)
    assert path == tmp_path / fitted_directions.FILENAME
    fitted_directions.save(tmp_path, "neutral", "surprise", surprise, stats)
    np.testing.assert_array_equal(fitted_directions.load(tmp_path, "neutral", "smile", stats),
                                  smile)
    fitted_directions.save(tmp_path, "neutral", "smile", 2 * smile, stats)
    current = fitted_directions.current(tmp_path, stats)
    assert sorted(current) == [("neutral", "smile"), ("neutral", "surprise")]
    np.testing.assert_array_equal(current["neutral", "smile"], 2 * smile)
    np.testing.assert_array_equal(current["neutral", "surprise"], surprise)
    assert current["neutral", "smile"].dtype == np.float32
    assert [p.name for p in tmp_path.iterdir()] == [fitted_directions.FILENAME]


def test_a_direction_of_other_weights_is_refused_with_the_command_that_fits_it(tmp_path):
    old = _stats(0, step=300)
    fitted_directions.save(tmp_path, "neutral", "smile", np.ones(8), old)
    # Same step, other weights (a run trained again): the means differ, so does the check.
    for new in (_stats(1, step=600), _stats(1, step=300)):
        with pytest.raises(fitted_directions.FittedDirectionError) as error:
            fitted_directions.load(tmp_path, "neutral", "smile", new)
        assert str(error.value) == (
            f"{tmp_path / fitted_directions.FILENAME}: the neutral->smile direction was fitted "
            f"on the weights of step 300, and the run's best weights are now those of step "
            f"{new.step}; fit it again with python -m experiments.fit_direction "
            f"--checkpoint_dir={tmp_path} --from=neutral --to=smile")
        assert fitted_directions.current(tmp_path, new) == {}
    # A copy of the same statistics is the same weights.
    same = dataclasses.replace(old, means=old.means.copy())
    np.testing.assert_array_equal(fitted_directions.load(tmp_path, "neutral", "smile", same), 1)


def test_a_missing_direction_names_the_command_that_fits_it(tmp_path):
    stats = _stats(0, step=3)
    assert fitted_directions.current(tmp_path, stats) == {}
    message = (f"{tmp_path} has no fitted neutral->scream direction; fit it with python -m "
               f"experiments.fit_direction --checkpoint_dir={tmp_path} --from=neutral "
               "--to=scream")
    with pytest.raises(fitted_directions.FittedDirectionError) as error:
        fitted_directions.load(tmp_path, "neutral", "scream", stats)
    assert str(error.value) == message
    fitted_directions.save(tmp_path, "neutral", "smile", np.ones(8), stats)
    with pytest.raises(fitted_directions.FittedDirectionError) as error:
        fitted_directions.load(tmp_path, "neutral", "scream", stats)
    assert str(error.value) == message


@pytest.mark.parametrize("content", [b"not an npz", b"PK\x03\x04 cut short"])
def test_a_broken_file_is_refused_with_what_to_do_and_left_alone(tmp_path, content):
    path = tmp_path / fitted_directions.FILENAME
    path.write_bytes(content)
    stats = _stats(0, step=3)
    calls = [lambda: fitted_directions.current(tmp_path, stats),
             lambda: fitted_directions.load(tmp_path, "neutral", "smile", stats),
             lambda: fitted_directions.save(tmp_path, "neutral", "smile", np.ones(8), stats)]
    for call in calls:
        with pytest.raises(fitted_directions.FittedDirectionError,
                           match=f"^{path} cannot be read .*; remove it and fit the directions "
                                 f"again with python -m experiments.fit_direction "
                                 f"--checkpoint_dir={tmp_path} --to=<expression>$"):
            call()
    assert path.read_bytes() == content
    assert [p.name for p in tmp_path.iterdir()] == [fitted_directions.FILENAME]
