"""Atomic file writes: a reader never sees a half-written file.

Everything the project writes (images, JSON, arrays) goes to a temp file in
the destination folder and is renamed over the destination once complete; a
failure or a kill leaves the old file (or nothing) and no temp file behind.
"""

import contextlib
import json
import os
import pathlib
import tempfile
from collections.abc import Callable
from typing import Any, BinaryIO

import cv2
import numpy as np


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Calls `write(file)` on a temp file beside `path`, then renames it to `path`."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def write_json(path: str | os.PathLike, value: Any) -> None:
    """Indented JSON (numpy scalars and arrays become plain numbers and lists)."""
    def plain(obj):
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, pathlib.PurePath):
            return str(obj)
        raise TypeError(f"cannot write {type(obj).__name__} as JSON")

    write_bytes(path, (json.dumps(value, indent=2, default=plain) + "\n").encode())


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 RGB [H, W, 3] or grey [H, W] / [H, W, 1] image."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"PNG images must be uint8, got {image.dtype}")
    if image.ndim == 3 and image.shape[-1] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"could not encode an image of shape {image.shape} as PNG")
    return buffer.tobytes()


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    write_bytes(path, encode_png(image))
