"""Per-image scores and their summaries, shared by every evaluation block.

Images are float32 in [-1, 1], [H, W, 3]; fields are normalized (x, y)
sampling coordinates [H, W, 2]. Sharpness is relative to the reference (the
true target): `metrics.sharpness_ratio`, 1 for as much gradient energy as the
truth, below 1 for blur.
"""

import collections
import math

import cv2
import numpy as np

from fvae_tf import metrics
from fvae_tf.eval.optical_flow import coords_to_flow
from fvae_tf.warp import coordinates

MOVING_PX = 1.0  # a pixel "moves" when its true displacement exceeds this many pixels
FACE_OUTLINE = list(range(27))  # dlib's jaw line (0-16) and brows (17-26)


def image_scores(output: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """PSNR (dB), SSIM, L1 and sharpness of one output against its truth."""
    return {"psnr": metrics.psnr(output, target), "ssim": metrics.ssim(output, target),
            "l1": metrics.l1(output, target),
            "sharpness": metrics.sharpness_ratio(output, target)}


def _masked_epe(coords: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """End-point error in pixels over `mask`; NaN when the mask is empty."""
    if not np.any(mask):
        return math.nan
    return metrics.endpoint_error(coords, truth, mask.astype(np.float32))


def face_region(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Pixels whose centre lies inside the hull of the jaw line and brows, [size, size] bool.

    There the face's own motion shows. Outside lie neck, hair and background,
    which a synthetic face's truth moves with its mesh, like a rubber sheet:
    on a flat background that motion is invisible to any photometric loss.

    Args:
      landmarks: [68, 2] (x, y), normalized coordinates of a size x size crop.
    """
    points = coordinates.to_pixels(np.asarray(landmarks)[FACE_OUTLINE], size)
    hull = cv2.convexHull(np.round(points * 16).astype(np.int32))  # 4 fractional bits
    region = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(region, hull, 1, lineType=cv2.LINE_8, shift=4)
    return region.astype(bool)


def flow_scores(coords: np.ndarray, truth: np.ndarray, visibility: np.ndarray,
                face: np.ndarray | None = None) -> dict[str, float]:
    """End-point error against the true field, over visible and over moving pixels.

    Args:
      coords, truth: [H, W, 2] target-to-source fields.
      visibility: [H, W], 1 where the target pixel is visible in the source.
      face: optional [H, W] bool, the target's `face_region`.

    Returns:
      "epe_visible" and "epe_moving" (visible and true displacement above
      `MOVING_PX`), pixels; with `face`, also "epe_moving_face" (moving and
      inside the face); NaN where no pixel qualifies.
    """
    visible = np.asarray(visibility) > 0.5
    moving = visible & (np.linalg.norm(coords_to_flow(truth), axis=-1) > MOVING_PX)
    values = {"epe_visible": _masked_epe(coords, truth, visible),
              "epe_moving": _masked_epe(coords, truth, moving)}
    if face is not None:
        values["epe_moving_face"] = _masked_epe(coords, truth, moving & face)
    return values


class Scores:
    """Per-method lists of per-image values; `summary` gives means and counts."""

    def __init__(self):
        self.values: dict[str, dict[str, list[float]]] = collections.defaultdict(
            lambda: collections.defaultdict(list))

    def add(self, method: str, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.values[method][name].append(float(value))

    def percentile(self, method: str, name: str, q: float) -> float:
        """The q-th percentile of `method`'s finite `name` values; NaN when there are none."""
        finite = [v for v in self.values[method].get(name, []) if math.isfinite(v)]
        return float(np.percentile(finite, q)) if finite else math.nan

    def summary(self) -> dict[str, dict[str, float]]:
        """method -> {metric: mean over the images where it is defined, "n": images}."""
        out = {}
        for method, columns in self.values.items():
            row = {}
            for name, values in columns.items():
                finite = [v for v in values if math.isfinite(v)]
                row[name] = float(np.mean(finite)) if finite else math.nan
            row["n"] = max(len(v) for v in columns.values())
            out[method] = row
        return out
