"""Face alignment: dlib landmarks, a similarity to a canonical template, crops.

Detection is dlib's HOG frontal face detector; landmarks are the 68 points of
Kazemi & Sullivan's regression trees (the paper's [11]), the model shipped by
the `face-recognition-models` package. Each face is mapped onto a fixed
canonical template by the least-squares similarity (rotation, uniform scale,
translation) fitted only on the points expressions move least, the eye
corners and the nose, so a smile does not shift, turn or zoom the crop. The
template and the landmarks' mirror permutation live in `fvae_tf.face_template`
(no dlib), re-exported here.

Coordinates (the sampler's convention, `fvae_tf.warp.coordinates`):
  - Landmarks in a photo: float (x, y) pixels, dlib 68-point order, pixel
    centres at integers (OpenCV).
  - Normalized crop coordinates: (x, y) in [-1, 1] with align_corners=False,
    the sampler's convention: -1 and +1 are the outer edges of the crop, so at
    crop size S the pixel coordinate is px = ((x + 1) * S - 1) / 2. The same
    normalized point is the same physical point at every crop size.
  - `transform`, float64 [2, 3], maps photo pixels to normalized crop
    coordinates: [x_n, y_n] = transform[:, :2] @ [x_px, y_px] + transform[:, 2].
    `crop_pixel_transform(transform, S)` is the matrix for cv2.warpAffine at
    size S; cv2.invertAffineTransform of it maps crop pixels back to the photo
    (what pasting an edited crop back needs).
"""

import dataclasses
import enum
import functools
import importlib.util
import math
import os
import pathlib

import cv2
import dlib
import numpy as np

from fvae_tf.data.image_io import ImageReadError, InputError, load_image
from fvae_tf.face_template import MIRROR_PERMUTATION, canonical_template

__all__ = [
    "STABLE_POINTS", "STABLE_WEIGHTS", "MIRROR_PERMUTATION", "MultipleFaces", "ImageReadError",
    "InputError", "FaceDetectionError", "NoFaceError", "MultipleFacesError", "Face", "AlignedFace",
    "load_image", "detect_faces", "select_face", "detect_landmarks", "canonical_template",
    "EYES_AND_NOSE", "fit_similarity", "estimate_transform", "transform_points",
    "onto_eyes_and_nose", "crop_pixel_transform",
    "warp_to_crop", "photo_coverage", "align_face",
]

# Eye corners (36, 39, 42, 45) and the nose (27-35): the landmarks expressions
# move least; the similarity is fitted on these alone, with the eyes and the
# nose weighing the same in total (9/4 per eye corner, 1 per nose point). With
# equal point weights the long nose dominates and, on the London set, two eye
# centres land 1.55 and 1.60 px (at 64 px) from the template; balanced, the
# worst is 1.27 px.
STABLE_POINTS = (36, 39, 42, 45, 27, 28, 29, 30, 31, 32, 33, 34, 35)
STABLE_WEIGHTS = (2.25,) * 4 + (1.0,) * 9
# The nose (27-35) and both eyes (36-47): what maps one photo's landmarks onto
# another photo's of the same face, so that only the expression's motion is left.
EYES_AND_NOSE = tuple(range(27, 48))



class MultipleFaces(enum.Enum):
    """What to do when a photo shows several faces.

    LARGEST aligns the face with the largest detection box. SKIP and ERROR
    both raise MultipleFacesError for one image; a batch counts SKIP as a
    deliberate skip and ERROR as a failure.
    """

    LARGEST = "largest"
    SKIP = "skip"
    ERROR = "error"


class FaceDetectionError(InputError):
    """The detector did not yield exactly one face to align."""


class NoFaceError(FaceDetectionError):
    """No face was found."""

    def __init__(self, reason: str, path: str | os.PathLike | None = None):
        super().__init__(reason, path, "no face")


class MultipleFacesError(FaceDetectionError):
    """Several faces were found and the policy was not LARGEST.

    Attributes:
      num_faces: how many faces the detector found.
    """

    def __init__(self, num_faces: int, path: str | os.PathLike | None = None):
        super().__init__(f"{num_faces} faces found", path, "multiple faces")
        self.num_faces = num_faces


@dataclasses.dataclass(frozen=True)
class Face:
    """One detected face.

    Attributes:
      box: dlib's detection rectangle (left, top, right, bottom), pixels.
      score: the detector's confidence.
      landmarks: float64 [68, 2], (x, y) photo pixels.
    """

    box: tuple[int, int, int, int]
    score: float
    landmarks: np.ndarray

    @property
    def area(self) -> int:
        left, top, right, bottom = self.box
        return (right - left + 1) * (bottom - top + 1)


@dataclasses.dataclass(frozen=True)
class AlignedFace:
    """A face mapped onto the canonical template.

    Attributes:
      crop: uint8 [size, size, 3] RGB, training resolution (64 by default).
      crop_hr: uint8 [hr_size, hr_size, 3] RGB, the same crop at high resolution.
      landmarks: float64 [68, 2], (x, y) pixels of the original photo.
      landmarks_aligned: float64 [68, 2], normalized crop coordinates.
      transform: float64 [2, 3], photo pixels -> normalized crop coordinates.
      frame: float32 [size, size], how much of each `crop` pixel lies inside
        the photo (`photo_coverage`).
    """

    crop: np.ndarray
    crop_hr: np.ndarray
    landmarks: np.ndarray
    landmarks_aligned: np.ndarray
    transform: np.ndarray
    frame: np.ndarray


def _shape_predictor_path() -> pathlib.Path:
    # Found without importing the package: its __init__ imports pkg_resources,
    # i.e. setuptools, which venvs of Python >= 3.12 no longer contain.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "face-recognition-models is not installed (pip install face-recognition-models)")
    return (pathlib.Path(spec.submodule_search_locations[0])
            / "models" / "shape_predictor_68_face_landmarks.dat")


@functools.cache
def _dlib_models() -> tuple["dlib.fhog_object_detector", "dlib.shape_predictor"]:
    """The detector and the 68-point predictor, loaded once per process."""
    return (dlib.get_frontal_face_detector(),
            dlib.shape_predictor(str(_shape_predictor_path())))


def _check_image(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 [H, W, 3] RGB image, got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


# The detector's working size: photos whose longer side is larger are searched
# on a copy shrunk to this (dlib's HOG costs in proportion to the pixels it
# scans; 640 px takes about 0.1 s), which finds faces of 1/8 of the longer side
# or more; a photo with none is searched again at full resolution.
DETECTION_SIDE = 640


def detect_faces(image: np.ndarray, upsample: int = 0,
                 detection_side: int | None = DETECTION_SIDE) -> list[Face]:
    """Finds every frontal face and its 68 landmarks.

    Boxes are found on a copy whose longer side is at most `detection_side`
    (when `upsample` is 0), and the landmarks at full resolution inside the
    boxes scaled back, so the cost hardly grows with the photo's size. When
    the shrunk copy shows no face, the full-resolution photo is searched.

    Args:
      image: uint8 [H, W, 3] RGB.
      upsample: how many times the detector doubles the full-resolution
        image first; each doubling finds faces half as small (dlib's
        smallest is about 80 px).
      detection_side: the longer side of the copy searched first; None
        searches the photo at full resolution only.

    Returns:
      The faces, largest detection box first; boxes in photo pixels.
    """
    image = _check_image(image)
    detector, predictor = _dlib_models()
    scale = 1.0
    boxes = []
    if not upsample and detection_side and max(image.shape[:2]) > detection_side:
        scale = max(image.shape[:2]) / detection_side
        small = cv2.resize(image, (round(image.shape[1] / scale), round(image.shape[0] / scale)),
                           interpolation=cv2.INTER_AREA)
        boxes, scores, _ = detector.run(small, 0, 0.0)
    if not boxes:
        scale = 1.0
        boxes, scores, _ = detector.run(image, upsample, 0.0)
    faces = []
    for box, score in zip(boxes, scores):
        box = dlib.rectangle(*(round(v * scale) for v in
                               (box.left(), box.top(), box.right(), box.bottom())))
        shape = predictor(image, box)
        landmarks = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        faces.append(Face((box.left(), box.top(), box.right(), box.bottom()), score, landmarks))
    return sorted(faces, key=lambda f: (f.area, f.score), reverse=True)


def select_face(faces: list[Face], multiple_faces: MultipleFaces | str = MultipleFaces.LARGEST,
                path: str | os.PathLike | None = None) -> Face:
    """Picks the face to align from `detect_faces`' list.

    Args:
      faces: largest first.
      multiple_faces: the policy when there are several.
      path: named in the errors.

    Raises:
      NoFaceError: no faces.
      MultipleFacesError: several faces and a policy other than LARGEST.
      ValueError: an unknown policy.
    """
    policy = MultipleFaces(multiple_faces)
    if not faces:
        raise NoFaceError("no face found (the detector needs frontal faces of about 80 px "
                          "or more; smaller ones need upsampling)", path)
    if len(faces) > 1 and policy is not MultipleFaces.LARGEST:
        raise MultipleFacesError(len(faces), path)
    return faces[0]


def detect_landmarks(image: np.ndarray, upsample: int = 0,
                     multiple_faces: MultipleFaces | str = MultipleFaces.LARGEST,
                     detection_side: int | None = DETECTION_SIDE) -> np.ndarray:
    """The 68 landmarks of the one face to align.

    Args:
      image: uint8 [H, W, 3] RGB.
      upsample: see `detect_faces`.
      multiple_faces: see `select_face`.
      detection_side: see `detect_faces`.

    Returns:
      float64 [68, 2], (x, y) pixels, dlib order.

    Raises:
      NoFaceError, MultipleFacesError: see `select_face`.
    """
    return select_face(detect_faces(image, upsample, detection_side), multiple_faces).landmarks


def fit_similarity(src: np.ndarray, dst: np.ndarray,
                   weights: np.ndarray | None = None) -> np.ndarray:
    """The weighted least-squares similarity taking `src` onto `dst` (closed form).

    Minimizes sum_i w_i ||A src_i + t - dst_i||^2 over A = [[a, -b], [b, a]]
    (a rotation times a positive scale, no reflection) and t. The problem is
    linear in (a, b, t): after subtracting the weighted centroids, a =
    sum(w s . d) / sum(w |s|^2), b = sum(w s x d) / sum(w |s|^2), and t maps
    centroid onto centroid.

    Args:
      src, dst: float [N, 2] corresponding points, N >= 2.
      weights: float [N], positive; None weighs all points alike.

    Returns:
      float64 [2, 3], [A | t].

    Raises:
      ValueError: shapes differ or `src`'s points all coincide.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two [N >= 2, 2] point sets, got {src.shape} and {dst.shape}")
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(src),) or np.any(w <= 0):
        raise ValueError(f"need {len(src)} positive weights, got {w}")
    w = w / w.sum()
    src_mean, dst_mean = w @ src, w @ dst
    s, d = src - src_mean, dst - dst_mean
    norm = w @ np.sum(s * s, axis=1)
    if norm == 0.0:
        raise ValueError("the source points all coincide")
    a = w @ np.sum(s * d, axis=1) / norm
    b = w @ (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]) / norm
    matrix = np.array([[a, -b], [b, a]])
    return np.hstack([matrix, (dst_mean - matrix @ src_mean)[:, None]])


def estimate_transform(landmarks: np.ndarray) -> np.ndarray:
    """Photo pixels -> normalized crop coordinates, fitted on STABLE_POINTS.

    A smile, or any change of the other landmarks, leaves it unchanged.

    Args:
      landmarks: float [68, 2], photo pixels.

    Returns:
      float64 [2, 3].
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (68, 2):
        raise ValueError(f"expected [68, 2] landmarks, got {landmarks.shape}")
    points = list(STABLE_POINTS)
    return fit_similarity(landmarks[points], canonical_template()[points], STABLE_WEIGHTS)


def transform_points(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Applies a [2, 3] affine matrix to float [N, 2] (x, y) points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ transform[:, :2].T + transform[:, 2]


def onto_eyes_and_nose(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`points` [68, 2] mapped onto `reference` [68, 2] by a similarity fitted on EYES_AND_NOSE.

    Two photos of one face differ by the head's motion and the expression's;
    this removes the head's (rotation, scale and shift), so what is left of
    `points - reference` is the expression (e.g. the mouth of a smile).
    """
    eyes_and_nose = list(EYES_AND_NOSE)
    transform = fit_similarity(points[eyes_and_nose], reference[eyes_and_nose])
    return transform_points(transform, points)


def crop_pixel_transform(transform: np.ndarray, size: int) -> np.ndarray:
    """The cv2.warpAffine matrix: photo pixels -> pixels of a size x size crop.

    Composes `transform` with normalized -> pixel at `size`,
    px = (S / 2) * x + (S - 1) / 2 (align_corners=False).

    Args:
      transform: float [2, 3], photo pixels -> normalized crop coordinates.
      size: the crop's side S in pixels.

    Returns:
      float64 [2, 3].
    """
    half = size / 2.0
    matrix = np.asarray(transform, dtype=np.float64) * half
    matrix[:, 2] += (size - 1) / 2.0
    return matrix


def _warp(image: np.ndarray, transform: np.ndarray, size: int, border: int) -> np.ndarray:
    """`warp_to_crop` with a chosen OpenCV border mode."""
    scale = math.sqrt(abs(np.linalg.det(crop_pixel_transform(transform, size)[:, :2])))
    factor = max(1, min(math.ceil(1.0 / scale - 1e-9), 4096 // size))
    big = size * factor
    crop = cv2.warpAffine(image, crop_pixel_transform(transform, big), (big, big),
                          flags=cv2.INTER_LINEAR, borderMode=border, borderValue=0)
    if factor > 1:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return crop.reshape(size, size, -1)


def warp_to_crop(image: np.ndarray, transform: np.ndarray, size: int) -> np.ndarray:
    """Resamples a photo into the size x size crop that `transform` defines.

    Bilinear, edges replicated (the sampler's "clamp"). When the crop shrinks
    the face, the photo is first warped at an integer multiple k of `size`
    (so it is sampled at least once per photo pixel) and then averaged over
    k x k blocks (cv2.INTER_AREA), which keeps aliasing out of small crops and
    leaves the geometry unchanged: a block's mean pixel centre is the centre
    of the crop pixel it becomes.

    Args:
      image: [H, W, C] uint8 or float32.
      transform: float [2, 3], photo pixels -> normalized crop coordinates.
      size: crop side in pixels.

    Returns:
      [size, size, C], `image`'s dtype.
    """
    return _warp(image, transform, size, cv2.BORDER_REPLICATE)


def photo_coverage(transform: np.ndarray, photo_shape: tuple[int, ...], size: int
                   ) -> np.ndarray:
    """How much of each crop pixel lies inside the photo: float32 [size, size] in [0, 1].

    Where a crop reaches past the photo's edge, `warp_to_crop` replicates the
    edge: those pixels show nothing of the scene, and no warp of another
    photo can be right or wrong there. This is `warp_to_crop` of an all-ones
    photo with zeros outside it, so the two agree pixel for pixel (1 well
    inside, 0 well outside, fractions along the edge).

    Args:
      transform: float [2, 3], photo pixels -> normalized crop coordinates.
      photo_shape: the photo's (height, width, ...).
      size: crop side in pixels.
    """
    ones = np.ones(tuple(photo_shape[:2]), np.float32)
    return _warp(ones, transform, size, cv2.BORDER_CONSTANT)[..., 0]


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = 64,
               hr_size: int = 256) -> AlignedFace:
    """Aligns one face onto the canonical template and crops it twice.

    Args:
      image: uint8 [H, W, 3] RGB, the photo `landmarks` were found in.
      landmarks: float [68, 2], photo pixels.
      size: side of `crop`.
      hr_size: side of `crop_hr`.

    Returns:
      The crops, both landmark sets and the transform.
    """
    image = _check_image(image)
    landmarks = np.asarray(landmarks, dtype=np.float64)
    transform = estimate_transform(landmarks)
    return AlignedFace(
        crop=warp_to_crop(image, transform, size),
        crop_hr=warp_to_crop(image, transform, hr_size),
        landmarks=landmarks,
        landmarks_aligned=transform_points(transform, landmarks),
        transform=transform,
        frame=photo_coverage(transform, image.shape, size),
    )
