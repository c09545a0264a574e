"""Pictures: flow colouring, image grids, heat maps and atomic PNG/GIF writing.

numpy, OpenCV and PIL only; tf tensors are accepted through `np.asarray`.
Images handed in are float in [-1, 1] where stated (the library convention),
otherwise uint8 RGB [H, W, 3] (grey [H, W] or [H, W, 1] where stated). Every
function returns uint8 RGB.

Flow colouring follows the Middlebury colour code (Baker et al. 2011, "A
Database and Evaluation Methodology for Optical Flow"; Scharstein's
colorcode.cpp): hue is the direction, saturation the magnitude, white is zero.
What is coloured is the sampling displacement of the contract's "target to
source" coordinates: where each output pixel reads from, relative to itself,
in pixels. Content that moves left therefore reads from the right and shows
as red (angle 0).
"""

import os
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image

from fvae_tf import atomic_io
from fvae_tf.warp import coordinates

# Displacements below this many pixels are float32 rounding of the identity
# grid, not motion; without the cut, normalising by the field's maximum would
# paint an identity field in saturated noise.
_NOISE_PX = 1e-3
_BACKGROUND = 40  # grid padding grey: distinct from white (zero flow) and black.
_TEXT_COLOR = (235, 235, 235)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.4


def _make_wheel() -> np.ndarray:
    """The 55 Middlebury colours [55, 3], float RGB in [0, 255], starting at red."""
    ry, yg, gc, cb, bm, mr = 15, 6, 4, 11, 13, 6  # hues per transition, as in colorcode.cpp

    def ramp(n: int) -> np.ndarray:
        return np.floor(255 * np.arange(n) / n)

    def const(n: int, value: float) -> np.ndarray:
        return np.full(n, value)

    return np.concatenate([
        np.stack([const(ry, 255), ramp(ry), const(ry, 0)], axis=1),
        np.stack([255 - ramp(yg), const(yg, 255), const(yg, 0)], axis=1),
        np.stack([const(gc, 0), const(gc, 255), ramp(gc)], axis=1),
        np.stack([const(cb, 0), 255 - ramp(cb), const(cb, 255)], axis=1),
        np.stack([ramp(bm), const(bm, 0), const(bm, 255)], axis=1),
        np.stack([const(mr, 255), const(mr, 0), 255 - ramp(mr)], axis=1),
    ])


_WHEEL = _make_wheel()


def _uv_to_color(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Normalised displacement (|(u, v)| <= 1 in range; y down) -> uint8 [..., 3]."""
    ncols = len(_WHEEL)
    rad = np.hypot(u, v)[..., None]
    angle = np.arctan2(-v, -u) / np.pi  # in [-1, 1]; -1 is rightward (red)
    fk = (angle + 1) / 2 * (ncols - 1)
    k0 = np.floor(fk).astype(np.int64)
    f = (fk - k0)[..., None]
    col = ((1 - f) * _WHEEL[k0] + f * _WHEEL[(k0 + 1) % ncols]) / 255.0
    col = np.where(rad <= 1, 1 - rad * (1 - col), 0.75 * col)  # out of range: darker
    return np.floor(255 * col).astype(np.uint8)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float image(s) in [-1, 1] -> uint8 in [0, 255] (rounded, clipped), any shape."""
    img = np.asarray(img)
    if not np.issubdtype(img.dtype, np.floating):
        raise TypeError(f"to_uint8 expects a float image in [-1, 1], got dtype {img.dtype}")
    return np.clip(np.round((img + 1.0) * 127.5), 0, 255).astype(np.uint8)


def flow_to_color(
    coords: np.ndarray,
    align_corners: bool = False,
    max_displacement: float | None = None,
) -> np.ndarray:
    """Colours a field of sampling coordinates with the Middlebury wheel.

    The displacement is the coordinates minus the identity grid (pixel centre
    i of W at (2i + 1) / W - 1, or -1 + 2i / (W - 1) with align_corners=True),
    in pixels. Its angle picks the hue (rightward red, downward yellow,
    leftward cyan-blue, upward violet); its magnitude over the normaliser the
    saturation. Zero displacement is white; beyond `max_displacement` colours
    are darkened to 75%.

    Args:
      coords: [H, W, 2] or [B, H, W, 2] normalized (x, y), target to source.
      align_corners: the coordinates' convention.
      max_displacement: normaliser in pixels; None uses the largest magnitude
        in `coords` (shared over a batch, so colours compare across images).

    Returns:
      uint8 [H, W, 3] or [B, H, W, 3].

    Raises:
      ValueError: on a bad shape or a non-positive `max_displacement`.
    """
    pixels = coordinates.field_to_pixels(coords, align_corners)
    h, w = pixels.shape[-3:-1]
    ys, xs = np.mgrid[0:h, 0:w]
    disp = pixels - np.stack([xs, ys], axis=-1)
    disp = np.where(np.abs(disp) < _NOISE_PX, 0.0, disp)
    if max_displacement is None:
        max_displacement = float(np.max(np.hypot(disp[..., 0], disp[..., 1])))
        max_displacement = max_displacement or 1.0  # all zero: everything white
    elif max_displacement <= 0:
        raise ValueError(f"max_displacement must be positive, got {max_displacement}")
    disp = disp / max_displacement
    return _uv_to_color(disp[..., 0], disp[..., 1])


def color_wheel(size: int) -> np.ndarray:
    """The legend of `flow_to_color`: uint8 [size, size, 3].

    The pixel at offset (dx, dy) from the centre shows the colour of a
    displacement (dx, dy) (y down) whose magnitude is the disc radius at the
    disc's rim; outside the disc is white.
    """
    centres = (np.arange(size) + 0.5) / size * 2 - 1
    u, v = np.meshgrid(centres, centres)
    img = _uv_to_color(u, v)
    img[np.hypot(u, v) > 1] = 255
    return img


def _to_rgb(img: np.ndarray) -> np.ndarray:
    """uint8 [H, W], [H, W, 1] (grey) or [H, W, 3] -> uint8 [H, W, 3]."""
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image (see to_uint8), got dtype {img.dtype}")
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[-1] not in (1, 3):
        raise ValueError(f"expected an image [H,W], [H,W,1] or [H,W,3], got shape {img.shape}")
    return np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img


def _resize(img: np.ndarray, height: int, scale: int) -> np.ndarray:
    """Nearest-neighbour resize to `height` (aspect kept), then `scale`x."""
    h, w = img.shape[:2]
    if h != height:
        img = cv2.resize(img, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_NEAREST)
    return np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)


def _label_height() -> int:
    (_, text_h), baseline = cv2.getTextSize("Ag", _FONT, _FONT_SCALE, 1)
    return text_h + baseline + 4


def image_grid(
    rows: Sequence[Sequence[np.ndarray]],
    labels: Sequence[str] | None = None,
    pad: int = 2,
    scale: int = 1,
) -> np.ndarray:
    """Lays images out in a grid, e.g. source | target | warped | flow | error.

    Every image is resized (nearest) to the first image's height, keeping its
    aspect ratio, then enlarged `scale` times. Each column is as wide as its
    widest image; short rows leave empty cells. Cells are separated and
    surrounded by `pad` pixels of dark grey.

    Args:
      rows: rows of uint8 images [H, W, 3], or grey [H, W] / [H, W, 1].
      labels: optional column titles, one per column, drawn in a strip above.
      pad: padding in pixels.
      scale: integer nearest-neighbour enlargement of the images.

    Returns:
      uint8 [label_h + R * (h * scale) + (R + 1) * pad, sum(col_w) + (C + 1) * pad, 3].

    Raises:
      ValueError: on an empty grid or a label count that is not the column count.
    """
    if len(rows) == 0 or len(rows[0]) == 0:
        raise ValueError("image_grid needs at least one image in the first row")
    height = _to_rgb(rows[0][0]).shape[0]
    cells = [[_resize(_to_rgb(img), height, scale) for img in row] for row in rows]
    ncols = max(len(row) for row in cells)
    if labels is not None and len(labels) != ncols:
        raise ValueError(f"got {len(labels)} labels for {ncols} columns")
    col_w = [max(row[c].shape[1] for row in cells if c < len(row)) for c in range(ncols)]
    col_x = pad + np.concatenate([[0], np.cumsum(np.add(col_w, pad))])[:ncols]
    cell_h = height * scale
    top = _label_height() if labels is not None else 0
    grid = np.full(
        (top + len(cells) * (cell_h + pad) + pad, int(sum(col_w)) + (ncols + 1) * pad, 3),
        _BACKGROUND, np.uint8,
    )
    for r, row in enumerate(cells):
        y = top + pad + r * (cell_h + pad)
        for c, img in enumerate(row):
            grid[y:y + cell_h, col_x[c]:col_x[c] + img.shape[1]] = img
    for c, text in enumerate(labels or ()):
        font_scale = _FONT_SCALE
        text_w = cv2.getTextSize(text, _FONT, font_scale, 1)[0][0]
        if text_w > col_w[c]:  # shrink to fit the column
            font_scale *= col_w[c] / text_w
            text_w = cv2.getTextSize(text, _FONT, font_scale, 1)[0][0]
        x = int(col_x[c] + (col_w[c] - text_w) // 2)
        cv2.putText(grid, text, (x, top - 4), _FONT, font_scale, _TEXT_COLOR, 1, cv2.LINE_AA)
    return grid


def _colormap(values01: np.ndarray, colormap: int) -> np.ndarray:
    """Float [..., H, W] in [0, 1] -> uint8 RGB [..., H, W, 3] via an OpenCV colormap."""
    levels = np.round(np.clip(values01, 0, 1) * 255).astype(np.uint8)
    flat = levels.reshape(-1, levels.shape[-1])  # applyColorMap wants 2-D
    return cv2.applyColorMap(flat, colormap)[..., ::-1].reshape(levels.shape + (3,))


def overlay_mask(img_uint8: np.ndarray, mask01: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blends a confidence mask, as a jet heat map (0 blue, 1 red), over an image.

    Args:
      img_uint8: uint8 [..., H, W, 3].
      mask01: float [..., H, W] or [..., H, W, 1] in [0, 1] (clipped).
      alpha: weight of the heat map; 0 returns the image, 1 the heat map.

    Returns:
      uint8 [..., H, W, 3].
    """
    img = np.asarray(img_uint8).astype(np.float64)
    mask = np.asarray(mask01, dtype=np.float64)
    if mask.ndim == img.ndim:
        mask = mask[..., 0]
    if mask.shape != img.shape[:-1]:
        raise ValueError(f"mask shape {mask.shape} does not match image shape {img.shape}")
    heat = _colormap(mask, cv2.COLORMAP_JET)
    return np.round((1 - alpha) * img + alpha * heat).astype(np.uint8)


def error_map(a: np.ndarray, b: np.ndarray, max_error: float = 1.0) -> np.ndarray:
    """Per-pixel L1 error (mean over channels) as an inferno colour map.

    Args:
      a, b: float images [..., H, W, C] in [-1, 1].
      max_error: error shown brightest (yellow); black is zero. The default 1.0
        is half the [-1, 1] range; a fixed scale keeps maps comparable across
        training steps.

    Returns:
      uint8 [..., H, W, 3].
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return _colormap(np.mean(np.abs(a - b), axis=-1) / max_error, cv2.COLORMAP_INFERNO)


def _to_pil(img: np.ndarray) -> Image.Image:
    img = _to_rgb(img)
    return Image.fromarray(np.ascontiguousarray(img))


def save_png(path: str | os.PathLike, img: np.ndarray) -> None:
    """Writes a uint8 image ([H, W, 3], or grey [H, W] / [H, W, 1]) as an RGB PNG, atomically."""
    atomic_io.write_png(path, np.ascontiguousarray(_to_rgb(img)))


def save_gif(
    path: str | os.PathLike, frames: Sequence[np.ndarray], fps: float = 8, loop: int = 0,
    bounce: bool = False,
) -> None:
    """Writes uint8 frames as an animated GIF, atomically.

    GIF stores delays in centiseconds, so the frame time is rounded. PIL merges
    consecutive identical frames into one longer frame.

    Args:
      frames: equally sized uint8 images [H, W, 3] (or grey), or [T, H, W, 3].
      fps: frames per second.
      loop: number of repeats; 0 loops forever.
      bounce: play the frames forward, then backward without repeating the
        first and last (0 1 2 3 2 1), so a loop goes back and forth.

    Raises:
      ValueError: on no frames, frames of different sizes, or fps <= 0.
    """
    images = [_to_pil(frame) for frame in frames]
    if bounce:
        images += images[-2:0:-1]
    if not images:
        raise ValueError("save_gif needs at least one frame")
    if len({im.size for im in images}) > 1:
        raise ValueError(f"GIF frames differ in size: {sorted({im.size for im in images})}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    atomic_io.atomic_write(path, lambda f: images[0].save(
        f, format="GIF", save_all=True, append_images=images[1:],
        duration=round(1000 / fps), loop=loop,
    ))
