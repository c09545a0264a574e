"""Geometry of the synthetic faces: identities' shapes, the mesh's vertices, expressions, teeth.

Every face is a triangle mesh (`mesh`) over `NUM_VERTICES`
vertices: the 68 dlib landmarks (dlib order) first, then a few points inside
the face (forehead, cheeks, chin), rings outside it (skull, neck) and a fixed
frame far beyond the image border. Vertices are (x, y) in normalized image
coordinates, the sampler's convention (align_corners=False: -1 and +1 are
the outer edges of the image, pixel centre i of S at (2i + 1) / S - 1; y
points down).

An identity's neutral face is its canonical mesh; an expression moves the
vertices (`deform`), linearly in its intensity, and a pose (a similarity)
moves all but the frame. What shows through the eye and mouth openings does
not move with the mesh: eyeballs and upper teeth are fixed to the skull
(they follow the pose), lower teeth and tongue to the jaw (`MouthModel`).
"""

import dataclasses
import enum
import functools

import cv2
import numpy as np

from fvae_tf import face_template
from fvae_tf.expressions import EXPRESSIONS
from fvae_tf.warp import coordinates

NUM_LANDMARKS = face_template.NUM_LANDMARKS
LEFT_EYE = tuple(range(36, 42))  # the eye on the image's left, dlib 36-41
RIGHT_EYE = tuple(range(42, 48))
INNER_LIPS = tuple(range(60, 68))
_UPPER_LIDS = (37, 38, 43, 44)
_LOWER_LIDS = (41, 40, 47, 46)  # below 37, 38, 43, 44 respectively


class Crease(enum.IntEnum):
    """Expression wrinkles, drawn in the neutral face, faded in per expression."""

    FOREHEAD = 0
    NASOLABIAL = 1
    CROWS_FEET = 2
    GLABELLA = 3
    NOSE = 4
    UNDER_EYE = 5


# Extra vertices after the landmarks: name -> (x, y) relative placement is
# computed in `neutral_vertices`; this fixes their indices.
_FOREHEAD = (68, 69, 70)  # left, centre, right
_CHEEK_HIGH = (71, 72)
_CHEEK_LOW = (73, 74)
_CHIN = (75, 76, 77)  # centre, left, right
SKULL = tuple(range(78, 85))  # arc over the head, left to right
_JAW_RING = tuple(range(85, 94))  # outside jaw landmarks 0, 2, ..., 16
_SKULL_RING = tuple(range(94, 101))  # outside the skull arc
_FRAME = tuple(range(101, 117))  # fixed, beyond the image border
NUM_VERTICES = 117
_FRAME_HALF_SIZE = 2.0


@dataclasses.dataclass(frozen=True)
class FaceShape:
    """An identity's proportions, as factors and offsets on the alignment template."""

    face_width: float = 1.0  # x scale of the jaw line
    face_length: float = 1.0  # y scale below the eyes
    jaw_square: float = 0.0  # > 0 widens the lower jaw
    eye_spacing: float = 0.0  # added to each eye's distance from the midline
    eye_size: float = 1.0
    eye_opening: float = 1.0  # vertical scale of the eyes
    eye_tilt: float = 0.0  # outer corners up by this much
    brow_height: float = 0.0  # brows up by this much
    brow_arch: float = 0.0  # brow middles up by this much
    nose_length: float = 1.0
    nose_width: float = 1.0
    mouth_width: float = 1.0
    mouth_shift: float = 0.0  # mouth down by this much
    upper_lip: float = 1.0  # lip thickness factors
    lower_lip: float = 1.0
    forehead: float = 0.7  # skull top above the brows
    jitter: tuple[float, ...] = ()  # [68 * 2] small per-landmark offsets


def sample_shape(rng: np.random.Generator) -> FaceShape:
    """Draws an identity's proportions (uniform within plausible ranges)."""
    u = rng.uniform
    return FaceShape(
        face_width=u(0.92, 1.08), face_length=u(0.94, 1.06), jaw_square=u(-0.05, 0.06),
        eye_spacing=u(-0.025, 0.025), eye_size=u(0.9, 1.12), eye_opening=u(0.9, 1.3),
        eye_tilt=u(-0.01, 0.02), brow_height=u(-0.02, 0.03), brow_arch=u(-0.01, 0.025),
        nose_length=u(0.9, 1.12), nose_width=u(0.85, 1.2), mouth_width=u(0.9, 1.15),
        mouth_shift=u(-0.015, 0.02), upper_lip=u(0.75, 1.25), lower_lip=u(0.8, 1.25),
        forehead=u(0.6, 0.75), jitter=tuple(rng.normal(0.0, 0.003, NUM_LANDMARKS * 2)),
    )


def _scale_about(points: np.ndarray, centre: np.ndarray, sx: float, sy: float) -> np.ndarray:
    return centre + (points - centre) * (sx, sy)


def neutral_landmarks(shape: FaceShape) -> np.ndarray:
    """The 68 neutral landmarks of an identity, lips closed.

    Starts from the alignment template (so synthetic faces are already near
    the canonical crop) and applies the shape's factors.

    Returns:
      float64 [68, 2], normalized image coordinates.
    """
    lm = face_template.canonical_template()
    eye_y = -0.2
    lm[:17, 0] *= shape.face_width
    lm[:, 1] = np.where(lm[:, 1] > eye_y, eye_y + (lm[:, 1] - eye_y) * shape.face_length, lm[:, 1])
    lm[3:14, 0] *= 1.0 + shape.jaw_square * np.sin(np.linspace(0, np.pi, 11)) ** 2
    for eye, side in ((LEFT_EYE, -1.0), (RIGHT_EYE, 1.0)):
        idx = list(eye)
        centre = lm[idx].mean(axis=0)
        lm[idx] = _scale_about(lm[idx], centre, shape.eye_size, shape.eye_size * shape.eye_opening)
        lm[idx, 1] -= shape.eye_tilt * side * (lm[idx, 0] - centre[0]) / 0.11  # outer corner up
        lm[idx, 0] += side * shape.eye_spacing
    brows = list(range(17, 27))
    lm[brows, 0] += np.sign(lm[brows, 0]) * shape.eye_spacing
    arch = np.array([0, 1, 1, 0.5, 0, 0, 0.5, 1, 1, 0])  # outer to inner, inner to outer
    lm[brows, 1] -= shape.brow_height + shape.brow_arch * arch
    nose = list(range(28, 36))
    lm[nose, 1] = lm[27, 1] + (lm[nose, 1] - lm[27, 1]) * shape.nose_length
    lm[31:36, 0] *= shape.nose_width
    mouth = list(range(48, 68))
    lm[mouth, 0] *= shape.mouth_width
    lm[mouth, 1] += shape.mouth_shift
    line = lm[[60, 61, 62, 63, 64, 65, 66, 67]].copy()
    closed = (line[[1, 2, 3]] + line[[7, 6, 5]]) / 2  # lips closed: 61-63 on 67-65
    lm[[61, 62, 63]] = closed
    lm[[67, 66, 65]] = closed
    lip_line_y = np.interp(lm[48:55, 0], lm[60:65, 0], lm[60:65, 1])
    lm[48:55, 1] = lip_line_y + (lm[48:55, 1] - lip_line_y) * shape.upper_lip
    lower = [54, 55, 56, 57, 58, 59, 48]
    lower_line_y = np.interp(lm[lower, 0], lm[60:65, 0], lm[60:65, 1])
    lm[lower, 1] = lower_line_y + (lm[lower, 1] - lower_line_y) * shape.lower_lip
    if shape.jitter:
        jitter = np.asarray(shape.jitter).reshape(NUM_LANDMARKS, 2)
        jitter[[65, 66, 67]] = jitter[[63, 62, 61]]  # keep the lips closed
        lm += jitter
    return lm


def neutral_vertices(landmarks: np.ndarray, forehead: float = 0.7) -> np.ndarray:
    """The full neutral mesh around 68 landmarks.

    Args:
      landmarks: float [68, 2], normalized.
      forehead: height of the skull arc's top above the brows.

    Returns:
      float64 [NUM_VERTICES, 2].
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    v = np.zeros((NUM_VERTICES, 2))
    v[:NUM_LANDMARKS] = lm
    brow_y = lm[17:27, 1].min()
    v[list(_FOREHEAD)] = [(lm[19, 0], brow_y - 0.22), (0.0, brow_y - 0.24),
                          (lm[24, 0], brow_y - 0.22)]
    v[list(_CHEEK_HIGH)] = [(lm[41, 0] - 0.06, lm[30, 1]), (lm[46, 0] + 0.06, lm[30, 1])]
    v[list(_CHEEK_LOW)] = [lm[48] + (-0.11, -0.06), lm[54] + (0.11, -0.06)]
    chin_y = (lm[57, 1] + lm[8, 1]) / 2
    v[list(_CHIN)] = [(0.0, chin_y), (lm[58, 0] - 0.08, chin_y - 0.02),
                      (lm[56, 0] + 0.08, chin_y - 0.02)]
    width = (lm[16, 0] - lm[0, 0]) / 2 + 0.02
    top_y = (lm[0, 1] + lm[16, 1]) / 2
    height = top_y - (brow_y - forehead)
    angles = np.pi * np.arange(7, 0, -1) / 8  # left to right over the top
    v[list(SKULL)] = np.stack([width * np.cos(angles), top_y - height * np.sin(angles)], axis=1)
    centre = np.array([0.0, top_y])
    for ring, inner, offset in ((_JAW_RING, lm[0:17:2], 0.22), (_SKULL_RING, v[list(SKULL)], 0.2)):
        direction = inner - centre
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        v[list(ring)] = inner + offset * direction
    h = _FRAME_HALF_SIZE
    side = np.linspace(-h, h, 5)  # a square of 16 points, clockwise from the top-left corner
    v[list(_FRAME)] = ([(x, -h) for x in side] + [(h, y) for y in side[1:]]
                       + [(x, h) for x in side[-2::-1]] + [(-h, y) for y in side[-2:0:-1]])
    return v


def _mirror() -> np.ndarray:
    """Index of every vertex's left-right mirror image."""
    mirror = np.arange(NUM_VERTICES)
    mirror[:NUM_LANDMARKS] = face_template.MIRROR_PERMUTATION
    for group in (_FOREHEAD, _CHEEK_HIGH, _CHEEK_LOW, SKULL, _JAW_RING, _SKULL_RING):
        mirror[list(group)] = group[::-1]  # each group runs left to right
    mirror[list(_CHIN)] = (75, 77, 76)
    return mirror


MIRROR = _mirror()

# How much of the jaw's drop each vertex follows: the jaw line most at the
# chin, the lower lip fully, the mouth corners halfway.
JAW_WEIGHT = np.zeros(NUM_VERTICES)
JAW_WEIGHT[:17] = np.sin(np.linspace(0, np.pi, 17)) ** 2
JAW_WEIGHT[[55, 56, 57, 58, 59, 65, 66, 67]] = 1.0
JAW_WEIGHT[[48, 54, 60, 64]] = 0.45
JAW_WEIGHT[list(_CHIN)] = (1.0, 0.85, 0.85)
JAW_WEIGHT[list(_JAW_RING)] = 0.6 * JAW_WEIGHT[0:17:2]
JAW_WEIGHT[list(_CHEEK_LOW)] = 0.2


@dataclasses.dataclass(frozen=True)
class Expression:
    """One expression at intensity 1, on a neutral face.

    Attributes:
      moves: (vertices, outward, down) triples: each listed vertex and its
        mirror move `outward` away from the midline and `down` (normalized
        units; negative is inward / up).
      close_upper: fraction of the eye opening the upper lids come down.
      close_lower: fraction the lower lids come up.
      jaw: jaw drop (normalized units), weighted by `JAW_WEIGHT`.
      creases: {Crease: weight in [0, 1]}.
    """

    moves: tuple[tuple[tuple[int, ...], float, float], ...] = ()
    close_upper: float = 0.0
    close_lower: float = 0.0
    jaw: float = 0.0
    creases: tuple[tuple[Crease, float], ...] = ()


EXPRESSION_SHAPES = {
    "neutral": Expression(),
    "smile": Expression(
        moves=(((48, 60), 0.045, -0.06), ((49,), 0.03, -0.035), ((50,), 0.012, -0.018),
               ((51,), 0.0, -0.012), ((61,), 0.025, -0.03), ((62,), 0.0, -0.022),
               ((67,), 0.025, 0.01), ((66,), 0.0, 0.018), ((59,), 0.035, -0.02),
               ((58,), 0.015, 0.0), ((31,), 0.01, -0.006), ((32,), 0.005, -0.004),
               (_CHEEK_HIGH[:1], 0.01, -0.035), (_CHEEK_LOW[:1], 0.035, -0.04),
               ((41, 40), 0.0, -0.012), ((36,), 0.0, -0.006)),
        jaw=0.02, creases=((Crease.NASOLABIAL, 1.0), (Crease.CROWS_FEET, 0.6),
                           (Crease.UNDER_EYE, 0.5))),
    "surprise": Expression(
        moves=(((17,), 0.0, -0.065), ((18,), 0.0, -0.085), ((19,), 0.0, -0.095),
               ((20,), 0.0, -0.09), ((21,), 0.005, -0.08), (_FOREHEAD[:2], 0.0, -0.035),
               ((37, 38), 0.0, -0.03), ((36, 39), 0.0, -0.006), ((41, 40), 0.0, 0.008),
               ((48, 60), -0.045, 0.03), ((49,), -0.025, -0.008), ((50,), -0.008, -0.012),
               ((51,), 0.0, -0.012), ((61,), -0.022, -0.012), ((62,), 0.0, -0.014),
               ((59,), -0.03, 0.0), ((58,), -0.012, 0.0), ((67,), -0.02, 0.0),
               (_CHEEK_HIGH[:1], -0.01, 0.01), (_CHEEK_LOW[:1], -0.02, 0.02)),
        jaw=0.11, creases=((Crease.FOREHEAD, 1.0),)),
    "squint": Expression(
        moves=(((17,), 0.0, 0.015), ((18, 19), 0.0, 0.025), ((20,), -0.005, 0.03),
               ((21,), -0.01, 0.032), ((36,), 0.0, -0.006), (_CHEEK_HIGH[:1], 0.0, -0.03),
               (_CHEEK_LOW[:1], 0.005, -0.015), ((31,), 0.005, -0.008), ((48, 60), 0.008, -0.01)),
        close_upper=0.6, close_lower=0.15,
        creases=((Crease.CROWS_FEET, 1.0), (Crease.UNDER_EYE, 1.0), (Crease.GLABELLA, 0.5))),
    "disgust": Expression(
        moves=(((17,), 0.0, 0.01), ((18,), 0.0, 0.018), ((19,), -0.005, 0.028),
               ((20,), -0.012, 0.036), ((21,), -0.02, 0.04), ((29,), 0.0, -0.01),
               ((30,), 0.0, -0.02), ((31,), 0.015, -0.035), ((32,), 0.006, -0.03),
               ((33,), 0.0, -0.026), ((49,), 0.005, -0.035), ((50,), 0.0, -0.045),
               ((51,), 0.0, -0.042), ((61,), 0.0, -0.04), ((62,), 0.0, -0.04),
               ((48, 60), -0.01, 0.008), ((58, 57), 0.0, -0.012), ((67, 66), 0.0, -0.008),
               (_CHEEK_HIGH[:1], 0.0, -0.02), (_CHEEK_LOW[:1], 0.0, -0.015)),
        close_upper=0.3, close_lower=0.12,
        creases=((Crease.NOSE, 1.0), (Crease.GLABELLA, 1.0), (Crease.NASOLABIAL, 0.8))),
    "scream": Expression(
        moves=(((48, 60), 0.04, 0.035), ((49,), 0.02, -0.03), ((50,), 0.005, -0.04),
               ((51,), 0.0, -0.035), ((61,), 0.02, -0.045), ((62,), 0.0, -0.045),
               ((59,), 0.03, 0.015), ((58,), 0.01, 0.02), ((57,), 0.0, 0.02), ((67,), 0.02, 0.04),
               ((66,), 0.0, 0.045),
               ((18,), 0.0, 0.01), ((19,), 0.0, 0.02), ((20,), -0.01, 0.03), ((21,), -0.02, 0.035),
               ((31,), 0.015, -0.02), ((32,), 0.005, -0.012), (_CHEEK_HIGH[:1], 0.01, -0.03),
               (_CHEEK_LOW[:1], 0.03, -0.01)),
        close_upper=0.75, close_lower=0.15, jaw=0.15,
        creases=((Crease.NASOLABIAL, 1.0), (Crease.GLABELLA, 1.0), (Crease.CROWS_FEET, 1.0),
                 (Crease.NOSE, 0.6), (Crease.UNDER_EYE, 0.6))),
}
assert tuple(EXPRESSION_SHAPES) == EXPRESSIONS


def expression_offsets(neutral: np.ndarray, expression: str) -> tuple[np.ndarray, float]:
    """Vertex offsets of an expression at intensity 1, and its jaw drop.

    Args:
      neutral: float [NUM_VERTICES, 2], the identity's neutral mesh.
      expression: one of `EXPRESSIONS`.

    Returns:
      (offsets float64 [NUM_VERTICES, 2], jaw drop); the frame never moves.
    """
    spec = EXPRESSION_SHAPES[expression]
    offsets = np.zeros((NUM_VERTICES, 2))
    for vertices, outward, down in spec.moves:
        for i in vertices:
            offsets[i] += (-outward, down)
            if MIRROR[i] != i:
                offsets[MIRROR[i]] += (outward, down)
    upper, lower = list(_UPPER_LIDS), list(_LOWER_LIDS)
    gap = neutral[lower, 1] - neutral[upper, 1]
    offsets[upper, 1] += spec.close_upper * gap
    offsets[lower, 1] -= spec.close_lower * gap
    offsets[:, 1] += spec.jaw * JAW_WEIGHT
    offsets[:17, 0] -= np.sign(neutral[:17, 0]) * 0.2 * spec.jaw * JAW_WEIGHT[:17]
    return offsets, spec.jaw


def crease_weights(expression: str, intensity: float) -> np.ndarray:
    """float64 [len(Crease)] wrinkle weights of an expression at an intensity."""
    weights = np.zeros(len(Crease))
    for crease, weight in EXPRESSION_SHAPES[expression].creases:
        weights[crease] = weight * intensity
    return weights


def pose_matrix(angle: float = 0.0, scale: float = 1.0, shift: tuple[float, float] = (0.0, 0.0)
                ) -> np.ndarray:
    """A similarity canonical -> image (normalized): rotate, scale about the origin, then shift.

    Args:
      angle: radians.
      scale: factor.
      shift: (x, y), normalized units.

    Returns:
      float64 [2, 3].
    """
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, shift[0]], [s, c, shift[1]]])


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """[2, 3] affine applied to float [..., 2] points."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a [2, 3] affine map, float64 [2, 3]."""
    return cv2.invertAffineTransform(np.asarray(matrix, np.float64))


def deform(neutral: np.ndarray, expression: str, intensity: float, pose: np.ndarray
           ) -> tuple[np.ndarray, float]:
    """An identity's mesh in an expression and pose.

    Offsets are linear in the intensity (0 is the neutral face); the pose
    moves every vertex but the frame.

    Args:
      neutral: float [NUM_VERTICES, 2].
      expression: one of `EXPRESSIONS`.
      intensity: in [0, 1].
      pose: float [2, 3], canonical -> image (`pose_matrix`).

    Returns:
      (vertices float64 [NUM_VERTICES, 2] in image coords, jaw drop in
      canonical units).
    """
    offsets, jaw = expression_offsets(neutral, expression)
    vertices = neutral + intensity * offsets
    moving = slice(0, _FRAME[0])
    vertices[moving] = apply_affine(pose, vertices[moving])
    return vertices, jaw * intensity


@functools.lru_cache(maxsize=8)
def pixel_grid(size: int) -> np.ndarray:
    """Normalized centres of a size x size image's pixels, row-major: float64 [S * S, 2].

    Cached, hence read-only.
    """
    axis = coordinates.pixel_centres(size)
    ys, xs = np.meshgrid(axis, axis, indexing="ij")
    grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
    grid.setflags(write=False)
    return grid


@dataclasses.dataclass(frozen=True)
class MouthModel:
    """Teeth and tongue behind the lips, in canonical (neutral-face) coordinates.

    The upper teeth and the dark mouth cavity are fixed to the skull; the
    lower teeth and the tongue to the jaw, which is the skull shifted down by
    the jaw drop. At rest the upper incisors end just below the lip line, in
    front of the lower ones; the tongue lies behind the lower teeth.
    """

    centre_x: float
    lip_line: float  # y of the closed lips at the centre
    half_width: float  # of the upper teeth row
    upper_height: float  # of the upper incisors
    lower_height: float  # of the lower incisors

    _OVERBITE = 0.012  # the upper incisors' edge below the lip line

    def as_array(self) -> np.ndarray:
        return np.array(dataclasses.astuple(self), np.float64)

    @property
    def tongue_centre(self) -> float:
        """y of the tongue's centre (jaw frame)."""
        return self.lip_line + 0.055

    def upper_teeth(self, points: np.ndarray) -> np.ndarray:
        """bool [N]: canonical points on the upper teeth (the arch rises to the sides)."""
        t = (points[:, 0] - self.centre_x) / self.half_width
        bottom = self.lip_line + self._OVERBITE - 0.02 * t**2
        y = points[:, 1]
        return (np.abs(t) <= 1) & (y >= bottom - self.upper_height) & (y <= bottom)

    def lower_teeth(self, points: np.ndarray) -> np.ndarray:
        """bool [N]: jaw-frame points on the lower teeth."""
        t = (points[:, 0] - self.centre_x) / (0.88 * self.half_width)
        top = self.lip_line - 0.015 * t**2
        return (np.abs(t) <= 1) & (points[:, 1] >= top) & (points[:, 1] <= top + self.lower_height)

    def tongue(self, points: np.ndarray) -> np.ndarray:
        """bool [N]: jaw-frame points on the tongue."""
        dx = (points[:, 0] - self.centre_x) / (0.75 * self.half_width)
        dy = (points[:, 1] - self.tongue_centre) / 0.05
        return dx**2 + dy**2 <= 1


def make_mouth(landmarks: np.ndarray, rng: np.random.Generator) -> MouthModel:
    """An identity's teeth, fitted to its neutral lips."""
    return MouthModel(
        centre_x=float(landmarks[62, 0]), lip_line=float(landmarks[62, 1]),
        half_width=float(0.47 * (landmarks[64, 0] - landmarks[60, 0])),
        upper_height=float(rng.uniform(0.05, 0.065)), lower_height=float(rng.uniform(0.04, 0.05)))
