"""Drawing of the synthetic faces' canonical layers from OpenCV primitives.

An identity is drawn once per image size, in its neutral canonical frame
(normalized coordinates, see `geometry`), as five layers that
`fvae_tf.synthetic.faces.render` warps into every expression:

  skin         the face, hair, neck and background: everything the mesh moves;
  creases      one map per `Crease`, wrinkles an expression fades in;
  skull        what is seen through the openings and fixed to the skull:
               eyeballs, the dark mouth cavity and the gums;
  upper_teeth  RGBA, fixed to the skull, in front of everything in the mouth;
  lower        RGBA, tongue and lower teeth, fixed to the jaw.

Everything is drawn at `max(size, 256)` pixels and area-averaged down, and
all randomness is drawn in normalized coordinates or on fixed 256-pixel
grids, so an identity looks the same at every size. The per-pixel noise,
pores, freckles, stubble, hair strands and iris streaks are the high
frequencies a blurry method loses.
"""

import dataclasses
import enum

import cv2
import numpy as np

from fvae_tf.synthetic import geometry
from fvae_tf.synthetic.canvas import SHIFT, Canvas, noise, paint, spline
from fvae_tf.synthetic.geometry import Crease, MouthModel

_DRAW_SIZE = 256  # smallest drawing resolution; textures are defined on this grid


class HairStyle(enum.IntEnum):
    """Hair over the skull; LONG also falls behind the neck, FRINGE covers the forehead."""

    SHORT = 0
    LONG = 1
    FRINGE = 2
    BALD = 3


_SKIN_TONES = np.array([[250, 220, 195], [238, 193, 162], [222, 168, 128], [190, 132, 94],
                        [140, 90, 60], [92, 60, 42]]) / 255.0
_HAIR_COLOURS = np.array([[28, 22, 20], [62, 42, 30], [112, 76, 46], [196, 160, 104],
                          [150, 72, 38], [150, 148, 144]]) / 255.0
_IRIS_COLOURS = np.array([[86, 54, 32], [50, 34, 24], [70, 110, 160], [84, 122, 84],
                          [120, 100, 60], [110, 120, 130]]) / 255.0


@dataclasses.dataclass(frozen=True)
class Appearance:
    """An identity's colours and styles (RGB in [0, 1]) and its texture seed."""

    skin: tuple[float, float, float]
    lips: tuple[float, float, float]
    hair: tuple[float, float, float]
    iris: tuple[float, float, float]
    teeth: tuple[float, float, float]
    background: tuple[tuple[float, float, float], tuple[float, float, float]]
    shirt: tuple[float, float, float]
    hair_style: HairStyle
    hair_volume: float  # hair thickness over the skull
    hairline: float  # hairline height above the brows
    brow_thickness: float
    blush: float
    freckles: int  # number of freckles
    stubble: float  # darkening of the beard area, 0 for none
    crease_depth: float  # darkening of a full-strength wrinkle
    texture_seed: int


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """Draws an identity's colours, styles and texture seed."""
    def pick(palette, spread):
        i = rng.uniform(0, len(palette) - 1)
        low, high = palette[int(i)], palette[min(int(i) + 1, len(palette) - 1)]
        colour = (low + (high - low) * (i % 1)) * rng.uniform(1 - spread, 1 + spread, 3)
        return tuple(np.clip(colour, 0, 1))

    skin = np.array(pick(_SKIN_TONES, 0.04))
    lips = tuple(np.clip(skin * (0.78, 0.55, 0.55) + (0.08, 0.0, 0.02), 0, 1))
    hue = rng.uniform(0, 1, 3)
    return Appearance(
        skin=tuple(skin), lips=lips, hair=pick(_HAIR_COLOURS, 0.1), iris=pick(_IRIS_COLOURS, 0.1),
        teeth=tuple(np.clip((0.94, 0.91, 0.82) * rng.uniform(0.9, 1.02, 3), 0, 1)),
        background=(tuple(0.35 + 0.5 * hue), tuple(0.2 + 0.5 * rng.uniform(0, 1, 3))),
        shirt=tuple(rng.uniform(0.05, 0.9, 3)), hair_style=HairStyle(rng.integers(len(HairStyle))),
        hair_volume=rng.uniform(0.04, 0.14), hairline=rng.uniform(0.28, 0.4),
        brow_thickness=rng.uniform(0.8, 1.3), blush=rng.uniform(0.0, 0.25),
        freckles=int(rng.integers(20, 150)) if rng.random() < 0.4 else 0,
        stubble=rng.uniform(0.2, 0.45) if rng.random() < 0.35 else 0.0,
        crease_depth=rng.uniform(0.25, 0.4), texture_seed=int(rng.integers(2**31)),
    )


@dataclasses.dataclass(frozen=True)
class Layers:
    """An identity's canonical layers at one size (see the module docstring)."""

    skin: np.ndarray  # float32 [S, S, 3] RGB in [0, 1]
    creases: np.ndarray  # float32 [S, S, len(Crease)] in [0, 1]
    skull: np.ndarray  # float32 [S, S, 3]
    upper_teeth: np.ndarray  # float32 [S, S, 4] RGBA, skull frame
    lower: np.ndarray  # float32 [S, S, 4] RGBA, jaw frame


def draw_layers(appearance: Appearance, neutral: np.ndarray, mouth: MouthModel, size: int
                ) -> Layers:
    """Draws an identity's canonical layers.

    Args:
      appearance: colours, styles and texture seed.
      neutral: float [NUM_VERTICES, 2], the identity's neutral mesh.
      mouth: its teeth.
      size: output side in pixels.

    Returns:
      The layers at `size`.
    """
    draw = max(size, _DRAW_SIZE)
    canvas = Canvas(draw)
    rng = np.random.default_rng(appearance.texture_seed)
    skull = _draw_skull(canvas, appearance, neutral, mouth, rng)
    upper, lower = _draw_mouth(canvas, appearance, mouth, rng)
    skin = _draw_skin(canvas, appearance, neutral, skull, rng)
    creases = _draw_creases(canvas, neutral)
    if draw != size:
        def shrink(a):
            return cv2.resize(a, (size, size), interpolation=cv2.INTER_AREA).reshape(size, size, -1)
        skin, creases, skull, upper, lower = map(shrink, (skin, creases, skull, upper, lower))
    return Layers(skin=skin, creases=creases, skull=skull, upper_teeth=upper, lower=lower)


def _draw_skull(canvas: Canvas, app: Appearance, v: np.ndarray, mouth: MouthModel,
                rng: np.random.Generator) -> np.ndarray:
    """Eyeballs, the mouth cavity and gums: float32 [D, D, 3]."""
    size = canvas.size
    grid = canvas.grid().reshape(size, size, 2).astype(np.float32)
    centre = np.array([mouth.centre_x, mouth.lip_line + 0.06], np.float32)
    r = np.hypot((grid[..., 0] - centre[0]) / 0.3, (grid[..., 1] - centre[1]) / 0.15)
    img = (np.array([0.32, 0.09, 0.1], np.float32) * np.clip(1.1 - 0.6 * r, 0.35, 1)[..., None])
    gum = canvas.ellipse((mouth.centre_x, mouth.lip_line - mouth.upper_height - 0.01),
                         (1.25 * mouth.half_width, 0.035),
                         blur=0.008)
    paint(img, gum, (0.72, 0.36, 0.38))
    for eye in (geometry.LEFT_EYE, geometry.RIGHT_EYE):
        lm = v[list(eye)]
        c = lm.mean(axis=0)
        width = lm[:, 0].max() - lm[:, 0].min()
        sclera = canvas.ellipse(c, (0.62 * width, 0.09))
        d = np.hypot((grid[..., 0] - c[0]) / (0.62 * width), (grid[..., 1] - c[1]) / 0.09)
        shade = (np.float32(0.97) - 0.35 * np.clip(d, 0, 1) ** 2)[..., None]
        paint(img, sclera, np.array([0.96, 0.94, 0.9], np.float32) * shade)
        radius = 0.23 * width
        iris = np.zeros((size, size, 3), np.float32) + np.asarray(app.iris, np.float32)
        angles = rng.uniform(0, 2 * np.pi, 60)
        spokes = [np.array([c + 0.3 * radius * np.array([np.cos(a), np.sin(a)]),
                            c + radius * np.array([np.cos(a), np.sin(a)])]) for a in angles]
        paint(iris, canvas.lines(spokes[:30], 0.004), np.asarray(app.iris, np.float32) * 1.45)
        paint(iris, canvas.lines(spokes[30:], 0.004), np.asarray(app.iris, np.float32) * 0.55)
        ring = canvas.ellipse(c, (radius, radius)) - canvas.ellipse(c, (0.85 * radius,) * 2)
        paint(iris, np.clip(ring, 0, 1), np.asarray(app.iris, np.float32) * 0.35)
        paint(img, canvas.ellipse(c, (radius, radius)) * sclera, iris)
        paint(img, canvas.ellipse(c, (0.4 * radius,) * 2), (0.03, 0.03, 0.03))
        paint(img, canvas.ellipse(c + (-0.3 * radius, -0.35 * radius), (0.17 * radius,) * 2), 1.0)
    return img


def _draw_mouth(canvas: Canvas, app: Appearance, mouth: MouthModel, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """Upper teeth (skull frame) and tongue + lower teeth (jaw frame): two float32 [D, D, 4]."""
    size = canvas.size
    grid = canvas.grid()
    t = ((grid[:, 0] - mouth.centre_x) / mouth.half_width).reshape(size, size).astype(np.float32)
    teeth = np.asarray(app.teeth, np.float32)
    # Tooth edges at cumulative widths from the midline: incisors, canines, premolars.
    edges = np.cumsum([0.0, 0.24, 0.2, 0.19, 0.18, 0.19])
    gaps = [np.array([[s * mouth.half_width * e + mouth.centre_x, mouth.lip_line - 0.1],
                      [s * mouth.half_width * e + mouth.centre_x, mouth.lip_line + 0.1]])
            for e in edges for s in (-1, 1)]
    gap = canvas.lines(gaps, 0.004, blur=0.003)
    shade = (1.0 - 0.35 * np.clip(np.abs(t), 0, 1) ** 2)[..., None] * (1.0 - 0.3 * gap[..., None])

    def layer(mask: np.ndarray, colour: np.ndarray) -> np.ndarray:
        alpha = cv2.GaussianBlur(mask.reshape(size, size).astype(np.float32), (0, 0),
                                 canvas.px(0.002))
        return np.dstack([colour, alpha]).astype(np.float32)

    upper_rgb = teeth * shade * rng.uniform(0.97, 1.03)
    upper = layer(mouth.upper_teeth(grid), upper_rgb)
    tongue = mouth.tongue(grid).reshape(size, size)
    lower_teeth = mouth.lower_teeth(grid).reshape(size, size)
    dy = (grid[:, 1].reshape(size, size) - mouth.tongue_centre) / 0.05
    tongue_rgb = (np.array([0.78, 0.36, 0.4], np.float32)
                  * (1.0 - 0.35 * np.clip(np.hypot(t / 0.75, dy), 0, 1) ** 2)[..., None])
    lower_rgb = np.where(lower_teeth[..., None], teeth * 0.93 * shade, tongue_rgb)
    return upper, layer(tongue | lower_teeth, lower_rgb)


def _draw_skin(canvas: Canvas, app: Appearance, v: np.ndarray, skull: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    """The face's surface, hair, neck, shirt and background: float32 [D, D, 3]."""
    size = canvas.size
    lm = v[:geometry.NUM_LANDMARKS]
    grid = canvas.grid().reshape(size, size, 2).astype(np.float32)
    skin = np.asarray(app.skin, np.float32)
    top, bottom = (np.asarray(c, np.float32) for c in app.background)
    img = top + (bottom - top) * ((grid[..., 1:] + 1) / 2)
    img *= 1.0 + 0.05 * noise(rng, 8, size, 0.0)[..., None]

    paint(img, canvas.polygon([(-1.5, 1.6), (-1.3, 1.15), (-0.45, 0.98), (0.45, 0.98), (1.3, 1.15),
                                (1.5, 1.6)]), app.shirt)
    hair = _hair_texture(canvas, np.asarray(app.hair, np.float32), v, rng)
    dome = _hair_dome(v, app.hair_volume)
    if app.hair_style == HairStyle.LONG:
        back = np.vstack([[(dome[0, 0] - 0.1, 1.3)], dome, [(dome[-1, 0] + 0.1, 1.3)]])
        paint(img, canvas.polygon(back, blur=0.004), hair)

    neck = [(lm[4, 0] * 0.85, lm[4, 1] - 0.1), (lm[4, 0] * 0.8, 1.3), (lm[12, 0] * 0.8, 1.3),
            (lm[12, 0] * 0.85, lm[12, 1] - 0.1)]
    paint(img, canvas.polygon(neck), skin * 0.78)
    for side, jaw in ((-1, lm[1]), (1, lm[15])):
        ear = canvas.ellipse((jaw[0] + side * 0.02, jaw[1] - 0.02), (0.055, 0.12), -side * 8)
        paint(img, ear, skin * 0.9)
        paint(img, canvas.ellipse((jaw[0] + side * 0.03, jaw[1] - 0.02), (0.02, 0.07), -side * 8,
                                   blur=0.01), skin * 0.65)

    outline = np.vstack([lm[:17], v[list(geometry.SKULL)][::-1]])
    face = canvas.polygon(spline(outline, closed=True))
    inside = cv2.distanceTransform((face > 0.5).astype(np.uint8), cv2.DIST_L2, 5) / canvas.px(0.35)
    rounding = 0.74 + 0.26 * (1 - (1 - np.clip(inside, 0, 1)) ** 2)
    paint(img, face, skin * rounding[..., None])
    chin_shadow = canvas.polygon(spline(lm[3:14]) + (0, 0.05), blur=0.04) * (1 - face)
    img *= 1 - 0.3 * chin_shadow[..., None]

    skin_mask = np.clip(face + canvas.polygon(neck), 0, 1)
    _texture(canvas, img, app, lm, skin_mask, rng)
    _shading(canvas, img, app, lm)
    _lips(canvas, img, app, lm)
    _eyes(canvas, img, lm, skull)
    _brows(canvas, img, app, lm, rng)
    _nose(canvas, img, lm, skin)
    if app.hair_style != HairStyle.BALD:
        _front_hair(canvas, img, app, lm, dome, hair)
    return np.clip(img, 0, 1)


def _texture(canvas: Canvas, img: np.ndarray, app: Appearance, lm: np.ndarray,
             skin_mask: np.ndarray, rng: np.random.Generator) -> None:
    """Pores, fine grain, mottling, freckles and stubble, multiplied into the skin."""
    size = canvas.size
    grain = 0.04 * noise(rng, _DRAW_SIZE, size) + 0.03 * noise(rng, 32, size, 1.0)
    pores = (rng.random((_DRAW_SIZE, _DRAW_SIZE)) < 0.03).astype(np.float32)
    pores = cv2.resize(cv2.GaussianBlur(pores, (0, 0), 0.6), (size, size),
                       interpolation=cv2.INTER_LINEAR)
    factor = 1.0 + grain - 0.25 * pores
    if app.freckles:
        centres = rng.normal((0.0, 0.0), (0.25, 0.1), (app.freckles, 2)) + (0, lm[30, 1] - 0.05)
        freckles = np.zeros((size, size), np.uint8)
        for c, r in zip(canvas.fixed(centres), rng.uniform(0.004, 0.011, app.freckles)):
            cv2.circle(freckles, tuple(int(x) for x in c), int(canvas.px(r) * (1 << SHIFT)),
                       int(rng.integers(90, 255)), -1, cv2.LINE_AA, SHIFT)
        factor -= 0.28 * freckles.astype(np.float32) / 255.0
    if app.stubble:
        moustache = [lm[54] + (0.1, -0.1), lm[35] + (0.02, 0.03), lm[31] + (-0.02, 0.03),
                     lm[48] + (-0.1, -0.1)]
        beard = canvas.polygon(spline(np.vstack([lm[2:15], moustache]), closed=True), blur=0.03)
        beard *= 1 - canvas.polygon(spline(lm[48:60], closed=True))
        starts = rng.uniform(-0.7, 0.9, (6000, 2))
        angles = rng.normal(1.6, 0.5, 6000)
        lengths = rng.uniform(0.006, 0.012, (6000, 1))
        ends = starts + lengths * np.stack([np.cos(angles), np.sin(angles)], 1)
        hairs = canvas.lines(list(np.stack([starts, ends], axis=1)), 0.004)
        factor -= app.stubble * beard * (0.35 + hairs)
    img *= (1 + (factor - 1) * skin_mask)[..., None]


def _shading(canvas: Canvas, img: np.ndarray, app: Appearance, lm: np.ndarray) -> None:
    """Soft shadows and highlights of the face's relief, and blush."""
    dark = np.zeros((canvas.size, canvas.size), np.float32)
    for eye in (geometry.LEFT_EYE, geometry.RIGHT_EYE):
        centre = lm[list(eye)].mean(axis=0)
        dark += 0.25 * canvas.ellipse(centre + (0, -0.03), (0.13, 0.06), blur=0.03)  # socket
        dark += 0.12 * canvas.ellipse(centre + (0, 0.06), (0.09, 0.03), blur=0.025)  # under eye
    for wing, s in ((31, -1), (35, 1)):
        bridge_side = np.array([lm[27] + (s * 0.045, 0.04), lm[wing] + (0, -0.05)])
        dark += 0.35 * canvas.lines([bridge_side], 0.025, blur=0.02)
        alar_crease = spline([lm[wing] + (s * 0.005, -0.06), lm[wing] + (s * 0.02, -0.02),
                               lm[wing]])
        dark += 0.3 * canvas.lines([alar_crease], 0.008, blur=0.006)
    dark += 0.3 * canvas.ellipse(lm[33] + (0, 0.02), (0.07, 0.018), blur=0.012)
    dark += 0.25 * canvas.ellipse(lm[57] + (0, 0.05), (0.09, 0.025), blur=0.02)
    light = 0.2 * canvas.lines([np.array([lm[27] + (0, 0.05), lm[30]])], 0.02, blur=0.012)
    light += 0.15 * canvas.ellipse(lm[30] + (0, 0.005), (0.03, 0.02), blur=0.01)
    for cheek in (lm[41] + (-0.04, 0.16), lm[46] + (0.04, 0.16)):
        light += 0.1 * canvas.ellipse(cheek + (0, -0.06), (0.1, 0.05), blur=0.03)
        paint(img, app.blush * canvas.ellipse(cheek, (0.1, 0.07), blur=0.04), (0.85, 0.35, 0.35))
    img *= (1 - dark + light)[..., None]


def _lips(canvas: Canvas, img: np.ndarray, app: Appearance, lm: np.ndarray) -> None:
    lips = np.asarray(app.lips, np.float32)
    upper_outline = np.vstack([lm[48:55], lm[[64, 63, 62, 61, 60]]])
    lower_outline = np.vstack([lm[54:60], lm[[48, 60, 67, 66, 65, 64]]])
    upper = canvas.polygon(spline(upper_outline, closed=True), blur=0.003)
    lower = canvas.polygon(spline(lower_outline, closed=True), blur=0.003)
    paint(img, upper, lips * 0.82)
    paint(img, lower, lips)
    paint(img, 0.25 * canvas.ellipse(lm[57] + (0, -0.02), (0.05, 0.012), blur=0.008), 1.0)
    paint(img, 0.8 * canvas.lines([spline(lm[60:65])], 0.008, blur=0.002), lips * 0.35)
    for corner in (48, 54):
        paint(img, 0.5 * canvas.ellipse(lm[corner], (0.012, 0.008), blur=0.004), lips * 0.4)


def _eyes(canvas: Canvas, img: np.ndarray, lm: np.ndarray, skull: np.ndarray) -> None:
    """Eyeballs inside the openings, lashes, lids and lid creases."""
    for eye in (geometry.LEFT_EYE, geometry.RIGHT_EYE):
        e = lm[list(eye)]
        opening = canvas.polygon(spline(e, closed=True))
        paint(img, opening, skull)
        upper_lid = spline(e[[0, 1, 2, 3]])
        lower_lid = spline(e[[3, 4, 5, 0]])
        lid_crease = canvas.lines([upper_lid + (0, -0.035)], 0.008, blur=0.008)
        paint(img, 0.7 * lid_crease, (0.35, 0.22, 0.2))
        paint(img, 0.95 * canvas.lines([upper_lid], 0.016), (0.1, 0.07, 0.07))
        paint(img, 0.6 * canvas.lines([lower_lid], 0.007), (0.35, 0.25, 0.22))


def _brows(canvas: Canvas, img: np.ndarray, app: Appearance, lm: np.ndarray,
           rng: np.random.Generator) -> None:
    colour = np.asarray(app.hair, np.float32) * 0.8
    for brow in (lm[17:22], lm[26:21:-1]):  # outer to inner
        line = spline(brow)
        thick = np.linspace(0.012, 0.03, len(line))[:, None] * app.brow_thickness
        shape = np.vstack([line + (0, -1) * thick * 0.6, (line + (0, 1) * thick * 0.4)[::-1]])
        mask = canvas.polygon(shape, blur=0.004)
        paint(img, 0.8 * mask, colour)
        starts = line[rng.integers(len(line), size=120)] + rng.normal(0, 0.008, (120, 2))
        direction = np.sign(brow[4, 0] - brow[0, 0])
        angles = np.where(direction < 0, np.pi, 0) + rng.normal(0, 0.35, 120) - direction * 0.4
        ends = starts + 0.03 * np.stack([np.cos(angles), np.sin(angles)], 1)
        strokes = canvas.lines(list(np.stack([starts, ends], 1)), 0.004)
        paint(img, 0.7 * strokes * np.clip(mask * 1.5, 0, 1), colour * 0.6)


def _nose(canvas: Canvas, img: np.ndarray, lm: np.ndarray, skin: np.ndarray) -> None:
    for nostril, angle in ((lm[32] + (-0.012, -0.008), 20), (lm[34] + (0.012, -0.008), -20)):
        paint(img, 0.9 * canvas.ellipse(nostril, (0.022, 0.01), angle, blur=0.004), skin * 0.25)


def _hair_dome(v: np.ndarray, volume: float) -> np.ndarray:
    """The hair's outer edge over the skull, left ear to right ear: float64 [M, 2]."""
    lm = v[:geometry.NUM_LANDMARKS]
    skull = v[list(geometry.SKULL)]
    centre = np.array([0.0, (lm[0, 1] + lm[16, 1]) / 2])
    points = np.vstack([[lm[0] + (-0.03, 0.02)], skull, [lm[16] + (0.03, 0.02)]])
    direction = points - centre
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    return spline(points + volume * direction)


def _hair_texture(canvas: Canvas, colour: np.ndarray, v: np.ndarray, rng: np.random.Generator
                  ) -> np.ndarray:
    """Strands combed from the crown, in `colour`: float32 [D, D, 3]."""
    hair = np.zeros((canvas.size, canvas.size, 3), np.float32) + colour * 0.85
    crown = np.array([0.0, v[list(geometry.SKULL), 1].min() + 0.1])
    for shade in (0.55, 1.35, 0.7, 1.2, 0.85):
        starts = rng.uniform(-1.1, 1.1, (700, 2)) + (0, -0.2)
        points = [starts]
        for _ in range(4):
            direction = points[-1] - crown
            direction /= np.linalg.norm(direction, axis=1, keepdims=True)
            points.append(points[-1] + 0.06 * direction + rng.normal(0, 0.006, (700, 2)))
        strands = canvas.lines(list(np.stack(points, 1)), 0.004)
        paint(hair, 0.45 * strands, np.clip(colour * shade + 0.04 * (shade - 1), 0, 1))
    return hair


def _front_hair(canvas: Canvas, img: np.ndarray, app: Appearance, lm: np.ndarray, dome: np.ndarray,
                hair: np.ndarray) -> None:
    """Hair over the top of the head down to the hairline, or to a fringe."""
    brow_y = lm[17:27, 1].min()
    top = brow_y - (0.12 if app.hair_style == HairStyle.FRINGE else app.hairline)
    left, right = lm[0] + (0.03, -0.02), lm[16] + (-0.03, -0.02)
    hairline = spline([right, (right[0] - 0.1, top + 0.07), (0.0, top),
                        (left[0] + 0.1, top + 0.07), left])
    if app.hair_style == HairStyle.FRINGE:  # ragged tips
        hairline[:, 1] += 0.015 * np.sin(np.linspace(0, 40, len(hairline)))
    mask = canvas.polygon(np.vstack([dome, hairline]), blur=0.005)
    paint(img, mask, hair)


def _draw_creases(canvas: Canvas, v: np.ndarray) -> np.ndarray:
    """One map per `Crease`, float32 [D, D, len(Crease)], each peaking at 1."""
    lm = v[:geometry.NUM_LANDMARKS]
    brow_y = lm[17:27, 1].min()
    lines = {crease: [] for crease in Crease}
    for k, dy in enumerate((0.08, 0.14, 0.2)):
        x = np.linspace(-0.28 + 0.03 * k, 0.28 - 0.03 * k, 5)
        lines[Crease.FOREHEAD].append(np.stack([x, brow_y - dy + 0.04 * (x / 0.3) ** 2], 1))
    for s, wing, corner, eye in ((-1, 31, 48, 36), (1, 35, 54, 45)):
        lines[Crease.NASOLABIAL].append(spline([lm[wing] + (s * 0.03, -0.04),
                                                 lm[corner] + (s * 0.06, -0.03),
                                                 lm[corner] + (s * 0.035, 0.07)]))
        for angle in (-0.45, 0.0, 0.45):
            d = np.array([s * np.cos(angle), np.sin(angle)])
            lines[Crease.CROWS_FEET].append(np.array([lm[eye] + 0.025 * d, lm[eye] + 0.08 * d]))
        for k in range(3):
            y = lm[28, 1] - 0.03 + 0.025 * k
            lines[Crease.NOSE].append(np.array([(s * 0.025, y), (s * 0.08, y + 0.025)]))
        lower_lid = lm[[36, 41, 40, 39]] if s < 0 else lm[[42, 47, 46, 45]]
        lines[Crease.UNDER_EYE].append(spline(lower_lid) + (0, 0.045))
        x = s * 0.03
        lines[Crease.GLABELLA].append(np.array([(x, lm[21, 1] - 0.03),
                                                (x * 0.8, lm[21, 1] + 0.07)]))
    maps = [canvas.lines(lines[c], 0.006, blur=0.005) for c in Crease]
    return np.dstack([m / max(float(m.max()), 1e-6) for m in maps]).astype(np.float32)
