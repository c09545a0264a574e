"""Synthetic faces with ground-truth flow: the built-in data set.

Each identity is a neutral face drawn once from OpenCV primitives
(`drawing`) on a triangle mesh over its 68 dlib landmarks
(`geometry`, `mesh`). An expression moves the mesh; `render` warps the
neutral face piecewise-affinely into it, shows eyeballs and teeth through
the eye and mouth openings, darkens the expression's wrinkles and applies the
image's lighting. Because every image is an exact warp of one neutral face,
the map between any two images of one identity is known at every pixel:
`pair_truth` gives the target-to-source sampling coordinates and a
visibility mask, 0 where the target shows something the source does not
(teeth behind closed lips, eyeball behind closed lids, a new wrinkle,
anything outside the source frame).

Coordinates are the sampler's (`fvae_tf.warp.coordinates`): normalized (x, y) in [-1, 1],
align_corners=False, so pixel centre i of S sits at (2i + 1) / S - 1 and
px = ((x + 1) * S - 1) / 2; landmarks are pixels of their image (centres at
integers). Images are uint8 RGB.

Files (`dataset.write_dataset` lays them out):
  STEM.png            the image
  STEM.landmarks.npy  float64 [68, 2], pixels of STEM.png
  STEM.truth.npz      the image's `GroundTruth` (`save_ground_truth`); two
                      of them give a pair's truth (`pair_truth_from_files`).
"""

import dataclasses
import os
import pathlib
from typing import NamedTuple

import cv2
import numpy as np

from fvae_tf import atomic_io
from fvae_tf.synthetic import drawing, geometry, mesh
from fvae_tf.expressions import EXPRESSIONS, MULTIPIE_DEFAULT_ILLUMINATION
from fvae_tf.synthetic.geometry import MouthModel
from fvae_tf.synthetic.mesh import Layer
from fvae_tf.warp import coordinates

ILLUMINATION = MULTIPIE_DEFAULT_ILLUMINATION  # the illumination index in file names
TRUTH_VERSION = 1
# A target pixel whose wrinkle darkening, or whose anti-aliased coverage by
# an eye or mouth opening, differs from its source point's by more than this
# does not count as visible: no warp of the source reproduces it.
CREASE_TOLERANCE = 0.05
OPENING_TOLERANCE = 0.05


@dataclasses.dataclass(frozen=True)
class Lighting:
    """Per-image light in the image frame: out = in * gain * (1 + slope * d . (x, y)) + offset."""

    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)  # per RGB channel
    direction: float = 0.0  # angle of the brightening direction, radians
    slope: float = 0.0  # brightness change per normalized unit along it
    offset: float = 0.0  # added, in [0, 1] units

    def apply(self, image: np.ndarray) -> np.ndarray:
        """float [S, S, 3] in [0, 1] -> lit float32 [S, S, 3] (not clipped)."""
        size = image.shape[0]
        axis = coordinates.pixel_centres(size, dtype=np.float32)
        ramp = 1.0 + np.float32(self.slope) * (np.float32(np.cos(self.direction)) * axis[None, :]
                                               + np.float32(np.sin(self.direction)) * axis[:, None])
        out = image * (ramp[..., None] * np.asarray(self.gain, np.float32))
        out += np.float32(self.offset)
        return out


def random_lighting(rng: np.random.Generator, amount: float = 1.0) -> Lighting:
    """Lighting jitter; `amount` scales it (0: none, 1: the default spread)."""
    brightness = 1.0 + amount * rng.uniform(-0.15, 0.1)
    return Lighting(gain=tuple(brightness * (1.0 + amount * rng.uniform(-0.08, 0.08, 3))),
                    direction=float(rng.uniform(0, 2 * np.pi)),
                    slope=float(amount * rng.uniform(0, 0.25)),
                    offset=float(amount * rng.uniform(-0.03, 0.03)))


def random_pose(rng: np.random.Generator, amount: float = 1.0) -> np.ndarray:
    """Pose jitter, canonical -> image [2, 3].

    Up to 3 degrees, 3% scale and a shift of 0.03 (1.5% of the image), each
    times `amount`.
    """
    return geometry.pose_matrix(amount * rng.uniform(-0.05, 0.05),
                                1.0 + amount * rng.uniform(-0.03, 0.03),
                                tuple(amount * rng.uniform(-0.03, 0.03, 2)))


@dataclasses.dataclass(frozen=True, eq=False)
class Identity:
    """One synthetic person.

    Attributes:
      shape: proportions.
      appearance: colours, styles, texture seed.
      neutral: float64 [NUM_VERTICES, 2], the neutral (canonical) mesh.
      mouth: teeth and tongue.
    """

    shape: geometry.FaceShape
    appearance: drawing.Appearance
    neutral: np.ndarray
    mouth: MouthModel
    _layers: dict = dataclasses.field(default_factory=dict, repr=False)

    def layers(self, size: int) -> drawing.Layers:
        """The canonical layers at `size` (drawn on first use, then cached)."""
        if size not in self._layers:
            self._layers[size] = drawing.draw_layers(self.appearance, self.neutral, self.mouth,
                                                     size)
        return self._layers[size]


def make_identity(seed: int | np.random.Generator) -> Identity:
    """Draws a person: the same seed gives the same person.

    Args:
      seed: an int or a numpy Generator (which is advanced).
    """
    rng = np.random.default_rng(seed)
    shape = geometry.sample_shape(rng)
    landmarks = geometry.neutral_landmarks(shape)
    return Identity(shape=shape, appearance=drawing.sample_appearance(rng),
                    neutral=geometry.neutral_vertices(landmarks, shape.forehead),
                    mouth=geometry.make_mouth(landmarks, rng))


@dataclasses.dataclass(frozen=True, eq=False)
class GroundTruth:
    """What one image's truth needs: geometry (resolution independent) and two appearance maps.

    Attributes:
      expression: one of `EXPRESSIONS`.
      intensity: in [0, 1].
      vertices: float64 [NUM_VERTICES, 2], the mesh in normalized image coords.
      pose: float64 [2, 3], canonical -> normalized image coords (moves the
        skull: eyeballs, upper teeth).
      jaw: the jaw's drop in canonical units (moves lower teeth and tongue).
      mouth: float64 [5], `MouthModel` fields (the identity's teeth).
      crease: float32 [S, S] in [0, 1], wrinkle darkening seen at the image's
        pixels (not where an opening covers the skin; multiples of 1/255);
        S is the image's size.
      opening: float32 [S, S] in [0, 1], anti-aliased coverage of the
        pixels by the eye and mouth openings (multiples of 1/255).
    """

    expression: str
    intensity: float
    vertices: np.ndarray
    pose: np.ndarray
    jaw: float
    mouth: np.ndarray
    crease: np.ndarray
    opening: np.ndarray

    @property
    def size(self) -> int:
        return self.crease.shape[0]

    @property
    def landmarks(self) -> np.ndarray:
        """float64 [68, 2] in pixels of the image."""
        return coordinates.to_pixels(self.vertices[:geometry.NUM_LANDMARKS], self.size)


@dataclasses.dataclass(frozen=True, eq=False)
class Rendered:
    """An image and its ground truth.

    Attributes:
      image: uint8 [S, S, 3] RGB.
      truth: its `GroundTruth`; `truth.landmarks` are its 68 landmarks.
    """

    image: np.ndarray
    truth: GroundTruth

    @property
    def landmarks(self) -> np.ndarray:
        """float64 [68, 2], pixels of `image`."""
        return self.truth.landmarks


def _pixel_affine(matrix: np.ndarray, size: int) -> np.ndarray:
    """A normalized -> normalized [2, 3] affine map as pixel -> pixel at `size`."""
    to_px = np.array([[size / 2, 0, (size - 1) / 2], [0, size / 2, (size - 1) / 2], [0, 0, 1]])
    full = np.vstack([matrix, [0, 0, 1]])
    return (to_px @ full @ np.linalg.inv(to_px))[:2]


def _composite_openings(image: np.ndarray, layers: drawing.Layers, vertices: np.ndarray,
                        pose: np.ndarray, jaw: float) -> np.ndarray:
    """Paints what shows through the open eyes and mouth into `image` [S, S, 3], in place.

    The openings' anti-aliased coverage blends the skull layer (eyeballs,
    cavity), the jaw layer (tongue, lower teeth) and the upper teeth over the
    skin; only their bounding box is warped.

    Returns:
      The coverage, float32 [S, S] in [0, 1] (multiples of 1/255).
    """
    size = image.shape[0]
    mask = np.zeros((size, size), np.uint8)
    for polygon in (geometry.LEFT_EYE, geometry.RIGHT_EYE, geometry.INNER_LIPS):
        points = coordinates.to_pixels(vertices[list(polygon)], size)
        if cv2.contourArea(points.astype(np.float32)) > 0.25:  # a closed opening shows nothing
            cv2.fillPoly(mask, [np.round(points * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
    coverage = mask.astype(np.float32) / 255
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0:
        return coverage
    crop = np.array([[1, 0, -x], [0, 1, -y], [0, 0, 1]])

    def warp(layer, matrix):
        in_box = (crop @ np.vstack([_pixel_affine(matrix, size), [0, 0, 1]]))[:2]
        return cv2.warpAffine(layer, in_box, (w, h), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)

    inside = warp(layers.skull, pose)
    lower = warp(layers.lower, pose @ np.array([[1, 0, 0], [0, 1, jaw], [0, 0, 1]]))
    upper = warp(layers.upper_teeth, pose)
    inside += lower[..., 3:] * (lower[..., :3] - inside)
    inside += upper[..., 3:] * (upper[..., :3] - inside)
    box = image[y:y + h, x:x + w]
    box += coverage[y:y + h, x:x + w, None] * (inside - box)
    return coverage


def render(identity: Identity, expression: str = "neutral", intensity: float = 1.0, size: int = 64,
           *, pose: np.ndarray | None = None, lighting: Lighting | None = None) -> Rendered:
    """Renders a person in an expression.

    Args:
      identity: from `make_identity`.
      expression: one of `EXPRESSIONS`.
      intensity: in [0, 1]; 0 is the neutral face.
      size: image side in pixels.
      pose: float [2, 3] canonical -> image similarity (`random_pose`); None
        is the canonical pose.
      lighting: None is the identity's plain light.

    Returns:
      The image and its ground truth.

    Raises:
      ValueError: an unknown expression or an intensity outside [0, 1].
    """
    if expression not in EXPRESSIONS:
        raise ValueError(f"unknown expression {expression!r}; "
                         f"known expressions: {', '.join(EXPRESSIONS)}")
    if not 0.0 <= intensity <= 1.0:
        raise ValueError(f"intensity must be in [0, 1], got {intensity}")
    pose = geometry.pose_matrix() if pose is None else np.asarray(pose, np.float64)
    vertices, jaw = geometry.deform(identity.neutral, expression, intensity, pose)
    layers = identity.layers(size)

    affines = mesh.to_pixel_affines(mesh.triangle_affines(vertices, identity.neutral), size)
    maps = mesh.map_points(affines.astype(np.float32), mesh.locate_pixels(vertices, size),
                           geometry.pixel_grid(size)).reshape(size, size, 2)  # canonical pixels
    image = cv2.remap(layers.skin, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    weights = geometry.crease_weights(expression, intensity) * identity.appearance.crease_depth
    crease = np.zeros((size, size), np.float32)
    if weights.any():
        crease = cv2.remap(layers.creases @ weights.astype(np.float32), maps, None,
                           cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        crease = np.clip(crease, 0, 1)
        image *= (1.0 - crease)[..., None]
    opening = _composite_openings(image, layers, vertices, pose, jaw)
    seen_crease = np.round(crease * (1.0 - opening) * 255) / np.float32(255)  # openings cover it
    if lighting is not None:
        image = lighting.apply(image)
    np.clip(image, 0, 1, out=image)
    image = (image * 255 + 0.5).astype(np.uint8)
    truth = GroundTruth(expression=expression, intensity=float(intensity), vertices=vertices,
                        pose=pose, jaw=float(jaw), mouth=identity.mouth.as_array(),
                        crease=seen_crease, opening=opening)
    return Rendered(image=image, truth=truth)


class PairTruth(NamedTuple):
    """Ground truth for warping a source image into a target image."""

    coords: np.ndarray  # float32 [H, W, 2], normalized (x, y), target to source
    visibility: np.ndarray  # float32 [H, W], 1 where the target's content is in the source


def _sample(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear samples of a float32 [S, S] map at normalized points [N, 2]: float32 [N]."""
    n = len(points)
    maps = np.zeros((-(-n // 1024) * 1024, 2), np.float32)  # remap wants < 32767 rows
    maps[:n] = coordinates.to_pixels(points, image.shape[0])
    out = cv2.remap(image, maps.reshape(-1, 1024, 2), None, cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.ravel()[:n]


def _content(mouth: MouthModel, canonical: np.ndarray, jaw: float) -> np.ndarray:
    """What an opening shows at canonical points: 0 skull (eyeball, cavity), 1 upper teeth, 2 jaw.

    `jaw` is the image's jaw drop: the jaw frame is the skull frame shifted down by it.
    """
    kind = np.zeros(len(canonical), np.int8)
    on_jaw = mouth.lower_teeth(canonical - (0, jaw)) | mouth.tongue(canonical - (0, jaw))
    kind[on_jaw] = 2
    kind[mouth.upper_teeth(canonical)] = 1
    return kind


def _image_points(points: np.ndarray, transform: np.ndarray | None, size: int) -> np.ndarray:
    """Crop-normalized points -> image-normalized points, given photo-pixel -> crop `transform`."""
    if transform is None:
        return points
    pixels = geometry.apply_affine(geometry.invert_affine(transform), points)
    return coordinates.to_normalized(pixels, size)


def pair_truth(source: GroundTruth, target: GroundTruth, size: int, *,
               source_transform: np.ndarray | None = None,
               target_transform: np.ndarray | None = None) -> PairTruth:
    """The exact target-to-source sampling coordinates of two images of one identity.

    Skin pixels map through the two meshes (the same triangle, the same
    barycentric coordinates); pixels in an eye or mouth opening map through
    the two poses (and, on the lower teeth or tongue, the two jaw drops).
    Visible means: the same content is seen at the source point (an opening
    pixel lands in the same kind of opening and on the same part: skull,
    upper teeth, jaw), the wrinkle darkening and the anti-aliased opening
    coverage there (bilinearly sampled, as a warp reads them) agree within
    `CREASE_TOLERANCE` and `OPENING_TOLERANCE`, and the source point lies
    inside the source image. Lighting is not part of it: colour transfer's job.

    Args:
      source, target: the two images' truths (any sizes).
      size: side of the output grid (the target's pixels, or its crop's).
      source_transform, target_transform: optional float [2, 3] maps from
        that image's pixels to normalized crop coordinates, as
        `alignment.AlignedFace.transform`; then the output is on the
        target crop's grid and points into the source crop.

    Returns:
      coords float32 [size, size, 2] and visibility float32 [size, size].
    """
    grid = geometry.pixel_grid(size)
    p = _image_points(grid, target_transform, target.size)
    if target_transform is None:
        triangle = mesh.locate_pixels(target.vertices, size)
    else:
        triangle = mesh.locate(p, target.vertices, size)
    q = mesh.map_points(mesh.triangle_affines(target.vertices, source.vertices), triangle, p)
    visible = np.ones(len(p), bool)
    layer = mesh.TRIANGLE_LAYERS[triangle]
    hole = np.flatnonzero(layer != Layer.SKIN)
    if hole.size:
        mouth = MouthModel(*target.mouth)
        canonical = geometry.apply_affine(geometry.invert_affine(target.pose), p[hole])
        kind = _content(mouth, canonical, target.jaw)
        canonical[kind == 2, 1] += source.jaw - target.jaw
        q[hole] = geometry.apply_affine(source.pose, canonical)
        source_triangle = mesh.locate(q[hole], source.vertices, size)
        visible[hole] = ((mesh.TRIANGLE_LAYERS[source_triangle] == layer[hole])
                         & (_content(mouth, canonical, source.jaw) == kind))
    visible &= np.abs(_sample(target.crease, p) - _sample(source.crease, q)) <= CREASE_TOLERANCE
    visible &= np.abs(_sample(target.opening, p) - _sample(source.opening, q)) <= OPENING_TOLERANCE
    visible &= np.all(np.abs(q) <= 1.0, axis=1)

    if source_transform is not None:
        q = geometry.apply_affine(source_transform, coordinates.to_pixels(q, source.size))
    return PairTruth(coords=q.astype(np.float32).reshape(size, size, 2),
                     visibility=visible.astype(np.float32).reshape(size, size))


def _companion(image_path: str | os.PathLike, suffix: str) -> pathlib.Path:
    path = pathlib.Path(image_path)
    return path.with_name(path.stem + suffix)


def landmarks_path(image_path: str | os.PathLike) -> pathlib.Path:
    """STEM.png -> STEM.landmarks.npy."""
    return _companion(image_path, ".landmarks.npy")


def truth_path(image_path: str | os.PathLike) -> pathlib.Path:
    """STEM.png -> STEM.truth.npz."""
    return _companion(image_path, ".truth.npz")


def save_ground_truth(path: str | os.PathLike, truth: GroundTruth) -> None:
    """Writes a `GroundTruth` as .npz (atomically); the two maps are stored as uint8 (exact)."""
    arrays = dict(version=np.int64(TRUTH_VERSION), expression=np.str_(truth.expression),
                  intensity=np.float64(truth.intensity), vertices=truth.vertices, pose=truth.pose,
                  jaw=np.float64(truth.jaw), mouth=truth.mouth,
                  crease=np.round(truth.crease * 255).astype(np.uint8),
                  opening=np.round(truth.opening * 255).astype(np.uint8))
    atomic_io.atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def load_ground_truth(path: str | os.PathLike) -> GroundTruth:
    """Reads `save_ground_truth`'s file.

    Raises:
      OSError: the file cannot be read.
      ValueError: it is not a ground-truth file of this version.
    """
    try:
        with np.load(path) as f:
            if int(f["version"]) != TRUTH_VERSION:
                raise ValueError(f"{path}: ground-truth version {int(f['version'])}, "
                                 f"expected {TRUTH_VERSION}")
            return GroundTruth(expression=str(f["expression"]), intensity=float(f["intensity"]),
                               vertices=f["vertices"], pose=f["pose"], jaw=float(f["jaw"]),
                               mouth=f["mouth"], crease=f["crease"].astype(np.float32) / 255,
                               opening=f["opening"].astype(np.float32) / 255)
    except (KeyError, EOFError) as e:
        raise ValueError(f"{path}: not a synthetic ground-truth file ({e})") from None


def save_landmarks(path: str | os.PathLike, landmarks: np.ndarray) -> None:
    """Writes float64 [68, 2] landmarks as .npy (atomically)."""
    array = np.asarray(landmarks, np.float64)
    atomic_io.atomic_write(path, lambda f: np.save(f, array))


def load_landmarks(image_path: str | os.PathLike) -> np.ndarray:
    """The 68 landmarks stored beside an image: float64 [68, 2], its pixels.

    Raises:
      OSError: no readable landmark file.
      ValueError: it does not hold [68, 2] numbers.
    """
    landmarks = np.load(landmarks_path(image_path), allow_pickle=False)
    if landmarks.shape != (geometry.NUM_LANDMARKS, 2) or not np.all(np.isfinite(landmarks)):
        raise ValueError(f"{landmarks_path(image_path)}: expected finite [68, 2] landmarks, "
                         f"got shape {landmarks.shape}")
    return landmarks.astype(np.float64)


def pair_truth_from_files(source_image: str | os.PathLike, target_image: str | os.PathLike,
                          size: int, *, source_transform: np.ndarray | None = None,
                          target_transform: np.ndarray | None = None) -> PairTruth:
    """`pair_truth` for two images on disk, from the .truth.npz files beside them.

    The transforms, if given, map each image's pixels (as in the PNG) to
    normalized crop coordinates (`alignment.AlignedFace.transform`).

    Raises:
      OSError, ValueError: as `load_ground_truth`.
    """
    source = load_ground_truth(truth_path(source_image))
    target = load_ground_truth(truth_path(target_image))
    return pair_truth(source, target, size, source_transform=source_transform,
                      target_transform=target_transform)
