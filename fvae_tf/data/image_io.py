"""Reading photos as upright uint8 RGB, with one clear reason for every bad file.

`load_image` is the only way photos enter alignment: it applies the EXIF
orientation (so landmarks and transforms refer to the upright picture a viewer
shows), converts grayscale, palette, alpha, 16-bit and CMYK images to RGB, and
turns every decoding failure into an `ImageReadError` with a human reason.
Truncated files are errors, never silently grey-padded images: this relies on
Pillow's default `ImageFile.LOAD_TRUNCATED_IMAGES = False`.
"""

import os
import struct
import zlib

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Smaller images cannot hold a face dlib's detector finds (its window is 80 px).
MIN_IMAGE_SIDE = 32

# Transparent pixels are shown over white, as image viewers and browsers do.
_BACKGROUND = (255, 255, 255)

# Exceptions Pillow raises for damaged data, besides UnidentifiedImageError.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)


# File name endings of the photos that loaders and folder walks pick up.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")


class InputError(Exception):
    """A problem with one input photo that a batch reports and moves past.

    Attributes:
      reason: what is wrong, for a person (no file name in it).
      path: the file, or None when the image did not come from a file.
      kind: a short category that summaries group by, e.g. "no face".
    """

    def __init__(self, reason: str, path: str | os.PathLike | None = None, kind: str = "bad input"):
        super().__init__(f"{path}: {reason}" if path is not None else reason)
        self.reason = reason
        self.path = None if path is None else os.fspath(path)
        self.kind = kind


class ImageReadError(InputError):
    """The file is missing, not an image, damaged, of an unsupported kind, or too small."""


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Reads a photo as upright RGB.

    Args:
      path: any format Pillow reads (JPEG, PNG, TIFF, BMP, WebP, GIF: first frame).

    Returns:
      uint8 [H, W, 3] RGB, EXIF orientation applied. Grayscale is repeated over
      the channels, alpha is composited over white, 16-bit samples keep their
      high byte, CMYK goes through Pillow's conversion.

    Raises:
      ImageReadError: missing or unreadable file, not an image, truncated or
        corrupt data, an unsupported pixel mode, or a side below
        `MIN_IMAGE_SIDE`.
    """
    try:
        with Image.open(path) as img:
            img.load()  # decodes everything now, so truncation raises here
            img = ImageOps.exif_transpose(img)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        raise ImageReadError(f"cannot open file ({e.strerror})", path, "unreadable file") from None
    except UnidentifiedImageError:
        raise ImageReadError(
            "not a recognised image format (not an image, or its header is corrupt)",
            path, "not an image") from None
    except Image.DecompressionBombError as e:
        raise ImageReadError(str(e), path, "too large") from None
    except _DECODE_ERRORS as e:
        raise ImageReadError(f"truncated or corrupt image data ({e})", path,
                             "truncated or corrupt") from None
    try:
        rgb = _to_rgb(img)
    except ValueError as e:
        raise ImageReadError(f"unsupported pixel mode {img.mode} ({e})", path,
                             "unsupported image") from None
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_IMAGE_SIDE:
        raise ImageReadError(
            f"image is {width}x{height} px; alignment needs at least {MIN_IMAGE_SIDE} px per side",
            path, "too small")
    return rgb


def _to_rgb(img: Image.Image) -> np.ndarray:
    """Converts a decoded Pillow image to uint8 [H, W, 3] RGB.

    Raises:
      ValueError: for pixel modes with no meaningful RGB reading.
    """
    if img.mode in ("I", "I;16", "I;16B", "I;16L"):
        # Pillow's convert("RGB") clips 16-bit values at 255 instead of scaling;
        # keep the high byte, as Pillow does when it reads 16-bit colour PNGs.
        gray = np.clip(np.asarray(img, dtype=np.int64), 0, 65535) >> 8
        return np.repeat(gray.astype(np.uint8)[:, :, None], 3, axis=2)
    if img.mode in ("LA", "PA", "RGBA", "RGBa", "La") or (
            img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _BACKGROUND + (255,))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    if img.mode == "F":
        raise ValueError("32-bit float pixels are not supported; save the image as 8 or 16 bit")
    return np.asarray(img.convert("RGB"))
