"""Sampler tests against cv2.remap, hand numbers and numerical gradients."""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from fvae_tf.warp import sampler

BORDERS = {
    "clamp": dict(borderMode=cv2.BORDER_REPLICATE),
    "zeros": dict(borderMode=cv2.BORDER_CONSTANT, borderValue=0),
}


def remap_oracle(image, coords, border, align_corners=False):
    """cv2.remap with the pixel maps that the stated convention prescribes."""
    h, w = image.shape[:2]
    if align_corners:
        map_x = (coords[..., 0] + 1) * (w - 1) / 2
        map_y = (coords[..., 1] + 1) * (h - 1) / 2
    else:
        map_x = ((coords[..., 0] + 1) * w - 1) / 2
        map_y = ((coords[..., 1] + 1) * h - 1) / 2
    out = cv2.remap(image, map_x.astype(np.float32), map_y.astype(np.float32),
                    cv2.INTER_LINEAR, **BORDERS[border])
    return out.reshape(coords.shape[:2] + (image.shape[2],))


@pytest.mark.parametrize("border", ["clamp", "zeros"])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("src_size,out_size", [((13, 17), (13, 17)), ((40, 36), (10, 9)),
                                               ((64, 64), (64, 64)), ((1, 7), (5, 4)),
                                               ((6, 1), (3, 8))])
def test_matches_cv2_remap(border, align_corners, src_size, out_size):
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (8,) + src_size + (3,)).astype(np.float32)
    # Range [-1.3, 1.3] puts a good share of points outside the image.
    coords = rng.uniform(-1.3, 1.3, (8,) + out_size + (2,)).astype(np.float32)
    got = sampler.bilinear_sample(images, coords, border, align_corners).numpy()
    for b in range(8):
        want = remap_oracle(images[b], coords[b], border, align_corners)
        np.testing.assert_allclose(got[b], want, atol=1e-5)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("border", ["clamp", "zeros"])
@pytest.mark.parametrize("height,width", [(7, 11), (333, 500), (1350, 1024)])
def test_identity_grid_reproduces_input_exactly(align_corners, border, height, width):
    images = np.random.default_rng(1).uniform(-1, 1, (1, height, width, 3)).astype(np.float32)
    grid = sampler.identity_grid(height, width, align_corners)[None]
    out = sampler.bilinear_sample(images, grid, border, align_corners).numpy()
    np.testing.assert_array_equal(out, images)


def test_identity_grid_pixel_centres():
    grid = sampler.identity_grid(2, 4).numpy()
    np.testing.assert_allclose(grid[0, :, 0], [-0.75, -0.25, 0.25, 0.75])
    np.testing.assert_allclose(grid[:, 0, 1], [-0.5, 0.5])
    grid = sampler.identity_grid(2, 4, align_corners=True).numpy()
    np.testing.assert_allclose(grid[0, :, 0], [-1, -1 / 3, 1 / 3, 1], rtol=1e-6)


def test_half_pixel_case_by_hand():
    # 2x2 image; the point halfway between all four pixel centres is (0, 0)
    # with align_corners=False, and reads their mean.
    image = np.array([[[1.0], [2.0]], [[3.0], [5.0]]], np.float32)[None]
    out = sampler.bilinear_sample(image, np.zeros((1, 1, 1, 2), np.float32)).numpy()
    assert out.item() == pytest.approx((1 + 2 + 3 + 5) / 4)
    # A quarter of a pixel right of pixel (0, 0)'s centre: px = 0.25, py = 0.
    x = (2 * 0.25 + 1) / 2 - 1
    y = (2 * 0.0 + 1) / 2 - 1
    out = sampler.bilinear_sample(image, np.array([[[[x, y]]]], np.float32)).numpy()
    assert out.item() == pytest.approx(0.75 * 1 + 0.25 * 2)
    # Outside by half a pixel to the left: clamp reads the edge, zeros blends with 0.
    x = (2 * -0.5 + 1) / 2 - 1
    point = np.array([[[[x, y]]]], np.float32)
    assert sampler.bilinear_sample(image, point, "clamp").numpy().item() == pytest.approx(1.0)
    assert sampler.bilinear_sample(image, point, "zeros").numpy().item() == pytest.approx(0.5)


@pytest.mark.parametrize("align_corners", [False, True])
def test_upsample_identity_field_samples_4x_source_exactly(align_corners):
    big = np.random.default_rng(2).uniform(-1, 1, (2, 64, 48, 3)).astype(np.float32)
    small_identity = np.tile(sampler.identity_grid(16, 12, align_corners)[None], [2, 1, 1, 1])
    up = sampler.upsample_flow(small_identity, (64, 48), align_corners)
    np.testing.assert_allclose(up[0], sampler.identity_grid(64, 48, align_corners), atol=1e-6)
    out = sampler.bilinear_sample(big, up, align_corners=align_corners).numpy()
    np.testing.assert_allclose(out, big, atol=1e-5)


def test_upsample_constant_shift_stays_constant():
    shift = np.array([0.1, -0.05], np.float32)
    coords = sampler.identity_grid(8, 8)[None] + shift
    up = sampler.upsample_flow(coords, (32, 32)).numpy()
    np.testing.assert_allclose(up - sampler.identity_grid(32, 32).numpy(), np.broadcast_to(shift, up.shape), atol=1e-6)


@pytest.mark.parametrize("border", ["clamp", "zeros"])
def test_gradients_match_numerical(border):
    rng = np.random.default_rng(3)
    images = tf.constant(rng.uniform(-1, 1, (1, 5, 6, 2)), tf.float64)
    # Keep points at non-integer pixel positions, where the kernel is smooth.
    px = rng.uniform(0.2, 0.8, (1, 4, 3, 2)) + rng.integers(-1, 5, (1, 4, 3, 2))
    size = np.array([6, 5], np.float64)
    coords = tf.constant((2 * px + 1) / size - 1, tf.float64)

    theoretical, numerical = tf.test.compute_gradient(
        lambda im: sampler.bilinear_sample(im, coords, border), [images])
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-6)
    theoretical, numerical = tf.test.compute_gradient(
        lambda c: sampler.bilinear_sample(images, c, border), [coords])
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-5)


def test_keras_layer_and_tf_function_agree():
    rng = np.random.default_rng(4)
    images = rng.uniform(-1, 1, (1, 9, 9, 3)).astype(np.float32)
    coords = rng.uniform(-1, 1, (1, 5, 5, 2)).astype(np.float32)
    layer = sampler.BilinearSampler(border="zeros")
    eager = layer([images, coords]).numpy()
    compiled = tf.function(sampler.bilinear_sample)(images, coords, "zeros").numpy()
    np.testing.assert_allclose(eager, compiled, atol=1e-6)
    np.testing.assert_allclose(eager[0], remap_oracle(images[0], coords[0], "zeros"), atol=1e-5)
    assert sampler.BilinearSampler.from_config(layer.get_config()).border is sampler.Border.ZEROS


@pytest.mark.parametrize("border", ["clamp", "zeros"])
def test_xla_compiled_sampler_matches_cv2_remap_and_eager_gradients(border):
    rng = np.random.default_rng(5)
    images = tf.constant(rng.uniform(-1, 1, (4, 12, 10, 3)), tf.float32)
    coords = tf.constant(rng.uniform(-1.3, 1.3, (4, 7, 9, 2)), tf.float32)
    upstream = tf.constant(rng.uniform(-1, 1, (4, 7, 9, 3)), tf.float32)

    def forward_backward(images, coords):
        with tf.GradientTape() as tape:
            tape.watch([images, coords])
            out = sampler.bilinear_sample(images, coords, border)
            loss = tf.reduce_sum(out * upstream)
        return [out] + tape.gradient(loss, [images, coords])

    compiled = tf.function(forward_backward, jit_compile=True)(images, coords)
    eager = forward_backward(images, coords)
    for b in range(4):
        want = remap_oracle(images[b].numpy(), coords[b].numpy(), border)
        np.testing.assert_allclose(compiled[0][b], want, atol=1e-5)
    for got, want in zip(compiled, eager):
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("border", ["clamp", "zeros"])
def test_gradients_match_numerical_align_corners_and_resizing(border):
    # A 4x3 output read from a 5x6 source with align_corners=True, points
    # inside and outside the image.
    rng = np.random.default_rng(6)
    images = tf.constant(rng.uniform(-1, 1, (2, 5, 6, 3)), tf.float64)
    px = rng.uniform(0.2, 0.8, (2, 4, 3, 2)) + rng.integers(-1, 5, (2, 4, 3, 2))
    coords = tf.constant(2 * px / np.array([5, 4], np.float64) - 1, tf.float64)
    for argument in range(2):
        def fn(x):
            args = [images, coords]
            args[argument] = x
            return sampler.bilinear_sample(*args, border=border, align_corners=True)
        theoretical, numerical = tf.test.compute_gradient(fn, [[images, coords][argument]])
        np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-5)


@pytest.mark.parametrize("border,edge", [("clamp", True), ("zeros", False)])
def test_far_away_points_read_the_border_with_zero_gradient_along_that_axis(border, edge):
    image = tf.constant(np.arange(12, dtype=np.float32).reshape(1, 3, 4, 1))
    coords = tf.constant([[[[-1e9, 0.0], [1e9, 0.0], [0.0, 3e7], [-5.0, -7.0]]]], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(coords)
        out = sampler.bilinear_sample(image, coords, border)
    want = [4.0, 7.0, 9.5, 0.0] if edge else [0.0] * 4  # row 1 / 1.5 edge pixels, corner
    np.testing.assert_allclose(out.numpy().ravel(), want)
    gradient = tape.gradient(out, coords).numpy()[0, 0]
    far = np.array([[1, 0], [1, 0], [0, 1], [1, 1]], bool)  # the axes beyond the border
    np.testing.assert_array_equal(gradient[far], 0.0)
    if not edge:
        np.testing.assert_array_equal(gradient, 0.0)


def _forward_backward(border, align_corners=False, jit_compile=False):
    """(images, coords, upstream) -> [out, d images, d coords] of sum(out * upstream)."""
    def step(images, coords, upstream):
        with tf.GradientTape() as tape:
            tape.watch([images, coords])
            out = sampler.bilinear_sample(images, coords, border, align_corners)
            loss = tf.reduce_sum(out * upstream)
        return [out] + tape.gradient(loss, [images, coords])

    return tf.function(step, jit_compile=True) if jit_compile else step


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("border", ["clamp", "zeros"])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("channels", [1, 4])
def test_image_gradient_is_the_adjoint(jit_compile, border, align_corners, channels):
    # The sampler is linear in the images, so <S x, u> = <x, S^T u> for any x, u:
    # the image gradient (scatters shifted onto the 4 corners) is checked at
    # full size, over batch boundaries and with points outside the image.
    rng = np.random.default_rng(7)
    images = tf.constant(rng.uniform(-1, 1, (3, 20, 24, channels)), tf.float64)
    coords = tf.constant(rng.uniform(-1.3, 1.3, (3, 17, 15, 2)), tf.float64)
    upstream = tf.constant(rng.uniform(-1, 1, (3, 17, 15, channels)), tf.float64)
    out, d_images, _ = _forward_backward(border, align_corners, jit_compile)(
        images, coords, upstream)
    np.testing.assert_allclose(np.sum(d_images * images), np.sum(out * upstream), rtol=1e-12)
    # Each point spreads weight 1 over the image (clamp) or over the image and
    # the zeros around it: an all-ones upstream gradient sums to what the
    # sampler reads from an all-ones image.
    _, d_ones, _ = _forward_backward(border, align_corners, jit_compile)(
        images, coords, tf.ones_like(upstream))
    ones = sampler.bilinear_sample(tf.ones_like(images), coords, border, align_corners)
    np.testing.assert_allclose(np.sum(d_ones), np.sum(ones), rtol=1e-12)
    if border == "clamp":
        assert np.sum(d_ones) == pytest.approx(3 * 17 * 15 * channels)


@pytest.mark.parametrize("border", ["clamp", "zeros"])
def test_xla_coordinate_gradient_matches_numerical(border):
    rng = np.random.default_rng(8)
    images = tf.constant(rng.uniform(-1, 1, (2, 5, 6, 3)), tf.float64)
    # Non-integer pixel positions inside, near and beyond the image.
    px = rng.uniform(0.2, 0.8, (2, 3, 4, 2)) + rng.integers(-2, 6, (2, 3, 4, 2))
    coords = tf.constant((2 * px + 1) / np.array([6, 5]) - 1, tf.float64)
    upstream = tf.constant(rng.uniform(-1, 1, (2, 3, 4, 3)), tf.float64)
    forward = tf.function(lambda c: sampler.bilinear_sample(images, c, border), jit_compile=True)
    _, numerical = tf.test.compute_gradient(forward, [coords])
    want = upstream.numpy().ravel() @ numerical[0]
    _, _, d_coords = _forward_backward(border, jit_compile=True)(images, coords, upstream)
    np.testing.assert_allclose(d_coords.numpy().ravel(), want, atol=1e-6)


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("border", ["clamp", "zeros"])
def test_coordinate_gradient_at_pixel_centres_is_the_forward_difference(jit_compile, border):
    # At a pixel centre the kernel has a kink; the gradient is the one-sided
    # difference towards the next pixel, which past the last one is the
    # repeated edge (clamp: 0) or zero (zeros: minus the edge pixel).
    rng = np.random.default_rng(9)
    image = rng.uniform(-1, 1, (1, 4, 5, 2))
    upstream = rng.uniform(-1, 1, (1, 4, 5, 2))
    grid = tf.cast(sampler.identity_grid(4, 5)[None], tf.float64)
    _, _, d_coords = _forward_backward(border, jit_compile=jit_compile)(
        tf.constant(image), grid, tf.constant(upstream))
    padded = np.pad(image, [(0, 0), (0, 1), (0, 1), (0, 0)],
                    mode="edge" if border == "clamp" else "constant")
    d_x = np.diff(padded[:, :4], axis=2) * 5 / 2  # d pixel / d normalized = W / 2
    d_y = np.diff(padded[:, :, :5], axis=1) * 4 / 2
    want = np.stack([np.sum(d_x * upstream, -1), np.sum(d_y * upstream, -1)], -1)
    np.testing.assert_allclose(d_coords, want, atol=1e-12)


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("border", ["clamp", "zeros"])
def test_nan_coordinates_give_nan_not_an_error(jit_compile, border):
    # A diverging model must reach the NaN guard, not fail inside a gather.
    image = tf.ones((1, 4, 5, 3))
    coords = tf.constant([[[[np.nan, 0.0], [0.1, np.nan], [0.2, 0.3]]]], tf.float32)
    out, d_images, d_coords = _forward_backward(border, jit_compile=jit_compile)(
        image, coords, tf.ones((1, 1, 3, 3)))
    assert np.isnan(out[0, 0, :2]).all() and np.isfinite(out[0, 0, 2]).all()
    assert np.isnan(d_coords[0, 0, 0]).any() and np.isnan(d_coords[0, 0, 1]).any()
    np.testing.assert_allclose(out[0, 0, 2], 1.0)
