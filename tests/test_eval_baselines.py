"""Evaluation metrics and baselines against independent answers (no trained model)."""

import math
import os

import cv2
import matplotlib.axes
import numpy as np
import pytest
import skimage.metrics
import tensorflow as tf

from conftest import REPO_ROOT
from fvae_tf import metrics
from fvae_tf.eval import baselines, demo_report, optical_flow, real_faces, report, scores
from fvae_tf.model import config as config_lib
from fvae_tf.model import fvae as fvae_lib

SIZE = 64
SHIFT = 3  # pixels


def _texture(seed: int = 0, size: int = SIZE + 2 * 8) -> np.ndarray:
    """A smooth random colour texture, uint8 [size, size, 3]."""
    coarse = np.random.default_rng(seed).uniform(0, 255, (10, 10, 3)).astype(np.float32)
    return np.clip(cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC),
                   0, 255).astype(np.uint8)


def _shifted_pair() -> tuple[np.ndarray, np.ndarray]:
    """(target, source) uint8 crops with target(p) = source(p - (SHIFT, 0))."""
    texture = _texture()
    return texture[8:8 + SIZE, 8:8 + SIZE], texture[8:8 + SIZE, 8 + SHIFT:8 + SHIFT + SIZE]


def _float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 127.5 - 1.0


def test_psnr_and_ssim_match_skimage():
    rng = np.random.default_rng(1)
    a = _float(_texture(1))[:SIZE, :SIZE].astype(np.float64)
    b = np.clip(a + rng.normal(0, 0.1, a.shape), -1, 1)
    values = scores.image_scores(a, b)
    assert values["psnr"] == pytest.approx(
        skimage.metrics.peak_signal_noise_ratio(b, a, data_range=2.0), rel=1e-9)
    # SSIM of the intensities shifted to [0, 2], as SSIM of uint8 images would be.
    assert values["ssim"] == pytest.approx(skimage.metrics.structural_similarity(
        a + 1, b + 1, data_range=2.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False), abs=1e-6)
    assert values["l1"] == pytest.approx(np.abs(a - b).mean())
    assert values["sharpness"] == pytest.approx(
        metrics.gradient_energy(a) / metrics.gradient_energy(b))
    assert values["sharpness"] < 0.5  # the smooth texture has less than its noisy copy


def test_scores_mean_and_percentile_skip_undefined_values():
    table = scores.Scores()
    for value in (0.1, math.nan, 0.5, 0.3, 0.2):
        table.add("m", {"d": value})
    assert table.summary()["m"] == {"d": pytest.approx(0.275), "n": 5}
    assert table.percentile("m", "d", 90) == pytest.approx(np.percentile([0.1, 0.5, 0.3, 0.2], 90))
    assert math.isnan(table.percentile("m", "missing", 90))


def test_endpoint_error_by_hand():
    truth = baselines.identity_coords(4, 4)
    # A field 1 px off in x everywhere (2 / W normalized), 2 px off on one pixel.
    coords = truth.copy()
    coords[..., 0] += 2.0 / 4
    coords[0, 0, 0] += 2.0 / 4
    # The truth moves one pixel by 3 px (moving), the rest stay (below 1 px).
    moved = truth.copy()
    moved[1, 1, 0] += 3 * 2.0 / 4
    visibility = np.ones((4, 4))
    values = scores.flow_scores(coords, truth, visibility)
    assert values["epe_visible"] == pytest.approx((15 * 1 + 2) / 16)
    assert np.isnan(values["epe_moving"])  # nothing moves in `truth`
    values = scores.flow_scores(coords, moved, visibility)
    assert values["epe_moving"] == pytest.approx(2.0)  # |1 - 3| at the one moving pixel
    visibility[1, 1] = 0
    assert np.isnan(scores.flow_scores(coords, moved, visibility)["epe_moving"])


def _square_landmarks(left: float, right: float, size: int) -> np.ndarray:
    """68 landmarks whose jaw and brows (0-26) outline the pixel square [left, right]^2."""
    corners = np.array([[left, left], [right, left], [right, right], [left, right]])
    points = np.full((68, 2), (left + right) / 2)
    points[:27] = corners[np.arange(27) % 4]
    return (points + 0.5) * 2 / size - 1  # pixel centres -> normalized


def test_face_region_is_the_hull_of_jaw_and_brows():
    # A square from pixel centre 2 to pixel centre 5 holds pixels 2..5 in each axis.
    region = scores.face_region(_square_landmarks(2.0, 5.0, 8), 8)
    expected = np.zeros((8, 8), bool)
    expected[2:6, 2:6] = True
    np.testing.assert_array_equal(region, expected)


def test_endpoint_error_inside_the_face_only_counts_moving_face_pixels():
    truth = baselines.identity_coords(8, 8)
    truth[..., 0] += 2 * 2.0 / 8  # everything moves 2 px
    coords = truth.copy()
    coords[0, 0, 0] += 4 * 2.0 / 8  # 4 px off outside the face
    coords[3, 3, 1] += 1 * 2.0 / 8  # 1 px off inside it
    face = scores.face_region(_square_landmarks(2.0, 5.0, 8), 8)
    values = scores.flow_scores(coords, truth, np.ones((8, 8)), face)
    assert values["epe_moving"] == pytest.approx(5 / 64)
    assert values["epe_moving_face"] == pytest.approx(1 / 16)


def test_roc_auc_by_hand():
    # Positives 0.35, 0.8; negatives 0.1, 0.4: 3 of 4 positive-negative pairs ordered.
    assert metrics.roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert metrics.roc_auc([0.5, 0.5, 0.5], [0, 1, 1]) == 0.5  # ties count one half
    assert metrics.roc_auc(np.array([[0.0, 1.0], [0.2, 0.9]]), np.array([[0, 1], [0, 1]])) == 1.0
    assert metrics.roc_auc([0.9, 0.1], [0, 1]) == 0.0
    with pytest.raises(ValueError, match="positives and negatives"):
        metrics.roc_auc([0.1, 0.2], [1, 1])


@pytest.mark.parametrize("method", list(optical_flow.FlowMethod))
def test_optical_flows_recover_a_shift(method):
    target, source = _shifted_pair()
    flow = optical_flow.pixel_flow(method, target, source)
    inner = flow[8:-8, 8:-8]
    np.testing.assert_allclose(np.median(inner, axis=(0, 1)), [-SHIFT, 0.0], atol=0.05)
    # As sampling coordinates, the flow warps the source onto the target.
    coords = optical_flow.flow_to_coords(flow)
    warped = baselines.warp(_float(source)[None], coords[None])[0]
    error = np.abs(warped - _float(target))[8:-8, 8:-8].mean()
    assert error < 0.1 * np.abs(_float(source) - _float(target))[8:-8, 8:-8].mean()


def test_sparse_to_dense_is_deterministic_and_finite_in_workers():
    target, source = _shifted_pair()
    other_target, other_source = _texture(3)[:SIZE, :SIZE], _texture(3)[4:4 + SIZE, 2:2 + SIZE]
    jobs = [(optical_flow.FlowMethod.SPARSE_TO_DENSE.value, t, s)
            for t, s in ((target, source), (other_target, other_source))] * 2
    first = optical_flow.flows_in_processes(jobs, num_workers=2)
    second = optical_flow.flows_in_processes(jobs, num_workers=1)
    for a, b in zip(first, second):
        assert np.all(np.isfinite(a))
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first[0], first[2])  # the same pair in another worker


def _few_matches_pair() -> tuple[np.ndarray, np.ndarray]:
    """(target, source): grey crops with one textured square that moves SHIFT px left
    from target to source. PyrLK loses the grid points on the flat grey around it."""
    texture = _texture(5)
    target, source = (np.full((SIZE, SIZE, 3), 128, np.uint8) for _ in range(2))
    target[24:40, 24:40] = texture[24:40, 24:40]
    source[24:40, 24 - SHIFT:40 - SHIFT] = texture[24:40, 24:40]
    return target, source


def test_sparse_to_dense_is_opencv_s_where_enough_matches_survive():
    for target, source in (_shifted_pair(), (_texture(3)[:SIZE, :SIZE],
                                              _texture(3)[4:4 + SIZE, 2:2 + SIZE])):
        kept, _ = optical_flow.grid_matches(target, source)
        assert len(kept) >= optical_flow.SPARSE_TO_DENSE_NEIGHBOURS
        opencv = cv2.optflow.calcOpticalFlowSparseToDense(  # OpenCV reads BGR
            np.ascontiguousarray(target[..., ::-1]), np.ascontiguousarray(source[..., ::-1]),
            grid_step=optical_flow.SPARSE_TO_DENSE_GRID_STEP)
        np.testing.assert_array_equal(optical_flow.sparse_to_dense(target, source), opencv)


def test_sparse_to_dense_with_fewer_matches_than_neighbours_is_a_flow():
    # OpenCV's own function reads past its buffers here (flows of 150 px on the
    # demo's test pairs, changing from process to process); ours weighs every match.
    target, source = _few_matches_pair()
    kept, _ = optical_flow.grid_matches(target, source)
    assert 4 < len(kept) < optical_flow.SPARSE_TO_DENSE_NEIGHBOURS
    jobs = [(optical_flow.FlowMethod.SPARSE_TO_DENSE.value, target, source)] * 4
    runs = [optical_flow.flows_in_processes(jobs, num_workers=2) for _ in range(2)]
    flows = [optical_flow.coords_to_flow(coords) for run in runs for coords in run]
    for flow in flows:
        np.testing.assert_array_equal(flow, flows[0])
    assert np.abs(flows[0]).max() < SHIFT + 1
    np.testing.assert_allclose(np.median(flows[0][26:38, 26:38], axis=(0, 1)), [-SHIFT, 0],
                               atol=0.1)


def test_a_non_finite_flow_is_computed_again_on_padded_images_then_refused(monkeypatch):
    target, source = _shifted_pair()
    sizes, results = [], [np.nan, 1.0]

    def flow_of(method, padded_target, padded_source):
        sizes.append(padded_target.shape[:2])
        np.testing.assert_array_equal(padded_target[4:-4, 4:-4] if len(sizes) == 2 else
                                      padded_target, target)
        return np.full((*padded_target.shape[:2], 2), results.pop(0), np.float32)

    monkeypatch.setattr(optical_flow, "pixel_flow", flow_of)
    coords = optical_flow.sampling_coords(("dis", target, source))
    assert sizes == [(SIZE, SIZE), (SIZE + 8, SIZE + 8)]
    assert coords.shape == (SIZE, SIZE, 2)
    np.testing.assert_allclose(optical_flow.coords_to_flow(coords), 1.0, atol=1e-5)
    calls = []
    monkeypatch.setattr(optical_flow, "pixel_flow", lambda method, t, s: calls.append(t.shape)
                        or np.full((*t.shape[:2], 2), np.nan, np.float32))
    with pytest.raises(ValueError, match="non-finite flow 3 times"):
        optical_flow.sampling_coords(("dis", target, source))
    assert len(calls) == optical_flow.ATTEMPTS


@pytest.mark.parametrize("method", list(optical_flow.FlowMethod))
def test_padding_does_not_change_the_flow_away_from_the_border(method):
    # The retry's padded flow is the same flow where it matters.
    target, source = _shifted_pair()
    plain = optical_flow.pixel_flow(method, target, source)
    pad = optical_flow.RETRY_PADDINGS[-1]
    padded = optical_flow.pixel_flow(method, *(
        cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        for image in (target, source)))[pad:-pad, pad:-pad]
    np.testing.assert_allclose(np.median(padded[8:-8, 8:-8], axis=(0, 1)),
                               np.median(plain[8:-8, 8:-8], axis=(0, 1)), atol=0.05)


def test_a_failing_flow_worker_is_reported_with_its_error():
    target, source = _shifted_pair()
    with pytest.raises(optical_flow.OpticalFlowError, match="exited with 1: .*error"):
        optical_flow.flows_in_processes([("dis", target, source[:-4])], num_workers=1)


def _crashing_workers(tmp_path, monkeypatch, crashes: int) -> None:
    """Makes the next `crashes` flow workers die of SIGSEGV, as OpenCV's native code can.

    A sitecustomize on the workers' PYTHONPATH kills each new interpreter
    while its count file holds fewer than `crashes` marks.
    """
    tmp_path.mkdir()
    (tmp_path / "sitecustomize.py").write_text(
        "import os, pathlib, signal\n"
        f"count = pathlib.Path({str(tmp_path / 'crashes')!r})\n"
        "marks = count.read_text() if count.exists() else ''\n"
        f"if len(marks) < {crashes}:\n"
        "    count.write_text(marks + 'x')\n"
        "    os.kill(os.getpid(), signal.SIGSEGV)\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(REPO_ROOT)]))


def test_a_crashed_flow_worker_runs_once_more_then_is_reported(tmp_path, monkeypatch):
    target, source = _shifted_pair()
    job = [(optical_flow.FlowMethod.DIS.value, target, source)]
    want = optical_flow.flows_in_processes(job, num_workers=1)
    _crashing_workers(tmp_path / "once", monkeypatch, crashes=1)
    np.testing.assert_array_equal(optical_flow.flows_in_processes(job, num_workers=1), want)
    assert (tmp_path / "once" / "crashes").read_text() == "x"
    _crashing_workers(tmp_path / "always", monkeypatch, crashes=2)
    with pytest.raises(optical_flow.OpticalFlowError, match="exited with -11"):
        optical_flow.flows_in_processes(job, num_workers=1)
    assert (tmp_path / "always" / "crashes").read_text() == "xx"


def test_flow_coordinates_round_trip():
    flow = np.random.default_rng(2).normal(0, 2, (SIZE, 48, 2)).astype(np.float32)
    np.testing.assert_allclose(optical_flow.coords_to_flow(optical_flow.flow_to_coords(flow)),
                               flow, atol=1e-5)
    np.testing.assert_allclose(optical_flow.flow_to_coords(np.zeros((4, 4, 2))),
                               baselines.identity_coords(4, 4), atol=1e-7)


def test_average_flow_recovers_a_shift_and_scales_with_the_factor():
    target, source = _shifted_pair()
    coords = optical_flow.flows_in_processes(
        [(optical_flow.FlowMethod.SPARSE_TO_DENSE.value, target, source)] * 2
        + [(optical_flow.FlowMethod.SPARSE_TO_DENSE.value, source, source)], num_workers=1)
    average = baselines.average_flow(coords, ["neutral", "neutral", "smile"],
                                     ["smile", "smile", "neutral"])
    assert average.counts == {"neutral->smile": 2, "smile->neutral": 1}
    shift = optical_flow.coords_to_flow(average.coords("neutral", "smile"))[8:-8, 8:-8]
    np.testing.assert_allclose(np.median(shift, axis=(0, 1)), [-SHIFT, 0], atol=0.05)
    half = optical_flow.coords_to_flow(average.coords("neutral", "smile", 0.5))[8:-8, 8:-8]
    np.testing.assert_allclose(half, 0.5 * shift, atol=1e-4)
    np.testing.assert_allclose(average.coords("smile", "neutral"),
                               baselines.identity_coords(SIZE, SIZE), atol=1e-3)
    with pytest.raises(KeyError):
        average.coords("neutral", "scream")


def test_mesh_morph_of_identical_landmarks_is_the_cross_fade():
    rng = np.random.default_rng(4)
    a, b = rng.uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)
    landmarks = rng.uniform(-0.8, 0.8, (68, 2))
    for alpha in (0.0, 0.3, 1.0):
        np.testing.assert_allclose(baselines.mesh_morph(a, b, landmarks, landmarks, alpha),
                                   baselines.cross_fade(a, b, alpha), atol=1e-5)


def test_mesh_warp_moves_a_shifted_face():
    target, source = _shifted_pair()
    landmarks = np.random.default_rng(5).uniform(-0.6, 0.6, (68, 2))
    moved = landmarks + [2.0 * SHIFT / SIZE, 0.0]  # where the source's features are in the target
    warped = baselines.mesh_warp(_float(source), landmarks, moved)
    inner = (slice(20, 44), slice(20, 44))
    assert np.abs(warped - _float(target))[inner].mean() < 0.02


def test_interpolations_return_their_ends():
    target, source = _shifted_pair()
    a, b = _float(target), _float(source)
    landmarks = np.random.default_rng(6).uniform(-0.8, 0.8, (2, 68, 2))
    coords = optical_flow.flow_to_coords(optical_flow.pixel_flow("dis", target, source))
    for alpha, end in ((0.0, a), (1.0, b)):
        np.testing.assert_allclose(baselines.cross_fade(a, b, alpha), end)
        np.testing.assert_allclose(baselines.mesh_morph(a, b, *landmarks, alpha), end, atol=1e-5)
        np.testing.assert_allclose(baselines.flow_interpolation(a, b, coords, alpha), end,
                                   atol=1e-5)
    # Half way along the 3 px shift, the frame is the texture shifted by 1.5 px.
    half = baselines.flow_interpolation(a, b, coords, 0.5)
    texture = _float(_texture())
    shifted = 0.5 * (texture[8:8 + SIZE, 9:9 + SIZE] + texture[8:8 + SIZE, 10:10 + SIZE])
    assert np.abs(half - shifted)[8:-8, 8:-8].mean() < np.abs(a - b)[8:-8, 8:-8].mean() / 5


@pytest.mark.parametrize("decoder", ["z_only", "source_unet"])
def test_vae_decoders(decoder):
    config = config_lib.get_config("tiny", vae_decoder=decoder)
    vae = fvae_lib.VAE(config)
    vae.build_for_inference()
    z = tf.random.stateless_normal([2, config.latent_dim], seed=[0, 1])
    source = tf.random.stateless_uniform([2, SIZE, SIZE, 3], seed=[0, 2], minval=-1)
    change = np.abs(vae.generate(source, z) - vae.generate(0.3 * source, z)).max()
    assert (change == 0.0) == (decoder == "z_only")  # the paper's VAE ignores the source
    with pytest.raises(ValueError, match="vae_decoder must be one of z_only, source_unet"):
        config_lib.get_config("tiny", vae_decoder="unet")


def test_tables_on_fixed_inputs():
    rows = {"FVAE": {"psnr": 20.0, "ssim": 0.5, "n": 3, "epe_moving": float("nan")},
            "no motion": {"psnr": 18.25, "ssim": 0.25, "n": 3}}
    assert report.table(rows, {"paper": {"FVAE": "18.14"}}) == "\n".join([
        "| method | PSNR dB | paper | SSIM | EPE moving px | n |",
        "|---|---|---|---|---|---|",
        "| FVAE | 20.00 | 18.14 | 0.500 | - | 3 |",
        "| no motion | 18.25 |  | 0.250 | - | 3 |"])
    by_step = {"25%": {"FVAE": {"psnr": 30.0}}, "50%": {"FVAE": {"psnr": 28.5},
                                                        "VAE": {"psnr": 27.0}}}
    assert report.step_table(by_step, "psnr") == "\n".join([
        "| method | 25% | 50% |", "|---|---|---|", "| FVAE | 30.00 | 28.50 |",
        "| VAE | - | 27.00 |"])
    checks = dict((text, holds) for text, holds, _ in report.orderings({"table1": {
        "FVAE": {"psnr": 20.0, "sharpness": 0.9}, "VAE (z only, paper)": {"psnr": 22.0,
                                                                          "sharpness": 0.4},
        "optical flow: DIS": {"psnr": 21.0}}}))
    assert checks == {"Table 1: the VAE has the highest PSNR": True,
                      "FVAE is sharper than the VAE": True,
                      "FVAE above optical flow (PSNR)": False}


def test_markdown_to_html_on_fixed_input():
    text = "# Title\n\nSome **bold** text.\n\n| a | b |\n|---|---|\n| 1 | <2> |\n\n- one\n- two"
    assert demo_report.markdown_to_html(text) == "\n".join([
        "<h2>Title</h2>", "<p>Some bold text.</p>",
        "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>&lt;2&gt;</td></tr></table>",
        "<li>one</li>", "<li>two</li>"])


def test_mouth_distances_ignore_head_motion_and_measure_the_mouth():
    rng = np.random.default_rng(4)
    real = rng.uniform(0, 100, (68, 2))
    neutral = real.copy()
    neutral[real_faces.MOUTH] += [3.0, 4.0]  # the mouth 5 px off, the rest in place
    half = real.copy()
    half[real_faces.MOUTH] += [1.5, 2.0]
    # The edit moved the whole head (rotated, scaled, shifted): the fit undoes it.
    angle, scale = 0.2, 1.3
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = half @ rotation.T + [7.0, -2.0]
    before, after = real_faces.mouth_distances(neutral, moved, real)
    assert before == pytest.approx(5.0) and after == pytest.approx(2.5)


def test_lower_lip_drop_ignores_head_motion():
    rng = np.random.default_rng(5)
    neutral = rng.uniform(0, 100, (68, 2))
    neutral[36:42] = [30.0, 40.0]  # eye centres 40 px apart
    neutral[42:48] = [70.0, 40.0]
    opened = neutral.copy()
    opened[real_faces.LOWER_LIP] += [0.5, 2.0]  # the lower lip 2 px down (and a little right)
    opened[real_faces.MOUTH[:3]] -= [0.0, 3.0]  # other mouth points do not count
    angle, scale = -0.3, 0.8
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = opened @ rotation.T + [-5.0, 9.0]
    assert real_faces.lower_lip_drop(neutral, moved) == pytest.approx(2.0 / 40.0)
    assert real_faces.lower_lip_drop(neutral, neutral @ rotation.T) == pytest.approx(0.0, abs=1e-9)


def test_pooled_intervals_leave_out_missed_faces_and_pair_with_the_mean_motion():
    rng = np.random.default_rng(6)
    before = rng.uniform(1.0, 6.0, 20)
    motion = np.stack([before, 0.7 * before], axis=1)
    edit = np.stack([before, 0.6 * before], axis=1)  # closes 10 % more of each distance
    edit[3] = np.nan  # dlib missed this edited face
    motion[5] = np.nan  # and this person's source (no mean-motion row for them)
    rows = real_faces.pooled_intervals({"edit": edit, real_faces.MEAN_LANDMARK_MOTION: motion})
    assert rows["edit"]["closed_share_pooled_low"] == pytest.approx(0.4)
    assert rows["edit"]["closed_share_pooled_high"] == pytest.approx(0.4)
    for key in ("gain_over_mean_motion", "gain_over_mean_motion_low",
                "gain_over_mean_motion_high"):
        assert rows["edit"][key] == pytest.approx(0.1)
    assert "gain_over_mean_motion" not in rows[real_faces.MEAN_LANDMARK_MOTION]
    rows["edit"]["closed_share_pooled"] = 0.4  # run_real_editing's point estimates
    rows[real_faces.MEAN_LANDMARK_MOTION]["closed_share_pooled"] = 0.3
    rows["no motion"] = {"closed_share_pooled": 0.0}  # no interval: not in the table
    assert report.interval_table(rows).splitlines() == [
        "| method | mouth distance closed, pooled [95 %] | gain over the mean landmark motion "
        "[95 %] |", "|---|---|---|",
        "| edit | 0.400 [0.400, 0.400] | 0.100 [0.100, 0.100] |",
        f"| {real_faces.MEAN_LANDMARK_MOTION} | 0.300 [0.300, 0.300] |  |"]


def test_the_real_editing_plot_shows_each_pooled_share_with_its_interval(tmp_path,
                                                                          monkeypatch):
    rows = {"edit": {"closed_share_pooled": 0.3, "closed_share_pooled_low": 0.2,
                     "closed_share_pooled_high": 0.45},
            "no motion": {"closed_share_pooled": 0.0},  # no interval: no error bar
            "missed": {"closed_share_pooled": None}}  # no faces: no bar
    drawn = []
    bar = matplotlib.axes.Axes.bar
    monkeypatch.setattr(matplotlib.axes.Axes, "bar",
                        lambda self, x, heights, **kw: drawn.append((heights, kw["yerr"]))
                        or bar(self, x, heights, **kw))
    report.write_plots(tmp_path, {"real_editing": {"rows": rows}})
    [(heights, errors)] = drawn
    np.testing.assert_allclose(heights, [0.3, 0.0])
    np.testing.assert_allclose(errors, [[0.1, 0.0], [0.15, 0.0]])
    assert (tmp_path / "real_editing_closed.png").stat().st_size > 1000
