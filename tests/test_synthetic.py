"""Tests for the synthetic faces: geometry, ground truth, determinism, layout on disk, binary."""

import pathlib
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
from matplotlib import tri as mtri

from fvae_tf.data import alignment, readers
from fvae_tf.synthetic import faces, dataset
from fvae_tf.synthetic import geometry
from fvae_tf.synthetic import mesh
from fvae_tf.expressions import EXPRESSIONS, MULTIPIE_RECORDINGS
from fvae_tf.warp import coordinates

SIZE = 64
REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def person() -> faces.Identity:
    return faces.make_identity(11)


@pytest.fixture(scope="module")
def renders(person) -> dict[str, faces.Rendered]:
    """Every expression at 64 px, each in its own jittered pose, plain light."""
    rng = np.random.default_rng(5)
    return {e: faces.render(person, e, 1.0, SIZE, pose=faces.random_pose(rng))
            for e in EXPRESSIONS}


def _remap(image: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """cv2.remap oracle of the sampler: px = ((x + 1) * W - 1) / 2, clamped border."""
    maps = ((coords + 1.0) * image.shape[1] - 1.0) / 2.0
    return cv2.remap(image.astype(np.float32), maps[..., 0], maps[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def _inside_polygon(polygon: np.ndarray, size: int, margin: float) -> np.ndarray:
    """bool [S, S]: pixel centres inside a polygon (pixels) by more than `margin` pixels."""
    contour = polygon.astype(np.float32)
    return np.array([[cv2.pointPolygonTest(contour, (float(x), float(y)), True) > margin
                      for x in range(size)] for y in range(size)])


def test_pixel_grid_is_the_sampler_convention():
    grid = geometry.pixel_grid(4).reshape(4, 4, 2)
    np.testing.assert_allclose(grid[0, :, 0], [-0.75, -0.25, 0.25, 0.75])  # (2i + 1) / 4 - 1
    np.testing.assert_allclose(grid[:, 0, 1], [-0.75, -0.25, 0.25, 0.75])
    np.testing.assert_allclose(coordinates.to_pixels(grid, 4)[2, 1], [1.0, 2.0])


def _inside(vertices: np.ndarray, triangle: np.ndarray, points: np.ndarray) -> np.ndarray:
    """bool [N]: each point lies in its triangle (edges included), by edge cross products."""
    corners = vertices[mesh.TRIANGLES[triangle]]  # [N, 3, 2]
    edge = np.roll(corners, -1, axis=1) - corners
    to_point = points[:, None, :] - corners
    cross = edge[..., 0] * to_point[..., 1] - edge[..., 1] * to_point[..., 0]
    return np.all(cross >= -1e-12, axis=1)  # counter-clockwise on screen


def test_locate_agrees_with_matplotlib_trifinder(renders):
    vertices = renders["scream"].truth.vertices  # open mouth: no zero-area triangle
    finder = mtri.Triangulation(vertices[:, 0], vertices[:, 1], mesh.TRIANGLES).get_trifinder()
    scattered = np.random.default_rng(0).uniform(-1.1, 1.1, (3000, 2))
    points = np.vstack([geometry.pixel_grid(SIZE), scattered])
    expected = finder(points[:, 0], points[:, 1])
    assert np.all(expected >= 0)
    found = mesh.locate(points, vertices, SIZE)
    assert np.mean(found == expected) > 0.99
    assert np.all(_inside(vertices, found, points))  # differences are points on a shared edge
    assert np.all(_inside(vertices, expected, points))


def test_no_triangle_folds_over():
    rng = np.random.default_rng(0)
    skin = mesh.TRIANGLE_LAYERS == mesh.Layer.SKIN
    for seed in range(40):
        neutral = faces.make_identity(seed).neutral
        for expression in EXPRESSIONS:
            for intensity in (0.0, 0.5, 1.0):
                pose = faces.random_pose(rng, 1.5)
                vertices, _ = geometry.deform(neutral, expression, intensity, pose)
                areas = mesh.signed_areas(vertices, mesh.TRIANGLES)
                assert areas[skin].min() > 0, (seed, expression, intensity)
                assert areas[~skin].min() >= 0, (seed, expression, intensity)


def test_pair_with_itself_is_the_identity_grid(renders):
    truth = renders["smile"].truth
    pair = faces.pair_truth(truth, truth, SIZE)
    axis = (2 * np.arange(SIZE) + 1) / SIZE - 1  # pixel centres, align_corners=False
    np.testing.assert_allclose(pair.coords[..., 0], np.tile(axis, (SIZE, 1)), atol=1e-6)
    np.testing.assert_allclose(pair.coords[..., 1], np.tile(axis[:, None], (1, SIZE)), atol=1e-6)
    assert pair.visibility.min() == 1.0


@pytest.mark.parametrize("source, target", [("neutral", "smile"), ("smile", "scream"),
                                            ("squint", "surprise"), ("disgust", "neutral")])
def test_truth_warps_source_into_target(renders, source, target):
    src, tgt = renders[source], renders[target]
    pair = faces.pair_truth(src.truth, tgt.truth, SIZE)
    warped = _remap(src.image, pair.coords)
    error = np.abs(warped - tgt.image).mean(axis=-1)
    visible = pair.visibility > 0
    unwarped = np.abs(src.image.astype(np.float64) - tgt.image).mean()
    assert visible.mean() > 0.85
    # Of 255. Resampling sharp 64-px texture costs about 1.5 (mean) and 12-17
    # (99th percentile); a half-pixel slip costs 5, counting anti-aliased
    # opening edges as visible 1.9-2.1 and 18-24.
    assert error[visible].mean() < 1.8, error[visible].mean()
    assert np.percentile(error[visible], 99) < 18.0
    assert error[visible].mean() < 0.25 * unwarped


def test_project_sampler_agrees_with_cv2_remap(renders):
    from fvae_tf.warp import sampler  # TensorFlow: imported here, for this test only

    src, tgt = renders["neutral"], renders["scream"]
    pair = faces.pair_truth(src.truth, tgt.truth, SIZE)
    warped = sampler.bilinear_sample(src.image[None].astype(np.float32), pair.coords[None])[0]
    np.testing.assert_allclose(np.asarray(warped), _remap(src.image, pair.coords), atol=0.02)


def test_truth_carries_target_landmarks_onto_source_landmarks(renders):
    """An independent check of the direction: target landmark -> source landmark."""
    src, tgt = renders["surprise"], renders["smile"]
    pair = faces.pair_truth(src.truth, tgt.truth, SIZE)
    skin = list(range(36))  # jaw, brows, nose: away from the openings, where the field jumps
    where = tgt.landmarks[skin, None].astype(np.float32)  # [N, 1, 2] pixels
    at_landmarks = cv2.remap(pair.coords, where[..., 0], where[..., 1], cv2.INTER_LINEAR)[:, 0]
    np.testing.assert_allclose(coordinates.to_pixels(at_landmarks, SIZE), src.landmarks[skin],
                               atol=0.3)


def test_visibility_is_zero_on_new_teeth_and_one_on_shared_teeth(renders):
    neutral, smile, scream = renders["neutral"], renders["smile"], renders["scream"]
    for target in (smile, scream):
        mouth = _inside_polygon(target.landmarks[60:68], SIZE, 0.5)
        assert mouth.sum() > 4  # a smile parts the lips by about 2 pixels at 64
        pair = faces.pair_truth(neutral.truth, target.truth, SIZE)
        assert pair.visibility[mouth].max() == 0.0  # closed lips hid all of it
        away = ~_inside_polygon(target.landmarks[60:68], SIZE, -2.0)
        assert pair.visibility[away].mean() > 0.9
    pair = faces.pair_truth(smile.truth, scream.truth, SIZE)
    mouth = _inside_polygon(scream.landmarks[60:68], SIZE, 0.5)
    assert 0.05 < pair.visibility[mouth].mean() < 0.95  # upper teeth in both, not the tongue


def test_lower_teeth_follow_the_jaw(person):
    size = 128
    src, tgt = (faces.render(person, "scream", t, size) for t in (0.6, 1.0))
    pair = faces.pair_truth(src.truth, tgt.truth, size)
    lm = tgt.landmarks
    bottom = (_inside_polygon(lm[60:68], size, 0.5)
              & (np.arange(size)[:, None] > lm[62, 1] + 0.6 * (lm[66, 1] - lm[62, 1])))
    visible = bottom & (pair.visibility > 0)
    assert visible.sum() > 10  # lower teeth seen in both, 6 pixels further down in the target
    error = np.abs(_remap(src.image, pair.coords) - tgt.image).mean(axis=-1)
    assert error[visible].mean() < 6.0


def test_content_outside_the_source_frame_is_invisible(person):
    shifted = geometry.pose_matrix(shift=(0.3, 0.0))
    src = faces.render(person, "neutral", 1.0, SIZE, pose=shifted)
    tgt = faces.render(person, "neutral", 1.0, SIZE)
    pair = faces.pair_truth(src.truth, tgt.truth, SIZE)
    outside = np.any(np.abs(pair.coords) > 1.0, axis=-1)
    assert outside[:, -5:].all()  # the target's right edge lies beyond the shifted source's
    assert pair.visibility[outside].max() == 0.0
    assert pair.visibility[~outside].mean() > 0.95


def test_lids_hide_the_eyeball(renders):
    target = renders["surprise"]
    eyes = (_inside_polygon(target.landmarks[36:42], SIZE, 0.5)
            | _inside_polygon(target.landmarks[42:48], SIZE, 0.5))
    widened = faces.pair_truth(renders["neutral"].truth, target.truth, SIZE)
    assert 0.2 < widened.visibility[eyes].mean() < 0.8  # the neutral lids covered the rest
    squinted = faces.pair_truth(renders["squint"].truth, target.truth, SIZE)
    assert squinted.visibility[eyes].mean() < 0.1  # a slit: blended with the lids at 64 px


def test_expressions_move_the_landmarks_as_named(person):
    lm = {e: faces.render(person, e, 1.0, SIZE).landmarks for e in EXPRESSIONS}
    neutral = lm["neutral"]

    def opening(points, upper, lower):
        return float(np.mean(points[lower, 1] - points[upper, 1]))

    mouth = ([61, 62, 63], [67, 66, 65])
    eyes = ([37, 38, 43, 44], [41, 40, 47, 46])
    for corner, outward in ((48, -1), (54, 1)):  # smile: corners up and out
        assert lm["smile"][corner, 1] < neutral[corner, 1] - 1.0
        assert outward * (lm["smile"][corner, 0] - neutral[corner, 0]) > 0.5
    assert opening(lm["smile"], *mouth) > 1.0
    assert np.all(lm["surprise"][17:27, 1] < neutral[17:27, 1] - 1.5)  # brows up
    assert opening(lm["surprise"], *eyes) > opening(neutral, *eyes) + 0.5
    assert opening(lm["surprise"], *mouth) > 2.5
    assert opening(lm["squint"], *eyes) < 0.5 * opening(neutral, *eyes)
    inner_brows = [20, 21, 22, 23]
    assert np.all(lm["disgust"][inner_brows, 1] > neutral[inner_brows, 1] + 0.5)
    assert lm["disgust"][51, 1] < neutral[51, 1] - 0.8  # upper lip raised
    assert opening(lm["scream"], *mouth) > opening(lm["surprise"], *mouth)
    assert opening(lm["scream"], *eyes) < 0.5 * opening(neutral, *eyes)


def test_intensity_interpolates_the_geometry(person):
    zero, half, full = (faces.render(person, "surprise", t, SIZE) for t in (0.0, 0.5, 1.0))
    np.testing.assert_array_equal(zero.image, faces.render(person, "neutral", 1.0, SIZE).image)
    np.testing.assert_allclose(half.landmarks, (zero.landmarks + full.landmarks) / 2, atol=1e-9)


def test_identities_differ():
    a, b = (faces.render(faces.make_identity(s), "neutral", 1.0, SIZE) for s in (1, 2))
    assert np.abs(a.image.astype(np.float64) - b.image).mean() > 10
    assert np.abs(a.landmarks - b.landmarks).max() > 1.0


def test_sizes_share_the_geometry(person):
    small, large = (faces.render(person, "smile", 1.0, s) for s in (SIZE, 4 * SIZE))
    np.testing.assert_allclose(small.landmarks, (large.landmarks + 0.5) / 4 - 0.5, atol=1e-9)
    shrunk = cv2.resize(large.image, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    assert np.abs(shrunk.astype(np.float64) - small.image).mean() < 4.0


def test_truth_follows_alignment_transforms(person):
    rng = np.random.default_rng(3)
    src, tgt = (faces.render(person, e, 1.0, 128, pose=faces.random_pose(rng, 2.0))
                for e in ("neutral", "disgust"))
    src_face = alignment.align_face(src.image, src.landmarks, SIZE, 128)
    tgt_face = alignment.align_face(tgt.image, tgt.landmarks, SIZE, 128)
    pair = faces.pair_truth(src.truth, tgt.truth, SIZE, source_transform=src_face.transform,
                                target_transform=tgt_face.transform)
    error = np.abs(_remap(src_face.crop, pair.coords) - tgt_face.crop).mean(axis=-1)
    assert error[pair.visibility > 0].mean() < 3.0  # 2.4; a half-pixel slip costs 5.8


def test_files_round_trip(tmp_path, renders):
    paths = {}
    for e in ("neutral", "scream"):
        paths[e] = tmp_path / f"{e}.png"
        faces.save_ground_truth(faces.truth_path(paths[e]), renders[e].truth)
        faces.save_landmarks(faces.landmarks_path(paths[e]), renders[e].landmarks)
    from_files = faces.pair_truth_from_files(paths["neutral"], paths["scream"], SIZE)
    in_memory = faces.pair_truth(renders["neutral"].truth, renders["scream"].truth, SIZE)
    np.testing.assert_array_equal(from_files.coords, in_memory.coords)
    np.testing.assert_array_equal(from_files.visibility, in_memory.visibility)
    np.testing.assert_array_equal(faces.load_landmarks(paths["scream"]),
                                  renders["scream"].landmarks)
    np.save(faces.landmarks_path(paths["neutral"]), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="68, 2"):
        faces.load_landmarks(paths["neutral"])


_TINY = dataset.DatasetConfig(num_identities=2, seed=3, size=16, hr_size=32,
                                        intensities=(0.5, 1.0))


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("synthetic") / "set"
    dataset.write_dataset(out, _TINY)
    return out


def _tree_bytes(root: pathlib.Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(tiny_dataset, tmp_path):
    again = tmp_path / "again"
    dataset.write_dataset(again, _TINY)
    assert _tree_bytes(again) == _tree_bytes(tiny_dataset)
    other = tmp_path / "other"
    dataset.write_dataset(other, dataset.DatasetConfig(
        num_identities=1, seed=4, size=16, hr_size=32, intensities=(1.0,)))
    name = "session01/multiview/001/01/05_1/001_01_01_051_07.png"
    assert (other / name).read_bytes() != (tiny_dataset / name).read_bytes()


def test_layout_parses_back_to_the_right_labels(tiny_dataset):
    name = re.compile(r"session(\d\d)/multiview/(\d{3})/(\d\d)/05_1/"
                      r"(\d{3})_(\d\d)_(\d\d)_051_07\.png")
    found = []
    for path in sorted(tiny_dataset.glob("session*/multiview/*/*/05_1/*.png")):
        match = name.fullmatch(path.relative_to(tiny_dataset).as_posix())
        assert match, path
        session, subject, recording = int(match[1]), match[2], int(match[3])
        assert (match[4], int(match[5]), int(match[6])) == (subject, session, recording)
        label = MULTIPIE_RECORDINGS[(session, recording)]
        assert faces.load_ground_truth(faces.truth_path(path)).expression == label
        assert faces.load_landmarks(path).shape == (68, 2)
        assert cv2.imread(str(path)).shape == (32, 32, 3)
        small = tiny_dataset / dataset.LOWRES_DIR / path.relative_to(tiny_dataset)
        assert cv2.imread(str(small)).shape == (16, 16, 3)
        found.append((subject, label))
    assert len(found) == 2 * len(MULTIPIE_RECORDINGS)
    read = readers.read_synthetic(tiny_dataset)  # the data-prep reader agrees
    assert sorted((im.identity, im.expression) for im in read) == sorted(found)
    graded = sorted(p.name for p in (tiny_dataset / "graded" / "002").glob("*.png"))
    expected = ["neutral_000.png"] + [f"{e}_{percent}.png" for e in EXPRESSIONS[1:]
                                      for percent in ("050", "100")]
    assert graded == sorted(expected)
    truth = faces.load_ground_truth(tiny_dataset / "graded" / "002" / "smile_050.truth.npz")
    assert (truth.expression, truth.intensity) == ("smile", 0.5)
    for picture in ("contact_sheet.png", "ground_truth.png", "graded.png"):
        assert cv2.imread(str(tiny_dataset / picture)).shape[0] > 128


def test_write_dataset_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        dataset.write_dataset(tmp_path, _TINY)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
    with pytest.raises(ValueError, match="intensities"):
        dataset.write_dataset(tmp_path / "new",
                                        dataset.DatasetConfig(intensities=(0.333,)))


def _run_binary(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "data_prep.make_synthetic", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_binary_writes_and_refuses_cleanly(tmp_path):
    out = tmp_path / "set"
    done = _run_binary(f"--output_dir={out}", "--num_identities=1", "--size=16", "--hr_size=32",
                       "--intensities=1")
    assert done.returncode == 0, done.stderr
    assert (out / "info.json").is_file() and "wrote" in done.stdout
    new = f"--output_dir={tmp_path / 'x'}"
    for args, message in (((f"--output_dir={out}", "--num_identities=1"), "not empty"),
                          ((new, "--intensities=2"), "intensities"),
                          ((new, "--num_identities=0"), "num_identities")):
        failed = _run_binary(*args)
        assert failed.returncode != 0
        assert message in failed.stderr and "Traceback" not in failed.stderr
    assert not (tmp_path / "x").exists()
