"""Pasting an edited face back into its photo, at the photo's own resolution.

The network edits a 64x64 aligned crop; `alignment`'s `transform` T maps
photo pixels to the crop's normalized coordinates. Instead of pasting a
resampled crop (which would carry the crop's resolution into the photo), the
edit's flow is composed with the alignment and the original photo itself is
sampled: for every photo pixel P near the face,

    u  = T(P)                 where P sits in the crop (normalized coords)
    u' = u + disp(u)          where the edited crop reads from; disp is the
                              decoded field minus the identity grid, bilinear
                              in u (`sampler.upsample_flow` evaluated at u)
    P' = T^-1(u')             the same point in the photo
    edited(P) = photo(P')     bilinear, edges replicated

and the result is blended into the photo with a feathered mask around the
face (`face_mask`), 1 on the face and 0 from the crop border on. An identity
flow gives P' = P up to float64 rounding, so it returns the photo unchanged.

Photo pixels follow OpenCV (pixel centres at integers); crop coordinates are
the sampler's (normalized (x, y) in [-1, 1], align_corners=False).
"""

import dataclasses

import cv2
import numpy as np
import tensorflow as tf

from fvae_tf.warp import sampler

# Defaults of `face_mask`, in normalized crop units (the crop is 2 wide).
MASK_MARGIN = 0.05  # the mask is 1 this far outside the landmarks' hull
MASK_FEATHER = 0.15  # then falls smoothly to 0 over this distance


@dataclasses.dataclass(frozen=True)
class Region:
    """A box of photo pixels, half-open: columns x0..x1-1, rows y0..y1-1."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """(rows, columns) for indexing an [H, W, ...] array."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def empty(self) -> bool:
        return self.x1 <= self.x0 or self.y1 <= self.y0


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def face_mask(landmarks_aligned: np.ndarray, size: int, margin: float = MASK_MARGIN,
              feather: float = MASK_FEATHER) -> np.ndarray:
    """The blend mask in crop space: 1 on the face, 0 at the crop border.

    1 inside the convex hull of the landmarks dilated by `margin`, falling
    to 0 (smoothstep) over the next `feather`; multiplied by a ramp that is 0
    at the crop's outermost pixel centres and 1 from `feather` inward, so the
    mask never reaches the crop's edge.

    Args:
      landmarks_aligned: float [68, 2], normalized crop coordinates.
      size: side of the mask in pixels.
      margin, feather: normalized crop units (the crop spans 2).

    Returns:
      float32 [size, size] in [0, 1].
    """
    pixels = ((np.asarray(landmarks_aligned, np.float64) + 1.0) * size - 1.0) / 2.0
    shift = 4  # fillConvexPoly's fractional bits
    hull = cv2.convexHull(np.round(pixels * (1 << shift)).astype(np.int32))
    outside = np.full((size, size), 255, np.uint8)
    cv2.fillConvexPoly(outside, hull, 0, lineType=cv2.LINE_8, shift=shift)
    # Distance to the nearest hull pixel, converted to normalized units.
    distance = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) * (2.0 / size)
    face = 1.0 - _smoothstep((distance - margin) / feather)
    centres = (2.0 * np.arange(size) + 1.0) / size - 1.0
    edge = 1.0 - np.maximum(np.abs(centres)[:, None], np.abs(centres)[None, :]) - 1.0 / size
    return (face * _smoothstep(edge / feather)).astype(np.float32)


def face_region(transform: np.ndarray, mask: np.ndarray,
                photo_shape: tuple[int, ...]) -> Region:
    """The photo pixels that `mask` (crop space) can touch.

    Args:
      transform: float [2, 3], photo pixels -> normalized crop coordinates.
      mask: [S, S] crop-space blend mask (`face_mask`).
      photo_shape: (H, W, ...) of the photo.

    Returns:
      The bounding box, in the photo, of the mask's support, clipped to the photo.
    """
    height, width = photo_shape[:2]
    rows, cols = np.nonzero(np.asarray(mask) > 0)
    if rows.size == 0:
        return Region(0, 0, 0, 0)
    size = mask.shape[0]
    # Outer edges of the outermost support pixels, normalized.
    left, right = 2.0 * cols.min() / size - 1.0, 2.0 * (cols.max() + 1) / size - 1.0
    top, bottom = 2.0 * rows.min() / size - 1.0, 2.0 * (rows.max() + 1) / size - 1.0
    corners = np.array([[left, top], [right, top], [left, bottom], [right, bottom]])
    inverse = cv2.invertAffineTransform(np.asarray(transform, np.float64))
    points = corners @ inverse[:, :2].T + inverse[:, 2]
    x0, y0 = (int(v) - 1 for v in np.floor(points.min(axis=0)))
    x1, y1 = (int(v) + 2 for v in np.ceil(points.max(axis=0)))
    return Region(max(x0, 0), max(y0, 0), min(x1, width), min(y1, height))


def paste_flow(photo: np.ndarray, transform: np.ndarray, coords: np.ndarray,
               mask: np.ndarray) -> np.ndarray:
    """Applies a crop-space edit flow to the full photo (see the module docstring).

    Args:
      photo: uint8 [H, W, 3], the photo the face was aligned from.
      transform: float [2, 3], photo pixels -> normalized crop coordinates
        (`AlignedFace.transform`).
      coords: [h, w, 2] decoded sampling coordinates of the crop, normalized,
        target to source (e.g. `FVAE.decode_flow` at 64x64).
      mask: float [S, S] in [0, 1], crop-space blend mask (`face_mask`).

    Returns:
      uint8 [H, W, 3]: the photo, edited where the mask is positive and
      bit-identical to `photo` elsewhere.
    """
    photo = np.asarray(photo)
    transform = np.asarray(transform, np.float64)
    out = photo.copy()
    region = face_region(transform, mask, photo.shape)
    if region.empty:
        return out
    ys, xs = np.mgrid[region.y0:region.y1, region.x0:region.x1].astype(np.float64)
    u = np.stack([xs, ys], axis=-1) @ transform[:, :2].T + transform[:, 2]  # [h, w, 2]
    coords = tf.convert_to_tensor(coords, tf.float32)
    displacement = coords - sampler.identity_grid(coords.shape[0], coords.shape[1])
    where = tf.constant(u[None], tf.float32)
    moved = sampler.bilinear_sample(displacement[None], where, sampler.Border.CLAMP)
    alpha = sampler.bilinear_sample(tf.constant(mask, tf.float32)[None, :, :, None], where,
                                    sampler.Border.ZEROS)
    inverse = cv2.invertAffineTransform(transform)
    source = (u + moved[0].numpy()) @ inverse[:, :2].T + inverse[:, 2]  # photo pixels
    source = source.astype(np.float32)
    edited = cv2.remap(photo, source[..., 0], source[..., 1], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    alpha = alpha[0].numpy().astype(np.float64)
    original = photo[region.slices].astype(np.float64)
    blended = alpha * edited + (1.0 - alpha) * original
    out[region.slices] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    return out
