"""The synthetic faces' triangle mesh and exact piecewise-affine maps between meshes.

One triangulation `TRIANGLES` serves every face, so two meshes of one
identity (two expressions, poses, intensities) correspond triangle by
triangle, and the map between them is the affine map of each triangle
(`triangle_affines`) applied to the triangle under each point (`locate`).
This is exact at every point, not an interpolation of a sampled field.

Triangles are of three kinds (`Layer`). SKIN triangles carry the face's
surface. EYE triangles tile the eye openings (landmarks 36-41, 42-47) and
MOUTH triangles the opening between the inner lips (60-67): there the image
shows what lies behind the surface, which does not move with the mesh (see
`geometry`). A neutral face has closed lips: its MOUTH triangles
have zero area and no point is ever located in them.

All points are normalized image coordinates (see `geometry`).
"""

import enum

import cv2
import numpy as np
from scipy.spatial import Delaunay

from fvae_tf.synthetic import geometry
from fvae_tf.warp import coordinates

_DEGENERATE_AREA = 1e-12  # normalized units^2; zero-area openings (closed lips) are below
_INSIDE = -1e-9  # barycentric slack for points on an edge


class Layer(enum.IntEnum):
    """What a triangle shows."""

    SKIN = 0  # the face's surface, moved by the mesh
    EYE = 1  # an eye opening: the eyeball behind it moves with the skull
    MOUTH = 2  # the open mouth: teeth with the skull or the jaw


def signed_areas(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Signed triangle areas, positive when counter-clockwise on screen (y down): float [T]."""
    a, b, c = (vertices[triangles[:, k]] for k in range(3))
    ab, ac = b - a, c - a
    return 0.5 * (ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0])


def _triangulate() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Delaunay triangulation of a reference face, with layers and neighbours.

    The reference screams with open eyes: no two vertices coincide and the
    openings are round enough for Delaunay to tile each by its own vertices.
    Every triangle is oriented counter-clockwise on screen (`signed_areas`).

    Returns:
      triangles int32 [T, 3], layers int8 [T], neighbours int32 [T, 3]
      (the triangle across the edge opposite each corner, -1 at the hull).

    Raises:
      RuntimeError: an opening is not tiled exactly by its own triangles.
    """
    neutral = geometry.neutral_vertices(geometry.neutral_landmarks(geometry.FaceShape()))
    reference, _ = geometry.deform(neutral, "scream", 1.0, geometry.pose_matrix())
    reference[36:48] = neutral[36:48]
    delaunay = Delaunay(reference)
    triangles = delaunay.simplices.astype(np.int32)
    neighbours = delaunay.neighbors.astype(np.int32)
    flip = signed_areas(reference, triangles) < 0
    triangles[flip] = triangles[flip][:, [0, 2, 1]]
    neighbours[flip] = neighbours[flip][:, [0, 2, 1]]
    layers = np.full(len(triangles), Layer.SKIN, np.int8)
    centroids = reference[triangles].mean(axis=1)
    for polygon, layer in ((geometry.LEFT_EYE, Layer.EYE), (geometry.RIGHT_EYE, Layer.EYE),
                           (geometry.INNER_LIPS, Layer.MOUTH)):
        contour = reference[list(polygon)].astype(np.float32)
        inside = np.all(np.isin(triangles, polygon), axis=1) & np.array(
            [cv2.pointPolygonTest(contour, (float(x), float(y)), False) > 0 for x, y in centroids])
        tiled = signed_areas(reference, triangles[inside]).sum()
        if not np.isclose(tiled, cv2.contourArea(contour)):
            raise RuntimeError(f"the triangulation does not tile the opening {polygon}")
        layers[inside] = layer
    return triangles, layers, neighbours


TRIANGLES, TRIANGLE_LAYERS, NEIGHBOURS = _triangulate()


def _barycentric_rows(vertices: np.ndarray) -> np.ndarray:
    """Per triangle, the 3x3 matrix taking (x, y, 1) to barycentric coordinates, as float64 [9, T].

    Degenerate triangles get rows that put every point outside them.
    """
    corners = vertices[TRIANGLES]  # [T, 3, 2]
    m = np.concatenate([corners.transpose(0, 2, 1), np.ones((len(TRIANGLES), 1, 3))], axis=1)
    degenerate = np.abs(signed_areas(vertices, TRIANGLES)) < _DEGENERATE_AREA
    m[degenerate] = np.eye(3)
    inverse = np.linalg.inv(m)
    inverse[degenerate] = [[0.0, 0.0, -1.0]] * 3
    return np.ascontiguousarray(inverse.reshape(-1, 9).T)


def _barycentric(rows: np.ndarray, triangle: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Barycentric coordinates of each point in its triangle: float64 [3, N] (all >= 0 inside)."""
    g = rows[:, triangle]
    x, y = points[:, 0], points[:, 1]
    return np.stack([g[3 * k] * x + g[3 * k + 1] * y + g[3 * k + 2] for k in range(3)])


def _walk(rows: np.ndarray, triangle: np.ndarray, points: np.ndarray, max_steps: int = 32
          ) -> np.ndarray:
    """Moves each point's triangle until it contains the point.

    Each step crosses the edge opposite the most negative barycentric
    coordinate (a visibility walk). A point outside the mesh stops at the
    hull; one still outside after `max_steps` (a walk may cycle on a
    non-Delaunay mesh) gets the triangle it is deepest inside, by brute force.

    Returns:
      int [N], the triangles.
    """
    triangle = triangle.copy()
    # Most points start in their triangle: a float32 check with a margin
    # (far above float32's error) picks the few to walk, in float64.
    bary = _barycentric(rows.astype(np.float32), triangle, points.astype(np.float32))
    todo = np.flatnonzero(np.minimum(np.minimum(bary[0], bary[1]), bary[2]) < 1e-4)
    for _ in range(max_steps):
        bary = _barycentric(rows, triangle[todo], points[todo])
        corner = bary.argmin(axis=0)
        outside = bary[corner, np.arange(todo.size)] < _INSIDE
        todo, corner = todo[outside], corner[outside]
        across = NEIGHBOURS[triangle[todo], corner]
        todo, across = todo[across >= 0], across[across >= 0]
        if todo.size == 0:
            return triangle
        triangle[todo] = across
    every = np.arange(len(TRIANGLES))
    for i in todo:
        bary = _barycentric(rows, every, np.broadcast_to(points[i], (len(every), 2)))
        triangle[i] = bary.min(axis=0).argmax()
    return triangle


def _raster(vertices: np.ndarray, size: int) -> np.ndarray:
    """Triangle ids drawn with cv2.fillPoly at size x size (a first guess): int32 [S, S]."""
    raster = np.zeros((size, size), np.int32)
    corners = np.round(coordinates.to_pixels(vertices, size) * 16).astype(np.int32)[TRIANGLES]
    for t in np.flatnonzero(np.abs(signed_areas(vertices, TRIANGLES)) >= _DEGENERATE_AREA):
        cv2.fillPoly(raster, [corners[t]], int(t), shift=4)
    return raster


def locate(points: np.ndarray, vertices: np.ndarray, raster_size: int) -> np.ndarray:
    """The mesh triangle under each point.

    A raster of triangle ids at `raster_size` gives each point a first
    guess, from which it walks to the triangle that contains it (`_walk`).
    A point on an edge gets either triangle (their maps agree there).

    Args:
      points: float [N, 2], normalized.
      vertices: float [NUM_VERTICES, 2], the mesh.
      raster_size: side of the guess raster; the image size when the points
        are its pixel centres (`geometry.pixel_grid`).

    Returns:
      int [N] indices into `TRIANGLES`; never a zero-area triangle.
    """
    points = np.asarray(points, np.float64)
    ij = np.round(coordinates.to_pixels(points, raster_size)).astype(np.int64)
    ij = np.clip(ij, 0, raster_size - 1)
    guess = _raster(vertices, raster_size)[ij[:, 1], ij[:, 0]]
    return _walk(_barycentric_rows(vertices), guess, points)


def locate_pixels(vertices: np.ndarray, size: int) -> np.ndarray:
    """`locate` for the pixel centres of a size x size image (`geometry.pixel_grid`).

    Returns:
      int [size * size], row-major.
    """
    guess = _raster(vertices, size).ravel()
    return _walk(_barycentric_rows(vertices), guess, geometry.pixel_grid(size))


def triangle_affines(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per triangle, the affine map carrying it from mesh `source` onto mesh `target`.

    Args:
      source, target: float [NUM_VERTICES, 2], two meshes.

    Returns:
      float64 [6, T]: rows (a, b, c, d, e, f) of x' = a x + b y + c,
      y' = d x + e y + f; zero for triangles degenerate in `source`.
    """
    rows = _barycentric_rows(source).T.reshape(-1, 3, 3)  # [T, 3, 3]
    degenerate = np.abs(signed_areas(source, TRIANGLES)) < _DEGENERATE_AREA
    corners = target[TRIANGLES].transpose(0, 2, 1)  # [T, 2, 3]
    affines = corners @ rows  # [T, 2, 3]
    affines[degenerate] = 0.0
    return np.ascontiguousarray(affines.reshape(-1, 6).T)


def map_points(affines: np.ndarray, triangle: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Applies each point's triangle's map (`triangle_affines`): [N, 2] in `affines`' dtype."""
    g = affines[:, triangle]
    x, y = points[:, 0].astype(affines.dtype), points[:, 1].astype(affines.dtype)
    out = np.empty((len(points), 2), affines.dtype)
    out[:, 0] = g[0] * x + g[1] * y + g[2]
    out[:, 1] = g[3] * x + g[4] * y + g[5]
    return out


def to_pixel_affines(affines: np.ndarray, size: int) -> np.ndarray:
    """`triangle_affines` with outputs in pixels at `size`, px = (size / 2) x + (size - 1) / 2."""
    out = affines * (size / 2.0)
    out[[2, 5]] += (size - 1) / 2.0
    return out
