"""Tests for fvae_tf.viz: hand-computed wheel colours, layout arithmetic, file round trips."""

import os

import numpy as np
import pytest
from PIL import Image

from fvae_tf import viz


def _identity(h, w, align_corners=False, dtype=np.float64):
    """Identity sampling grid written straight from the contract's formulas."""
    if align_corners:
        xs, ys = -1 + 2 * np.arange(w) / (w - 1), -1 + 2 * np.arange(h) / (h - 1)
    else:
        xs, ys = (2 * np.arange(w) + 1) / w - 1, (2 * np.arange(h) + 1) / h - 1
    return np.stack(np.meshgrid(xs, ys), axis=-1).astype(dtype)


def _shifted(dx_px, dy_px, h=9, w=11):
    """Identity plus a uniform displacement given in pixels (align_corners=False)."""
    return _identity(h, w) + np.array([dx_px * 2 / w, dy_px * 2 / h])


def test_to_uint8():
    img = np.array([-1.0, -1.5, 0.0, 0.5, 1.0, 2.0], np.float32)
    np.testing.assert_array_equal(viz.to_uint8(img), [0, 0, 128, 191, 255, 255])
    assert viz.to_uint8(img).dtype == np.uint8
    with pytest.raises(TypeError):
        viz.to_uint8(np.zeros(3, np.uint8))


@pytest.mark.parametrize("align_corners", [False, True])
def test_identity_flow_is_white(align_corners):
    coords = _identity(13, 48, align_corners, np.float32)  # float32 rounding must not show
    colors = viz.flow_to_color(np.stack([coords, coords]), align_corners=align_corners)
    assert colors.shape == (2, 13, 48, 3) and colors.dtype == np.uint8
    assert np.all(colors == 255)
    # The other convention reads the same numbers as a (sub-pixel) zoom: not white.
    assert not np.all(viz.flow_to_color(coords, align_corners=not align_corners) == 255)


@pytest.mark.parametrize(
    "dx, dy, expected",
    [
        # Middlebury wheel: index fk = (atan2(-dy, -dx) / pi + 1) / 2 * 54, 55 colours.
        (1, 0, (255, 0, 0)),  # fk = 0: red
        (0, 1, (255, 229, 0)),  # fk = 13.5: between RY[13] g=221 and RY[14] g=238
        (-1, 0, (0, 209, 255)),  # fk = 27: CB[2], g = 255 - floor(255 * 2 / 11)
        (0, -1, (88, 0, 255)),  # fk = 40.5: between BM[4] r=78 and BM[5] r=98
    ],
)
def test_cardinal_directions_give_wheel_colours(dx, dy, expected):
    colors = viz.flow_to_color(_shifted(dx, dy)).reshape(-1, 3).astype(int)
    assert np.all(np.abs(colors - expected) <= 1), colors[0]


def test_magnitude_normalisation_and_out_of_range():
    coords = _shifted(2, 0)
    coords[:, :5, 0] -= 1 * 2 / 11  # left columns: 1 px, others 2 px (rightward)
    auto = viz.flow_to_color(coords)  # normalised by the max, 2 px
    np.testing.assert_array_equal(auto[0, 0], [255, 127, 127])  # radius 0.5: floor(127.5)
    np.testing.assert_array_equal(auto[0, -1], [255, 0, 0])  # radius 1: the pure colour
    fixed = viz.flow_to_color(coords, max_displacement=4.0)
    np.testing.assert_array_equal(fixed[0, 0], [255, 191, 191])  # radius 0.25
    np.testing.assert_array_equal(fixed[0, -1], [255, 127, 127])
    clipped = viz.flow_to_color(coords, max_displacement=1.0)
    np.testing.assert_array_equal(clipped[0, -1], [191, 0, 0])  # out of range: 75% of red
    with pytest.raises(ValueError):
        viz.flow_to_color(coords, max_displacement=0.0)


def test_color_wheel_properties():
    size = 101
    wheel = viz.color_wheel(size).astype(int)
    c = size // 2
    assert wheel.shape == (size, size, 3)
    np.testing.assert_array_equal(wheel[c, c], [255, 255, 255])  # zero displacement
    np.testing.assert_array_equal(wheel[0, 0], [255, 255, 255])  # outside the disc
    rim = (size - 1) / size  # radius of the outermost pixel centre
    for x, colour in ((-1, [255, 0, 0]), (0, [0, 209, 255])):  # rightward red, leftward cyan-blue
        expected = np.floor(255 * (1 - rim * (1 - np.array(colour) / 255)))
        assert np.all(np.abs(wheel[c, x] - expected) <= 1), wheel[c, x]
    # Every wheel colour has one channel at 255 and one at 0, so after blending
    # with white the max channel is 255 and the min is 255 (1 - r): radially symmetric.
    centres = (np.arange(size) + 0.5) / size * 2 - 1
    r = np.hypot(*np.meshgrid(centres, centres))
    inside = r <= 1
    assert np.all(wheel.max(axis=-1)[inside] == 255)
    assert np.all(np.abs(wheel.min(axis=-1) - np.floor(255 * (1 - r)))[inside] <= 1)


def test_image_grid_size_arithmetic_resize_and_grey():
    rgb = np.full((64, 64, 3), 200, np.uint8)
    small = np.kron(np.eye(2, dtype=np.uint8) * 255, np.ones((16, 16), np.uint8))  # 32x32 grey
    mask = np.full((64, 48, 1), 77, np.uint8)
    grid = viz.image_grid([[rgb, small, mask], [rgb]], pad=3, scale=2)
    # Columns: 64, 64 (32 resized to 64), 48; each x2; 2 rows of 128; 3 px padding.
    assert grid.shape == (2 * 128 + 3 * 3, (128 + 128 + 96) + 4 * 3, 3)
    cell = grid[3:131, 3 + 128 + 3:3 + 256 + 3]
    assert set(np.unique(cell)) == {0, 255}  # nearest: no new grey levels
    assert np.all(cell[:64, :64] == 255) and np.all(cell[:64, 64:] == 0)
    np.testing.assert_array_equal(grid[3:131, -3 - 96:-3], 77)  # grey mask -> 3 equal channels
    assert np.all(grid[134:262, 134:-3] == grid[0, 0])  # the short row's empty cells are background


def test_image_grid_labels_add_a_strip_above():
    rows = [[np.full((32, 32, 3), 255, np.uint8)] * 3]
    plain = viz.image_grid(rows)
    labeled = viz.image_grid(rows, labels=["source", "target", "a-much-too-long-label"])
    top = labeled.shape[0] - plain.shape[0]
    assert top > 0 and labeled.shape[1] == plain.shape[1]
    np.testing.assert_array_equal(labeled[top:], plain)
    for c in range(3):  # text drawn inside each column, none spilling into the padding
        x0 = 2 + c * 34
        assert np.any(labeled[:top, x0:x0 + 32] != labeled[0, 0])
    with pytest.raises(ValueError, match="labels"):
        viz.image_grid(rows, labels=["only one"])


def test_save_png_round_trip(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    path = tmp_path / "nested" / "dir" / "out.png"
    viz.save_png(path, img)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), img)
    viz.save_png(tmp_path / "grey.png", img[..., 0])
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "grey.png").convert("L")), img[..., 0])
    assert sorted(os.listdir(path.parent)) == ["out.png"]


def test_save_gif_round_trip(tmp_path):
    frames = [np.full((8, 10, 3), v, np.uint8) for v in (0, 128, 255)]
    path = tmp_path / "anim.gif"
    viz.save_gif(path, frames, fps=4)
    with Image.open(path) as gif:
        assert gif.n_frames == 3 and gif.size == (10, 8)
        assert gif.info["duration"] == 250 and gif.info["loop"] == 0
        gif.seek(2)
        assert np.all(np.asarray(gif.convert("RGB")) == 255)
    assert os.listdir(tmp_path) == ["anim.gif"]


def test_save_gif_bounce_plays_back_without_repeating_the_ends(tmp_path):
    frames = [np.full((4, 4, 3), v, np.uint8) for v in (0, 85, 170, 255)]
    path = tmp_path / "bounce.gif"
    viz.save_gif(path, frames, bounce=True)
    with Image.open(path) as gif:
        values = []
        for i in range(gif.n_frames):
            gif.seek(i)
            values.append(int(np.asarray(gif.convert("RGB"))[0, 0, 0]))
    assert values == [0, 85, 170, 255, 170, 85]


def test_failed_writes_leave_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "anim.gif"
    path.write_bytes(b"previous")
    good = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises((TypeError, ValueError)):
        viz.save_gif(path, [good, np.array([object()])])
    with pytest.raises(ValueError):
        viz.save_gif(path, [good, np.zeros((4, 4, 3), np.uint8)])

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        viz.save_gif(path, [good, good + 1])
    monkeypatch.undo()

    def failing_replace(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="rename failed"):
        viz.save_png(tmp_path / "new.png", good)
    assert os.listdir(tmp_path) == ["anim.gif"]
    assert path.read_bytes() == b"previous"


def test_overlay_mask():
    img = np.full((4, 4, 3), 100, np.uint8)
    mask = np.zeros((4, 4, 1))
    mask[:, 2:] = 1.0
    np.testing.assert_array_equal(viz.overlay_mask(img, mask, alpha=0.0), img)
    heat = viz.overlay_mask(img, mask[..., 0], alpha=1.0).astype(int)
    assert heat[0, 0, 2] > heat[0, 0, 0] + 100  # confidence 0: blue
    assert heat[0, 3, 0] > heat[0, 3, 2] + 100  # confidence 1: red
    blend = viz.overlay_mask(np.stack([img, img]), np.stack([mask, mask]), alpha=0.5)
    assert blend.shape == (2, 4, 4, 3)
    np.testing.assert_array_equal(blend[1], np.round((img + heat) / 2))


def test_error_map_is_monotone_and_saturates():
    a = np.zeros((1, 5, 3))
    b = np.linspace(0.0, 1.5, 5)[None, :, None].repeat(3, axis=-1)  # errors 0 .. 1.5
    colors = viz.error_map(a, b, max_error=1.0).astype(int)
    assert colors.shape == (1, 5, 3)
    assert colors[0, 0].max() < 20  # zero error: black end of inferno
    brightness = colors[0].sum(axis=-1)
    assert np.all(np.diff(brightness[:4]) > 0)
    np.testing.assert_array_equal(colors[0, 3], colors[0, 4])  # 1.125 and 1.5 both saturate
    with pytest.raises(ValueError):
        viz.error_map(a, b[:, :3])
