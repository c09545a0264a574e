"""Shared test fixtures: the London set location and CI's no-skip rule."""

import os
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _london_dir() -> pathlib.Path:
    default = REPO_ROOT.parent / "shared" / "data" / "london_set"
    return pathlib.Path(os.environ.get("FVAE_LONDON_DIR", default))


@pytest.fixture(scope="session")
def london_dir() -> pathlib.Path:
    """The London set; skipped when absent, except under CI=true where it fails."""
    path = _london_dir()
    if not (path / "neutral").is_dir() or not (path / "smiling").is_dir():
        reason = f"London set not found at {path} (set FVAE_LONDON_DIR)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        print(reason)
        pytest.skip(reason)
    return path
