"""Loss tests: closed forms, Monte Carlo, and hand-computed cases."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from fvae_tf.model import config as config_lib
from fvae_tf.model import losses
from fvae_tf.warp import sampler


def test_kl_matches_per_dimension_closed_form():
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(4, 6))
    log_var = rng.normal(size=(4, 6))
    sd = np.exp(0.5 * log_var)
    # KL(N(m, s^2) || N(0, 1)) = log(1/s) + (s^2 + m^2) / 2 - 1/2, per dimension.
    want = np.mean(np.sum(-np.log(sd) + (sd**2 + mu**2) / 2 - 0.5, axis=1))
    assert losses.kl_divergence(tf.constant(mu), tf.constant(log_var)).numpy() == pytest.approx(want)


def test_kl_matches_monte_carlo():
    rng = np.random.default_rng(1)
    mu = np.array([[0.5, -1.0, 2.0]])
    log_var = np.array([[0.3, -0.7, 0.1]])
    sd = np.exp(0.5 * log_var)
    z = mu + sd * rng.normal(size=(200_000, 3))
    log_ratio = (stats.norm.logpdf(z, mu, sd) - stats.norm.logpdf(z)).sum(axis=1)
    estimate, stderr = log_ratio.mean(), log_ratio.std() / np.sqrt(len(z))
    got = losses.kl_divergence(tf.constant(mu), tf.constant(log_var)).numpy()
    assert abs(got - estimate) < 4 * stderr


def _coords_with_displacement(displacement):
    h, w = displacement.shape[:2]
    return (sampler.identity_grid(h, w).numpy() + displacement)[None].astype(np.float32)


def test_coherence_hand_computed_3x3_flat_target():
    # Only the centre moves, by (0.3, 0.4) (norm 0.5). With a 5x5 window every
    # other pixel of a 3x3 image is its neighbour, and every pair is counted
    # once from each side: 8 pairs * 2 * 0.5 = 8, with weight 1 on a flat target.
    displacement = np.zeros((3, 3, 2))
    displacement[1, 1] = [0.3, 0.4]
    target = np.zeros((1, 3, 3, 3), np.float32)
    got = losses.flow_coherence(_coords_with_displacement(displacement), target, sigma=0.1, window=5)
    assert got.numpy() == pytest.approx(8.0, rel=1e-5)


def test_coherence_hand_computed_3x3_with_edge():
    # The left column moves by (0.6, 0.8) (norm 1) and is also a different
    # colour: squared colour distance 0.25 to the rest; sigma 0.25 gives
    # w = exp(-0.25 / (2 * 0.0625)) = exp(-2). 3 x 6 crossing pairs, both ways.
    displacement = np.zeros((3, 3, 2))
    displacement[:, 0] = [0.6, 0.8]
    target = np.zeros((1, 3, 3, 3), np.float32)
    target[0, :, 0, 0] = 0.5
    got = losses.flow_coherence(_coords_with_displacement(displacement), target, sigma=0.25, window=5)
    assert got.numpy() == pytest.approx(36 * np.exp(-2.0), rel=1e-5)
    # A 3x3 window reaches only the adjacent column: (row 0: 2) + (row 1: 3)
    # + (row 2: 2) = 7 crossing pairs, both ways.
    got3 = losses.flow_coherence(_coords_with_displacement(displacement), target, sigma=0.25, window=3)
    assert got3.numpy() == pytest.approx(14 * np.exp(-2.0), rel=1e-5)


def test_identity_and_constant_shift_cost_nothing():
    target = np.random.default_rng(2).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    coords = np.tile(_coords_with_displacement(np.full((16, 16, 2), 0.2)), [2, 1, 1, 1])
    assert losses.flow_coherence(coords, target, sigma=0.1).numpy() == pytest.approx(0.0, abs=1e-3)


def test_discontinuity_on_colour_edge_costs_far_less_than_in_flat_region():
    size = 32
    target = np.zeros((1, size, size, 3), np.float32)
    target[0, :, size // 2:] = 0.8  # a vertical colour edge at the middle
    displacement = np.zeros((size, size, 2))
    on_edge = displacement.copy()
    on_edge[:, size // 2:, 0] = 0.1
    in_flat = displacement.copy()
    in_flat[:, size // 4:, 0] = 0.1  # same jump, a quarter in, where colour is flat
    cost_edge = losses.flow_coherence(_coords_with_displacement(on_edge), target, 0.1).numpy()
    cost_flat = losses.flow_coherence(_coords_with_displacement(in_flat), target, 0.1).numpy()
    assert cost_edge < 0.01 * cost_flat


def test_second_order_coherence_hand_computed_3x3():
    # Only the centre moves, by (0.3, 0.4). In a 3x3 image only the centre has
    # both p + d and p - d inside, for d = (0, 1), (1, -1), (1, 0), (1, 1) (each
    # direction once): ||0 + 0 - 2 (0.3, 0.4)|| = 1 each, 4 in all, for a 3x3 and a
    # 5x5 window alike (offsets of 2 leave the image). A centre of another colour
    # (squared distance 0.25, sigma 0.25) weighs each term exp(-2) from each side.
    displacement = np.zeros((3, 3, 2))
    displacement[1, 1] = [0.3, 0.4]
    coords = _coords_with_displacement(displacement)
    target = np.zeros((1, 3, 3, 3), np.float32)
    for window in (3, 5):
        got = losses.flow_coherence(coords, target, sigma=0.1, window=window, order=2)
        assert got.numpy() == pytest.approx(4.0, rel=1e-5)
    target[0, 1, 1, 0] = 0.5
    got = losses.flow_coherence(coords, target, sigma=0.25, window=5, order=2)
    assert got.numpy() == pytest.approx(4 * np.exp(-4.0), rel=1e-5)


def test_second_order_coherence_costs_nothing_for_affine_flow():
    # A small rotation and scaling between two crops: first differences pay for
    # it everywhere, second differences nowhere.
    size = 16
    target = np.random.default_rng(4).uniform(-1, 1, (1, size, size, 3)).astype(np.float32)
    y, x = np.mgrid[0:size, 0:size] / size
    affine = np.stack([0.02 * x - 0.03 * y + 0.1, 0.03 * x + 0.02 * y], axis=-1)
    coords = _coords_with_displacement(affine)
    second = losses.flow_coherence(coords, target, sigma=1.0, order=2).numpy()
    first = losses.flow_coherence(coords, target, sigma=1.0, order=1).numpy()
    assert second == pytest.approx(0.0, abs=1e-4) and first > 1.0
    with pytest.raises(ValueError, match="order"):
        losses.flow_coherence(coords, target, sigma=1.0, order=3)


@pytest.mark.parametrize("order", [1, 2])
def test_coherence_gradient_matches_numerical(order):
    rng = np.random.default_rng(3)
    coords = tf.constant(_coords_with_displacement(rng.normal(0, 0.1, (4, 5, 2))), tf.float64)
    target = tf.constant(rng.uniform(-1, 1, (1, 4, 5, 3)), tf.float64)
    theoretical, numerical = tf.test.compute_gradient(
        lambda c: losses.flow_coherence(c, target, sigma=0.5, order=order), [coords], delta=1e-6)
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-5)


def test_reconstruction_l1_sums_pixels_and_averages_batch():
    target = np.zeros((2, 2, 2, 3), np.float32)
    output = np.full((2, 2, 2, 3), 0.5, np.float32)
    output[1] = -0.25
    assert losses.reconstruction_l1(target, output).numpy() == pytest.approx((6 + 3) / 2)


def test_mask_label_and_loss_hand_numbers():
    target = np.array([[[[0.5, 0.2, -0.3], [0.0, 0.0, 0.0]]]], np.float32)
    warped = np.array([[[[0.0, 0.0, 0.0], [2.0, 2.0, 2.0]]]], np.float32)
    label = losses.mask_label(target, warped, norm=6.0).numpy()
    # L1 distances 1.0 and 6.0: labels 1 - 1/6 and 0.
    np.testing.assert_allclose(label[0, 0, :, 0], [5 / 6, 0.0], rtol=1e-6)
    confidence = np.array([[[[0.8], [0.1]]]], np.float32)
    want = -(5 / 6 * np.log(0.8) + 1 / 6 * np.log(0.2)) - np.log(0.9)
    assert losses.mask_loss(confidence, label).numpy() == pytest.approx(want, rel=1e-5)


def test_total_loss_weights():
    assert losses.total_loss(1.0, 2.0, 3.0, beta=0.5, flow_weight=10.0) == pytest.approx(32.0)


def test_ssim_map_matches_skimage():
    from skimage.metrics import structural_similarity
    rng = np.random.default_rng(3)
    a = rng.uniform(-1, 1, (9, 11, 3))
    b = np.clip(a + rng.normal(0, 0.3, a.shape), -1, 1)
    got = losses.ssim_map(tf.constant(a[None]), tf.constant(b[None])).numpy()[0]
    for c in range(3):
        _, want = structural_similarity(a[..., c], b[..., c], win_size=3, data_range=2.0,
                                        use_sample_covariance=False, full=True)
        np.testing.assert_allclose(got[..., c], want, atol=1e-6)


@pytest.mark.parametrize("softness", [0.9, losses.UNFLOW_CENSUS_SOFTNESS])
def test_census_hand_computed_raised_centre(softness):
    # b's centre is `softness` above a flat grey: at the centre every one of the 8
    # neighbours has d = -s, t = -s / sqrt(s^2 + s^2) = -1/sqrt(2), while a's
    # t is 0: 8 * 0.5 / (0.1 + 0.5). Every other pixel sees the centre once
    # (mirrored borders repeat the edge, never the centre): 0.5 / 0.6.
    a = np.zeros((1, 3, 3, 3), np.float32)
    b = a.copy()
    b[0, 1, 1] = softness
    got = losses.census_distance(a, b, window=3, softness=softness).numpy()[0, ..., 0]
    want = np.full((3, 3), 0.5 / 0.6)
    want[1, 1] = 8 * 0.5 / 0.6
    np.testing.assert_allclose(got, want, rtol=1e-4)
    # UnFlow's softness is 0.9 grey levels of 255: a raise of 10 grey levels is
    # nearly a full sign step there (t = -0.996), a tenth of one at 0.9 (the London preset's).
    b[0, 1, 1] = 10 * 2 / 255
    sign = losses.census_distance(a, b, 3, losses.UNFLOW_CENSUS_SOFTNESS).numpy()[0, 1, 1, 0]
    t = (10 / 0.9) / np.sqrt(1 + (10 / 0.9) ** 2)
    assert sign == pytest.approx(8 * t**2 / (0.1 + t**2), rel=1e-4)
    # A change of gain and offset keeps the sign pattern; census stays far below L1's change.
    rng = np.random.default_rng(0)
    img = rng.uniform(-0.5, 0.5, (1, 8, 8, 3)).astype(np.float32)
    relit = 0.8 * img + 0.2
    shuffled = rng.permutation(img.ravel()).reshape(img.shape)
    relit_cost = losses.photometric_map(img, relit, "census").numpy().mean()
    assert relit_cost < 0.1 * losses.photometric_map(img, shuffled, "census").numpy().mean()


def test_contrast_weight_matches_windowed_variance_and_weights_census():
    # Oracle: scipy's variance over each 7 x 7 window with mirrored borders ('reflect'
    # repeats the edge pixel, as tf's SYMMETRIC pad); the grey level is the RGB mean.
    from scipy import ndimage
    rng = np.random.default_rng(6)
    target = rng.uniform(-1, 1, (2, 9, 10, 3)).astype(np.float32)
    target[1, :, :5] = 0.3  # a flat left half ...
    target[1, :, 5:] += 0.004 * rng.normal(size=(9, 5, 3))  # ... and faint shading
    floor = 0.05
    got = losses.contrast_weight(target, 7, floor).numpy()[..., 0]
    grey = target.mean(-1)
    variance = np.stack([ndimage.generic_filter(g.astype(np.float64), np.var, size=7,
                                                mode="reflect") for g in grey])
    np.testing.assert_allclose(got, variance / (variance + floor**2), atol=1e-5)
    assert got[0].min() > 0.9 and got[1, :, :2].max() < 1e-6
    output = rng.uniform(-1, 1, target.shape).astype(np.float32)
    census = losses.census_distance(target, output, softness=0.01).numpy()
    weighted = losses.photometric_map(target, output, "census", census_softness=0.01,
                                      census_contrast=floor).numpy()
    np.testing.assert_allclose(weighted, census * got[..., None], rtol=1e-5)
    # Off (0), the distance is census's alone; other distances ignore the floor.
    np.testing.assert_allclose(losses.photometric_map(target, output, "census", census_softness=0.01),
                               census, rtol=1e-6)
    np.testing.assert_allclose(losses.photometric_map(target, output, "l1", census_contrast=floor),
                               losses.photometric_map(target, output, "l1"), rtol=1e-6)


def test_photometric_maps_hand_numbers():
    rng = np.random.default_rng(1)
    target = rng.uniform(-1, 1, (2, 6, 6, 3)).astype(np.float32)
    output = rng.uniform(-1, 1, (2, 6, 6, 3)).astype(np.float32)
    l1 = losses.photometric_map(target, output, "l1").numpy()
    np.testing.assert_allclose(l1[..., 0], np.abs(target - output).sum(-1), rtol=1e-6)
    ssim = losses.ssim_map(target, output).numpy()
    want = (0.85 * np.clip((1 - ssim) / 2, 0, 1) + 0.15 * np.abs(target - output)).sum(-1)
    got = losses.photometric_map(target, output, "ssim_l1").numpy()[..., 0]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert np.all(losses.photometric_map(target, target, "ssim_l1").numpy() < 1e-6)
    with pytest.raises(ValueError):
        losses.photometric_map(target, output, "l2")


def test_warp_reconstruction_paper_reading_and_pyramid_closed_form():
    rng = np.random.default_rng(2)
    source = rng.uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
    target = rng.uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
    jitter = rng.uniform(-0.1, 0.1, (2, 8, 8, 2))
    coords = (sampler.identity_grid(8, 8).numpy() + jitter).astype(np.float32)
    paper = losses.reconstruction_l1(target, sampler.bilinear_sample(source, coords)).numpy()
    got = losses.warp_reconstruction(target, source, coords).numpy()
    assert got == pytest.approx(paper, rel=1e-6)
    # Constant images: every level's per-pixel L1 is 3 |c_s - c_t|, each level
    # weighted to count as the full 8 x 8 image: 3 levels * 64 pixels * 3 * 0.5.
    flat_s = np.full((1, 8, 8, 3), 0.25, np.float32)
    flat_t = np.full((1, 8, 8, 3), -0.25, np.float32)
    got = losses.warp_reconstruction(flat_t, flat_s, coords[:1], "l1", levels=3).numpy()
    assert got == pytest.approx(3 * 64 * 3 * 0.5, rel=1e-6)


def test_flow_supervision_counts_pixels_of_error_on_visible_pixels():
    h, w = 4, 8
    truth = sampler.identity_grid(h, w).numpy()[None]
    coords = truth + np.array([2.0 / w * 3, 2.0 / h * 4], np.float32)  # (3, 4) px off: 5 px
    visible = np.zeros((1, h, w, 1), np.float32)
    visible[:, :2] = 1.0  # 16 visible pixels
    got = losses.flow_supervision(tf.constant(coords), truth, visible).numpy()
    assert got == pytest.approx(5.0 * 16, rel=1e-5)


def test_landmark_supervision_reads_the_field_at_the_target_landmarks():
    # An affine field is exactly linear between pixel centres, so its bilinear
    # reading at any landmark inside them is A t + c: the oracle in closed form.
    h, w = 16, 24
    rng = np.random.default_rng(0)
    a = np.array([[1.05, 0.02], [-0.03, 0.97]], np.float32)
    c = np.array([0.04, -0.02], np.float32)
    coords = (sampler.identity_grid(h, w).numpy() @ a.T + c)[None].repeat(2, axis=0)
    target = rng.uniform(-0.8, 0.8, (2, 5, 2)).astype(np.float32)
    source = rng.uniform(-0.8, 0.8, (2, 5, 2)).astype(np.float32)
    pixels = np.array([w / 2, h / 2])
    want = np.linalg.norm((target @ a.T + c - source) * pixels, axis=-1).sum(1).mean()
    got = losses.landmark_supervision(tf.constant(coords), target, source).numpy()
    assert got == pytest.approx(want, rel=1e-4)
    matched = target @ a.T + c  # the source's landmarks where the field sends them
    assert losses.landmark_supervision(tf.constant(coords), target, matched).numpy() == (
        pytest.approx(0.0, abs=1e-3))


def test_mask_label_quantile_normalises_per_image():
    target = np.zeros((2, 1, 4, 3), np.float32)
    warped = np.zeros((2, 1, 4, 3), np.float32)
    warped[0, 0, :, 0] = [0.1, 0.2, 0.3, 0.4]  # distances 0.1 .. 0.4
    warped[1, 0, :, 0] = [1.0, 2.0, 3.0, 4.0]
    label = losses.mask_label(target, warped, norm=6.0, quantile=1.0).numpy()[..., 0]
    # Z is each image's largest distance: the same labels at both error scales.
    np.testing.assert_allclose(label[:, 0], [[0.75, 0.5, 0.25, 0.0]] * 2, atol=1e-6)


def test_census_mask_label_ignores_lighting_and_flags_new_content():
    rng = np.random.default_rng(5)
    target = rng.uniform(-0.8, 0.8, (1, 12, 12, 3)).astype(np.float32)
    warped = 0.9 * target + 0.05  # a good warp under other lighting ...
    warped[0, 5:7, 5:7] = 0.0  # ... but flat where the target shows new content
    census = losses.mask_label(target, warped, norm=48.0, distance="census").numpy()[0, ..., 0]
    want = 1.0 - losses.census_distance(target, warped).numpy()[0, ..., 0] / 48.0
    np.testing.assert_allclose(census, want, atol=1e-6)
    l1 = losses.mask_label(target, warped, norm=6.0).numpy()[0, ..., 0]
    new = np.zeros((12, 12), bool)
    new[5:7, 5:7] = True
    far = np.ones((12, 12), bool)
    far[2:10, 2:10] = False  # beyond the census window of the new content
    # Lighting alone costs census almost nothing, eq. 7's L1 up to 6 %.
    assert census[far].min() > 0.98 and l1[far].min() < 0.95
    assert census[new].max() < census[far].min() - 0.1
    both = losses.mask_label(target, warped, norm=6.0, quantile=0.9, distance="l1*census")
    np.testing.assert_allclose(
        both, losses.mask_label(target, warped, 6.0, 0.9, "l1").numpy()
        * losses.mask_label(target, warped, 6.0, 0.9, "census").numpy(), atol=1e-6)


def test_trimmed_reconstruction_keeps_the_value_and_drops_the_worst_pixels_gradient():
    target = np.zeros((2, 1, 4, 3), np.float32)
    output = np.zeros((2, 1, 4, 3), np.float32)
    output[0, 0, :, 0] = [0.1, 0.2, 0.3, 0.9]  # L1 distances 0.1 .. 0.9: the last is worst
    output[1, 0, :, 0] = [0.4, 0.3, 0.2, 0.1]
    output = tf.constant(output)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(output)
        plain = losses.image_reconstruction(target, output)
        trimmed = losses.image_reconstruction(target, output, trim=0.5)
    assert float(trimmed) == pytest.approx(float(plain))
    # d|x|/dx = 1 per pixel, / 2 for the batch mean; the quantile 0.5 is the value at
    # rank 2 of 4, so only the pixel above it (rank 3) loses its gradient.
    np.testing.assert_allclose(tape.gradient(plain, output)[..., 0], 0.5 * np.ones((2, 1, 4)))
    np.testing.assert_allclose(tape.gradient(trimmed, output)[..., 0],
                               [[[0.5, 0.5, 0.5, 0.0]], [[0.0, 0.5, 0.5, 0.5]]])


def test_config_lists_every_photometric_distance():
    assert set(config_lib.PHOTOMETRIC) == {kind.value for kind in losses.Photometric}


def test_presets_census_soft_signs():
    # The demo preset spells UnFlow's 0.9 grey levels out in config.py (no TensorFlow
    # import there); London keeps 0.9, which did better on the London measures (README).
    assert config_lib.get_config("demo").census_softness == losses.UNFLOW_CENSUS_SOFTNESS
    assert losses.UNFLOW_CENSUS_SOFTNESS == pytest.approx(0.9 / 127.5)
    assert config_lib.get_config("london").census_softness == losses.CENSUS_SOFTNESS == 0.9
