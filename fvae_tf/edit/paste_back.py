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

from fvae_tf.data import alignment
from fvae_tf.warp import coordinates, sampler

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
    pixels = coordinates.to_pixels(np.asarray(landmarks_aligned, np.float64), size)
    shift = 4  # fillConvexPoly's fractional bits
    hull = cv2.convexHull(np.round(pixels * (1 << shift)).astype(np.int32))
    outside = np.full((size, size), 255, np.uint8)
    cv2.fillConvexPoly(outside, hull, 0, lineType=cv2.LINE_8, shift=shift)
    # Distance to the nearest hull pixel, converted to normalized units.
    distance = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) * (2.0 / size)
    face = 1.0 - _smoothstep((distance - margin) / feather)
    centres = coordinates.pixel_centres(size)
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
    # Outer edges of the outermost support pixels (pixel i spans i - 0.5 to i + 0.5), normalized.
    left, right = coordinates.to_normalized(np.array([cols.min(), cols.max() + 1]) - 0.5, size)
    top, bottom = coordinates.to_normalized(np.array([rows.min(), rows.max() + 1]) - 0.5, size)
    corners = np.array([[left, top], [right, top], [left, bottom], [right, bottom]])
    inverse = cv2.invertAffineTransform(np.asarray(transform, np.float64))
    points = corners @ inverse[:, :2].T + inverse[:, 2]
    x0, y0 = (int(v) - 1 for v in np.floor(points.min(axis=0)))
    x1, y1 = (int(v) + 2 for v in np.ceil(points.max(axis=0)))
    return Region(max(x0, 0), max(y0, 0), min(x1, width), min(y1, height))


def paste_flow(photo: np.ndarray, transform: np.ndarray, coords: np.ndarray,
               mask: np.ndarray) -> np.ndarray:
    """Applies a crop-space edit flow to the full photo (see the module docstring).

    Works in the face's bounding box only (`face_region`), so its cost grows
    with the face's area in the photo, not the photo's. The displacement is
    upsampled 4x in crop space by the sampler (bilinear, exact) and then read
    at every photo pixel by `cv2.warpAffine` with the alignment's transform,
    as is the mask; OpenCV's 1/32-pixel position steps then fall on a grid
    4x finer than the decoded field's.

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
    size = (region.x1 - region.x0, region.y1 - region.y0)
    # Photo pixels of the region -> normalized crop coordinates u.
    to_crop = transform.copy()
    to_crop[:, 2] += transform[:, :2] @ [region.x0, region.y0]

    def read_at_u(field: np.ndarray, border: int) -> np.ndarray:
        """`field` [n, n, C] (crop space) at u of every region pixel: [h, w, C]."""
        warped = cv2.warpAffine(field, alignment.crop_pixel_transform(to_crop, field.shape[0]),
                                size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=border, borderValue=0)
        return warped.reshape(size[1], size[0], -1)

    coords = tf.convert_to_tensor(coords, tf.float32)
    fine = 4 * coords.shape[0]
    displacement = coords - sampler.identity_grid(coords.shape[0], coords.shape[1])
    displacement = sampler.bilinear_sample(
        displacement[None], sampler.identity_grid(fine, fine)[None], sampler.Border.CLAMP)[0]
    moved = read_at_u(displacement.numpy(), cv2.BORDER_REPLICATE)
    alpha = read_at_u(np.asarray(mask, np.float32), cv2.BORDER_CONSTANT)
    # P' = T^-1(u + disp) = P + A^-1 disp, in photo pixels.
    inverse = cv2.invertAffineTransform(transform)
    shift = cv2.transform(moved, inverse[:, :2])
    map_x = shift[..., 0] + np.arange(region.x0, region.x1, dtype=np.float32)
    map_y = shift[..., 1] + np.arange(region.y0, region.y1, dtype=np.float32)[:, None]
    edited = cv2.remap(photo, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    original = photo[region.slices].astype(np.float32)
    blended = original + alpha * (edited - original)  # exactly `original` where alpha is 0
    out[region.slices] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out
