"""Tests for paste_back: identity edits, a translation oracle (cv2), the feathered mask."""

import cv2
import numpy as np
import pytest
import skimage.data

from fvae_tf.data import alignment
from fvae_tf.edit import paste_back
from fvae_tf.warp import sampler

MASK_SIZE = 128


def _transform(angle_deg=12.0, scale=1 / 90, centre=(250.0, 180.0)) -> np.ndarray:
    """A similarity from photo pixels to normalized crop coordinates, by hand."""
    angle = np.deg2rad(angle_deg)
    a = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.hstack([a, (-a @ np.asarray(centre))[:, None]])


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return skimage.data.astronaut()


@pytest.fixture(scope="module")
def mask() -> np.ndarray:
    return paste_back.face_mask(alignment.canonical_template(), MASK_SIZE)


def _identity(size=64) -> np.ndarray:
    return sampler.identity_grid(size, size).numpy()


def test_identity_edit_returns_the_photo(photo, mask):
    out = paste_back.paste_flow(photo, _transform(), _identity(), mask)
    assert out.dtype == np.uint8 and out.shape == photo.shape
    assert np.abs(out.astype(int) - photo).max() <= 1  # within 1/255


def test_random_edit_changes_nothing_outside_the_face_region(photo, mask):
    rng = np.random.default_rng(0)
    coords = np.clip(_identity() + rng.normal(0, 0.05, (64, 64, 2)), -1, 1).astype(np.float32)
    transform = _transform()
    out = paste_back.paste_flow(photo, transform, coords, mask)
    region = paste_back.face_region(transform, mask, photo.shape)
    outside = np.ones(photo.shape[:2], bool)
    outside[region.slices] = False
    assert np.array_equal(out[outside], photo[outside])
    # The region holds the changes but is not much larger than the mask: its
    # normalized support (< 2 x 2) is 180 px wide at 90 px per unit.
    assert not np.array_equal(out, photo)
    assert region.x1 - region.x0 < 2 * 90 * 1.3 and region.y1 - region.y0 < 2 * 90 * 1.3
    # Where the photo-space mask is 0, pixels are untouched even inside the region.
    ys, xs = np.mgrid[0:photo.shape[0], 0:photo.shape[1]]
    u = np.stack([xs, ys], -1) @ transform[:, :2].T + transform[:, 2]
    far = np.max(np.abs(u), axis=-1) > 1.0  # outside the crop square
    assert np.array_equal(out[far], photo[far])


def test_translation_matches_cv2_warp_affine(photo, mask):
    # A constant crop-space displacement delta reads photo(P + A^-1 delta): a
    # pure translation of the photo, which cv2.warpAffine computes independently.
    transform = _transform()
    delta = np.array([0.05, -0.03])
    coords = (_identity() + delta).astype(np.float32)
    out = paste_back.paste_flow(photo, transform, coords, mask)
    shift = np.linalg.solve(transform[:, :2], delta)  # photo pixels
    oracle = cv2.warpAffine(photo, np.array([[1, 0, shift[0]], [0, 1, shift[1]]]),
                            photo.shape[1::-1], flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REPLICATE)
    # Compare where the photo-space mask is exactly 1 (the face's core).
    ys, xs = np.mgrid[0:photo.shape[0], 0:photo.shape[1]]
    u = np.stack([xs, ys], -1) @ transform[:, :2].T + transform[:, 2]
    px = ((u + 1) * MASK_SIZE - 1) / 2
    inside = cv2.remap(mask, px[..., 0].astype(np.float32), px[..., 1].astype(np.float32),
                       cv2.INTER_NEAREST, borderValue=0) == 1.0
    core = cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert core.sum() > 5000
    assert np.abs(out[core].astype(int) - oracle[core]).max() <= 1
    assert np.abs(out[core].astype(int) - photo[core]).mean() > 5  # it did move


def _paste_oracle(photo, transform, coords, mask):
    """The module docstring's formula, evaluated directly at every photo pixel in float64."""
    h, w = photo.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    u = np.stack([xs, ys], axis=-1) @ transform[:, :2].T + transform[:, 2]
    displacement = coords.astype(np.float64) - _identity(coords.shape[0])
    moved = sampler.bilinear_sample(displacement[None], u[None], "clamp")[0].numpy()
    alpha = sampler.bilinear_sample(mask[None, :, :, None].astype(np.float64), u[None],
                                    "zeros")[0].numpy()
    inverse = cv2.invertAffineTransform(transform)
    source = ((u + moved) @ inverse[:, :2].T + inverse[:, 2]).astype(np.float32)
    edited = cv2.remap(photo, source[..., 0], source[..., 1], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    return np.clip(np.round(alpha * edited + (1 - alpha) * photo), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("scale", [1 / 90, 1 / 400])
def test_smooth_edit_matches_the_formula_evaluated_directly(photo, mask, scale):
    # A smooth field (what a decoder makes), on a face of 180 px and of 800 px
    # (the photo enlarged 4x): the fast path's 1/32-pixel steps on a 4x finer
    # field stay within one grey level of the direct evaluation, and rarely reach it.
    yy, xx = np.mgrid[0:64, 0:64] / 63.0
    bump = np.exp(-((xx - 0.5) ** 2 + (yy - 0.65) ** 2) / 0.02)
    coords = (_identity() + 0.08 * np.stack([bump * (xx - 0.5), -bump], -1)).astype(np.float32)
    big = photo if scale == 1 / 90 else cv2.resize(photo, None, fx=4, fy=4)
    centre = (250.0, 180.0) if scale == 1 / 90 else (1000.0, 720.0)
    transform = _transform(scale=scale, centre=centre)
    out = paste_back.paste_flow(big, transform, coords, mask).astype(int)
    want = _paste_oracle(big, transform, coords, mask).astype(int)
    assert np.abs(out - want).max() <= 1
    assert np.abs(out - want).mean() < 0.005
    assert np.abs(out - big).mean() > 0.2  # it did edit


def test_face_mask_is_one_on_the_face_and_zero_at_the_crop_border(mask):
    assert mask.shape == (MASK_SIZE, MASK_SIZE) and mask.dtype == np.float32
    assert mask.min() >= 0 and mask.max() <= 1
    border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    assert np.all(border == 0)
    # Every landmark sits inside the hull, where the mask is 1 (the chin is
    # near the bottom border; only the ones well inside the crop).
    template = alignment.canonical_template()
    px = np.round(((template + 1) * MASK_SIZE - 1) / 2).astype(int)
    well_inside = np.max(np.abs(template), axis=1) < 0.7
    assert np.all(mask[px[well_inside, 1], px[well_inside, 0]] == 1.0)
    # Far outside the hull (the top corners: hair, background) it is 0.
    assert mask[5, 5] == 0 and mask[5, -6] == 0


def test_face_mask_falls_off_smoothly():
    template = alignment.canonical_template()
    mask = paste_back.face_mask(template, MASK_SIZE, margin=0.05, feather=0.15)
    # Along the row of the eyes, from the face outward: 1, then non-increasing to 0.
    row = int(round(((-0.2 + 1) * MASK_SIZE - 1) / 2))
    profile = mask[row, MASK_SIZE // 2:]
    assert profile[0] == 1.0 and profile[-1] == 0.0
    assert np.all(np.diff(profile) <= 1e-6)
    # The fall spans about feather / 2 * size = 9.6 pixels (no hard edge).
    falling = np.count_nonzero((profile > 0) & (profile < 1))
    assert 6 <= falling <= 13
