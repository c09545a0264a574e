"""Anti-aliased drawing primitives for the synthetic faces, in normalized coordinates.

Shapes are given in normalized image coordinates (see `geometry`)
and drawn with OpenCV at sub-pixel precision (`SHIFT` fixed-point bits) and
anti-aliasing, as float32 masks in [0, 1] that `paint` blends colours with.
"""

import cv2
import numpy as np

from fvae_tf.synthetic import geometry
from fvae_tf.warp import coordinates

SHIFT = 4  # fixed-point bits for OpenCV's sub-pixel drawing


class Canvas:
    """Makes masks of a size x size image: float32 [S, S] in [0, 1].

    Points are float [N, 2] normalized (x, y); lengths (widths, radii,
    `blur`, the Gaussian sigma applied afterwards) are normalized too, so a
    shape looks the same at every size.
    """

    def __init__(self, size: int):
        self.size = size

    def fixed(self, points) -> np.ndarray:
        """Normalized points -> OpenCV fixed-point pixel coordinates, int32."""
        return np.round(coordinates.to_pixels(np.asarray(points, np.float64), self.size)
                        * (1 << SHIFT)).astype(np.int32)

    def px(self, length: float) -> float:
        """A normalized length in pixels."""
        return length * self.size / 2

    def _finish(self, mask: np.ndarray, blur: float) -> np.ndarray:
        mask = mask.astype(np.float32) / 255.0
        if blur > 0:
            mask = cv2.GaussianBlur(mask, (0, 0), self.px(blur))
        return mask

    def polygon(self, points, blur: float = 0.0) -> np.ndarray:
        """A filled polygon."""
        mask = np.zeros((self.size, self.size), np.uint8)
        cv2.fillPoly(mask, [self.fixed(points)], 255, cv2.LINE_AA, SHIFT)
        return self._finish(mask, blur)

    def lines(self, polylines, width: float, blur: float = 0.0) -> np.ndarray:
        """Open polylines (a list of [N, 2] point arrays) of one width."""
        mask = np.zeros((self.size, self.size), np.uint8)
        cv2.polylines(mask, [self.fixed(p) for p in polylines], False, 255,
                      max(1, round(self.px(width))), cv2.LINE_AA, SHIFT)
        return self._finish(mask, blur)

    def ellipse(self, centre, axes, angle: float = 0.0, blur: float = 0.0) -> np.ndarray:
        """A filled ellipse with half-axes `axes`, turned by `angle` degrees."""
        mask = np.zeros((self.size, self.size), np.uint8)
        axes_fixed = tuple(int(round(self.px(a) * (1 << SHIFT))) for a in axes)
        cv2.ellipse(mask, tuple(int(c) for c in self.fixed(centre)), axes_fixed, angle, 0, 360,
                    255, -1, cv2.LINE_AA, SHIFT)
        return self._finish(mask, blur)

    def grid(self) -> np.ndarray:
        """Normalized pixel centres, float64 [S * S, 2]."""
        return geometry.pixel_grid(self.size)


def paint(image: np.ndarray, alpha: np.ndarray, colour) -> None:
    """image <- image * (1 - alpha) + alpha * colour, in place (colour RGB or an image)."""
    a = alpha[..., None]
    image *= 1.0 - a
    image += a * np.asarray(colour, np.float32)


def spline(points, closed: bool = False, samples: int = 6) -> np.ndarray:
    """A Catmull-Rom curve through `points` [N, 2]: float64 [M, 2]."""
    p = np.asarray(points, np.float64)
    padded = np.vstack([p[-1:], p, p[:2]]) if closed else np.vstack([p[:1], p, p[-1:]])
    t = np.linspace(0, 1, samples, endpoint=False)[:, None]
    out = []
    for i in range(len(p) if closed else len(p) - 1):
        p0, p1, p2, p3 = padded[i:i + 4]
        out.append(0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                          + (3 * p1 - p0 - 3 * p2 + p3) * t**3))
    if not closed:
        out.append(p[-1:])
    return np.vstack(out)


def noise(rng: np.random.Generator, grid: int, size: int, blur: float = 0.0) -> np.ndarray:
    """Gaussian noise on a grid x grid lattice, resized to size x size: float32."""
    field = rng.standard_normal((grid, grid)).astype(np.float32)
    if blur > 0:
        field = cv2.GaussianBlur(field, (0, 0), blur)
        field /= field.std() + 1e-6
    if grid == size:
        return field
    interpolation = cv2.INTER_CUBIC if size > grid else cv2.INTER_AREA
    return cv2.resize(field, (size, size), interpolation=interpolation)
