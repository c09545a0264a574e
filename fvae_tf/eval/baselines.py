"""Baselines the paper compares FVAE with (sections 6.1-6.2), beside the optical flows.

  * Average flow (editing and Table 1): the mean target-to-source
    displacement of every training pair with the same (source expression,
    target expression), applied to any source; a factor scales it (Algorithm
    1's factor, for the editing comparison).
  * Cross-fade: `(1 - alpha) x_1 + alpha x_2`.
  * Landmark mesh morphing: both faces are warped piecewise-affinely onto
    the interpolated landmarks (a Delaunay triangulation of the 68 landmarks
    plus 8 image-border points, scipy), then cross-dissolved.
  * Optical-flow interpolation: with the flow from face 1 to face 2, face 1
    is read a share alpha along its flow and face 2 the rest of the way back,
    then cross-dissolved.

Images are float32 in [-1, 1], [H, W, 3] or [B, H, W, 3]; fields are
normalized (x, y) sampling coordinates, align_corners=False; landmarks are
normalized crop coordinates [68, 2].
"""

import dataclasses

import numpy as np
import scipy.spatial
import tensorflow as tf

from fvae_tf.warp import coordinates, sampler


def warp(images: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """`S(images, coords)` with the project's sampler: [B, H, W, 3], [B, H, W, 2] -> numpy."""
    return sampler.bilinear_sample(tf.constant(images, tf.float32),
                                   tf.constant(coords, tf.float32)).numpy()


def identity_coords(height: int, width: int) -> np.ndarray:
    """The identity field (no motion), float32 [H, W, 2]."""
    return sampler.identity_grid(height, width).numpy()


@dataclasses.dataclass(frozen=True)
class AverageFlow:
    """Mean target-to-source displacement per (source, target) expression pair.

    Attributes:
      displacements: "source->target" -> float32 [H, W, 2], normalized units
        (sampling coordinates minus the identity grid).
      counts: "source->target" -> training pairs averaged.
    """

    displacements: dict[str, np.ndarray]
    counts: dict[str, int]

    def coords(self, source_expression: str, target_expression: str,
               factor: float = 1.0) -> np.ndarray:
        """Identity + factor * the mean displacement, float32 [H, W, 2].

        Raises:
          KeyError: no training pair had these expressions.
        """
        displacement = self.displacements[f"{source_expression}->{target_expression}"]
        return identity_coords(*displacement.shape[:2]) + factor * displacement


def average_flow(coords: list[np.ndarray], source_expressions: list[str],
                 target_expressions: list[str]) -> AverageFlow:
    """Averages target-to-source fields per expression pair.

    Args:
      coords: per training pair, float32 [H, W, 2] sampling coordinates (e.g.
        optical flow from its target to its source).
      source_expressions, target_expressions: the pairs' labels.
    """
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for field, source, target in zip(coords, source_expressions, target_expressions):
        key = f"{source}->{target}"
        displacement = np.asarray(field, np.float64) - identity_coords(*field.shape[:2])
        sums[key] = sums.get(key, 0.0) + displacement
        counts[key] = counts.get(key, 0) + 1
    return AverageFlow({k: (v / counts[k]).astype(np.float32) for k, v in sums.items()}, counts)


def cross_fade(image_1: np.ndarray, image_2: np.ndarray, alpha: float) -> np.ndarray:
    """`(1 - alpha) image_1 + alpha image_2`."""
    return ((1.0 - alpha) * np.asarray(image_1) + alpha * np.asarray(image_2)).astype(np.float32)


def _border_points(height: int, width: int) -> np.ndarray:
    """The 4 corners and 4 edge midpoints of the image, pixel (x, y) [8, 2]."""
    xs, ys = (0.0, (width - 1) / 2, width - 1.0), (0.0, (height - 1) / 2, height - 1.0)
    return np.array([(x, y) for y in ys for x in xs if (x, y) != (xs[1], ys[1])])


def mesh_warp(image: np.ndarray, landmarks: np.ndarray, to_landmarks: np.ndarray) -> np.ndarray:
    """Piecewise-affine warp moving `landmarks` onto `to_landmarks` (plus fixed border points).

    The triangles are the Delaunay triangulation of the destination points;
    each output pixel's barycentric coordinates in its triangle give the point
    it reads in `image` (sampled with the project's bilinear sampler).

    Args:
      image: [H, W, 3].
      landmarks: [68, 2] where the features are in `image`.
      to_landmarks: [68, 2] where they go.

    Returns:
      float32 [H, W, 3]: `image` when the two landmark sets agree.
    """
    height, width = image.shape[:2]
    size = np.array([width, height], np.float64)
    border = _border_points(height, width)
    here = np.concatenate([coordinates.to_pixels(np.asarray(landmarks, np.float64), size), border])
    there = np.concatenate([coordinates.to_pixels(np.asarray(to_landmarks, np.float64), size),
                            border])
    mesh = scipy.spatial.Delaunay(there)
    ys, xs = np.mgrid[0:height, 0:width]
    pixels = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    triangle = mesh.find_simplex(pixels)
    affine = mesh.transform[triangle]  # [N, 3, 2]: barycentric map of each pixel's triangle
    partial = np.einsum("nij,nj->ni", affine[:, :2], pixels - affine[:, 2])
    weights = np.concatenate([partial, 1.0 - partial.sum(axis=1, keepdims=True)], axis=1)
    reads = np.einsum("ni,nij->nj", weights, here[mesh.simplices[triangle]])
    outside = triangle < 0  # beyond every triangle (landmarks outside the image): stay
    reads[outside] = pixels[outside]
    coords = coordinates.to_normalized(reads, size).reshape(height, width, 2)
    return warp(np.asarray(image, np.float32)[None], coords[None].astype(np.float32))[0]


def mesh_morph(image_1: np.ndarray, image_2: np.ndarray, landmarks_1: np.ndarray,
               landmarks_2: np.ndarray, alpha: float) -> np.ndarray:
    """Landmark mesh morphing at `alpha`: both faces warped to the mixed landmarks, dissolved."""
    between = (1.0 - alpha) * np.asarray(landmarks_1) + alpha * np.asarray(landmarks_2)
    return cross_fade(mesh_warp(image_1, landmarks_1, between),
                      mesh_warp(image_2, landmarks_2, between), alpha)


def flow_interpolation(image_1: np.ndarray, image_2: np.ndarray, coords_12: np.ndarray,
                       alpha: float) -> np.ndarray:
    """Optical-flow interpolation at `alpha` (0: image_1, 1: image_2).

    Args:
      image_1, image_2: [H, W, 3].
      coords_12: [H, W, 2] sampling coordinates from image 1 into image 2
        (pixel p of image 1 is at coords_12(p) in image 2).

    Returns:
      float32 [H, W, 3]: `(1 - alpha) S(x_1, id - alpha d) + alpha S(x_2, id + (1 - alpha) d)`,
      d = coords_12 - id (the flow at p stands in for the flow at the moving point).
    """
    identity = identity_coords(*image_1.shape[:2])
    displacement = np.asarray(coords_12) - identity
    first = warp(image_1[None], (identity - alpha * displacement)[None])[0]
    second = warp(image_2[None], (identity + (1.0 - alpha) * displacement)[None])[0]
    return cross_fade(first, second, alpha)
