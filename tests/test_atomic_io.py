"""Atomic writes: complete files or nothing, never a temp file left behind."""

import json
import os

import cv2
import numpy as np
import pytest

from fvae_tf import atomic_io


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")

    def half_then_fail(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_io.atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_json_and_png_round_trip(tmp_path):
    atomic_io.write_json(tmp_path / "a" / "v.json", {"x": np.float32(1.5), "y": np.arange(3)})
    assert json.loads((tmp_path / "a" / "v.json").read_text()) == {"x": 1.5, "y": [0, 1, 2]}
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    atomic_io.write_png(tmp_path / "i.png", image)
    read = cv2.cvtColor(cv2.imread(str(tmp_path / "i.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(read, image)
    with pytest.raises(TypeError, match="uint8"):
        atomic_io.encode_png(image.astype(np.float32))
    assert sorted(os.listdir(tmp_path)) == ["a", "i.png"]
