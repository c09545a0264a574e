"""Alignment and image-loading tests.

Oracles: skimage's Umeyama estimate and numpy's lstsq for the similarity fit,
cv2.remap on the stated pixel convention for the crops, a linear ramp whose
box average is known exactly, Pillow's own decoding for the odd file kinds,
and a re-derivation of the canonical template from the London faces.
"""

import io

import cv2
import numpy as np
import pytest
import skimage.transform
from PIL import Image

from fvae_tf.data import alignment, image_io

MOVABLE_POINTS = [i for i in range(68) if i not in alignment.STABLE_POINTS]


def random_similarity(rng, scale):
    angle = rng.uniform(-0.4, 0.4)
    a, b = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[a, -b, rng.uniform(-1, 1)], [b, a, rng.uniform(-1, 1)]])


def eye_centres(points):
    """[2, 2]: the means of landmarks 36-41 and 42-47."""
    return np.stack([points[36:42].mean(axis=0), points[42:48].mean(axis=0)])


def crop_remap_oracle(image, transform, size):
    """cv2.remap reading, for each crop pixel centre, the photo point the transform sends there."""
    centres = (2 * np.arange(size) + 1) / size - 1  # align_corners=False
    grid = np.stack(np.meshgrid(centres, centres), axis=-1).reshape(-1, 2)
    photo = alignment.transform_points(cv2.invertAffineTransform(transform), grid)
    maps = photo.reshape(size, size, 2).astype(np.float32)
    return cv2.remap(image, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE).reshape(size, size, -1)


# ---------------------------------------------------------------- similarity


def test_fit_similarity_recovers_an_exact_similarity():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 500, (13, 2))
    truth = random_similarity(rng, 0.004)
    got = alignment.fit_similarity(src, alignment.transform_points(truth, src))
    np.testing.assert_allclose(got, truth, atol=1e-12)


def test_onto_eyes_and_nose_removes_the_head_motion_and_keeps_the_expression():
    # The other photo: the mouth 2 px right and 3 px down, then the whole head
    # rotated, scaled and shifted. Mapped back on eyes and nose, the head's
    # motion is gone exactly and the mouth's stays.
    rng = np.random.default_rng(11)
    reference = rng.uniform(0, 100, (68, 2))
    smiling = reference.copy()
    smiling[48:68] += [2.0, 3.0]
    other_photo = alignment.transform_points(random_similarity(rng, 1.2), smiling)
    back = alignment.onto_eyes_and_nose(other_photo, reference)
    np.testing.assert_allclose(back, smiling, atol=1e-9)
    assert alignment.EYES_AND_NOSE == tuple(range(27, 48))


def test_fit_similarity_matches_umeyama():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 500, (13, 2))
    dst = alignment.transform_points(random_similarity(rng, 0.004), src)
    dst += rng.normal(0, 0.02, dst.shape)
    want = skimage.transform.SimilarityTransform.from_estimate(src, dst).params[:2]
    np.testing.assert_allclose(alignment.fit_similarity(src, dst), want, atol=1e-9)


def test_weighted_fit_matches_lstsq():
    rng = np.random.default_rng(2)
    src = rng.uniform(0, 500, (13, 2))
    dst = alignment.transform_points(random_similarity(rng, 0.004), src)
    dst += rng.normal(0, 0.05, dst.shape)
    w = rng.uniform(0.5, 3, 13)
    # Unknowns (a, b, tx, ty): x' = a x - b y + tx, y' = b x + a y + ty.
    rows = np.concatenate([
        np.stack([src[:, 0], -src[:, 1], np.ones(13), np.zeros(13)], axis=1),
        np.stack([src[:, 1], src[:, 0], np.zeros(13), np.ones(13)], axis=1)])
    sw = np.sqrt(np.concatenate([w, w]))
    (a, b, tx, ty), *_ = np.linalg.lstsq(rows * sw[:, None], dst.T.reshape(-1) * sw, rcond=None)
    want = np.array([[a, -b, tx], [b, a, ty]])
    np.testing.assert_allclose(alignment.fit_similarity(src, dst, w), want, atol=1e-9)
    assert not np.allclose(alignment.fit_similarity(src, dst), want, atol=1e-6)


def test_fit_similarity_rejects_bad_input():
    with pytest.raises(ValueError, match="coincide"):
        alignment.fit_similarity(np.ones((4, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="point sets"):
        alignment.fit_similarity(np.zeros((4, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="positive weights"):
        alignment.fit_similarity(np.eye(2), np.eye(2), [1.0, 0.0])


def test_expressions_do_not_move_the_crop():
    rng = np.random.default_rng(3)
    photo_to_crop = random_similarity(rng, 0.004)
    landmarks = alignment.transform_points(cv2.invertAffineTransform(photo_to_crop),
                                           alignment.canonical_template())
    np.testing.assert_allclose(alignment.estimate_transform(landmarks), photo_to_crop, atol=1e-12)
    smiling = landmarks.copy()
    smiling[MOVABLE_POINTS] += rng.normal(0, 15, (len(MOVABLE_POINTS), 2))
    np.testing.assert_allclose(alignment.estimate_transform(smiling), photo_to_crop, atol=1e-12)
    nose_moved = landmarks.copy()
    nose_moved[33] += (0.0, 15.0)
    assert not np.allclose(alignment.estimate_transform(nose_moved), photo_to_crop, atol=1e-4)


def test_template_is_symmetric_and_placed_as_documented():
    template = alignment.canonical_template()
    assert template.shape == (68, 2) and template.dtype == np.float64
    mirror = list(alignment.MIRROR_PERMUTATION)
    assert sorted(mirror) == list(range(68))
    assert [mirror[i] for i in mirror] == list(range(68))
    np.testing.assert_array_equal(template[mirror] * (-1, 1), template)
    np.testing.assert_allclose(eye_centres(template).mean(axis=0), (0.0, -0.2), atol=1e-4)
    assert template[8, 1] == pytest.approx(0.8)
    assert np.all(np.abs(template) < 0.9)
    template[0] = 5.0  # a copy: the module's template stays intact
    assert alignment.canonical_template()[0, 0] != 5.0


# ---------------------------------------------------------------- crops


def test_crop_pixel_transform_follows_the_sampler_convention():
    rng = np.random.default_rng(4)
    transform = random_similarity(rng, 0.01)
    points = rng.uniform(0, 300, (5, 2))
    for size in (64, 256):
        normalized = alignment.transform_points(transform, points)
        want = ((normalized + 1) * size - 1) / 2
        got = alignment.transform_points(alignment.crop_pixel_transform(transform, size), points)
        np.testing.assert_allclose(got, want, atol=1e-9)


def test_warp_matches_remap_when_enlarging():
    rng = np.random.default_rng(5)
    image = cv2.GaussianBlur(rng.uniform(0, 255, (80, 90, 3)).astype(np.float32), (0, 0), 2)
    # 1.28 crop pixels per photo pixel at 64: no supersampling, plain bilinear.
    transform = np.array([[0.039, -0.009, -1.7], [0.009, 0.039, -1.5]])
    got = alignment.warp_to_crop(image, transform, 64)
    np.testing.assert_allclose(got, crop_remap_oracle(image, transform, 64), atol=0.05)


def test_warp_geometry_when_shrinking():
    # Channels hold each pixel's own x and y: any linear image is reproduced
    # exactly by bilinear sampling and by block averaging, so the crop must
    # hold the photo coordinates of each crop pixel's centre.
    h, w = 600, 700
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    image = np.stack([xs, ys, np.zeros_like(xs)], axis=-1)
    rng = np.random.default_rng(6)
    transform = random_similarity(rng, 0.006)  # ~0.2 crop px per photo px at 64
    transform[:, 2] = -transform[:, :2] @ (350.0, 300.0)
    got = alignment.warp_to_crop(image, transform, 64)
    centres = (2 * np.arange(64) + 1) / 64 - 1
    grid = np.stack(np.meshgrid(centres, centres), axis=-1).reshape(-1, 2)
    want = alignment.transform_points(cv2.invertAffineTransform(transform), grid)
    np.testing.assert_allclose(got[..., :2].reshape(-1, 2), want, atol=0.05)


def test_photo_coverage_is_the_share_of_each_crop_pixel_inside_the_photo():
    # One crop pixel per photo pixel, shifted by (10.25, 7.5): crop pixel
    # (cx, cy) reads photo point (cx - 10.25, cy - 7.5). Bilinear reading of
    # ones with zeros outside gives, per axis, 1 inside [0, W - 1], falling
    # linearly to 0 one pixel beyond.
    height, width, size = 40, 50, 64
    shift = np.array([10.25, 7.5])
    transform = np.zeros((2, 3))
    transform[[0, 1], [0, 1]] = 2.0 / size
    transform[:, 2] = (shift - (size - 1) / 2.0) * 2.0 / size
    got = alignment.photo_coverage(transform, (height, width, 3), size)

    def axis(points, length):
        return np.clip(np.minimum(points + 1.0, length - points), 0.0, 1.0)

    centres = np.arange(size, dtype=np.float64)
    want = np.outer(axis(centres - shift[1], height), axis(centres - shift[0], width))
    np.testing.assert_allclose(got, want, atol=1e-3)
    assert got.dtype == np.float32 and 0.0 < got.mean() < 1.0


def test_photo_coverage_when_shrinking():
    # 10 photo px per crop px of 64: warp_to_crop samples the photo at 640
    # px, one sample per photo pixel, at photo x = j - 140 for sample j (and
    # y the same), then averages 10 x 10 blocks. A 400 x 640 photo then fills
    # samples 140-539 across and 140-639 down: crop columns 14-53, rows 14-63.
    offset = (0.5 - 180.0) / 320.0
    transform = np.array([[2.0 / 640, 0.0, offset], [0.0, 2.0 / 640, offset]])
    got = alignment.photo_coverage(transform, (640, 400), 64)
    want = np.zeros((64, 64))
    want[14:, 14:54] = 1.0
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_shrinking_does_not_alias():
    stripes = np.zeros((1000, 1000, 3), np.uint8)
    stripes[:, ::2] = 255
    # 0.08 crop px per photo px; the crop sees photo pixels 100-900.
    transform = np.array([[0.0025, 0.0, -1.25], [0.0, 0.0025, -1.25]])
    crop = alignment.warp_to_crop(stripes, transform, 64)
    assert abs(crop.mean() - 127.5) < 3 and crop.std() < 8
    naive = cv2.warpAffine(stripes, alignment.crop_pixel_transform(transform, 64), (64, 64))
    assert naive.std() > 50  # what the supersampling prevents


# ---------------------------------------------------------------- loading


@pytest.fixture(scope="module")
def face(london_dir):
    """A London face, uint8 [512, 512, 3], and its dlib landmarks."""
    image = np.asarray(Image.open(london_dir / "neutral" / "001_03.jpg").convert("RGB"))
    return image, alignment.detect_landmarks(image)


def save(tmp_path, name, image, **kwargs):
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


def test_loads_rgb_jpeg_like_pillow(london_dir):
    path = london_dir / "smiling" / "001_08.jpg"
    got = image_io.load_image(path)
    assert got.dtype == np.uint8 and got.shape == (512, 512, 3)
    np.testing.assert_array_equal(got, np.asarray(Image.open(path).convert("RGB")))


def test_grayscale_and_palette(tmp_path, face):
    gray = Image.fromarray(face[0]).convert("L")
    got = image_io.load_image(save(tmp_path, "g.png", gray))
    for c in range(3):
        np.testing.assert_array_equal(got[..., c], np.asarray(gray))
    palette = Image.fromarray(face[0]).convert("P")
    got = image_io.load_image(save(tmp_path, "p.png", palette))
    np.testing.assert_array_equal(got, np.asarray(palette.convert("RGB")))


def test_alpha_is_composited_over_white(tmp_path):
    rng = np.random.default_rng(7)
    rgba = rng.integers(0, 256, (40, 50, 4), dtype=np.uint8)
    got = image_io.load_image(save(tmp_path, "a.png", Image.fromarray(rgba, "RGBA")))
    alpha = rgba[..., 3:] / 255.0
    want = rgba[..., :3] * alpha + 255 * (1 - alpha)
    np.testing.assert_allclose(got, want, atol=1)


def test_16_bit_keeps_the_high_byte(tmp_path, face):
    deep = face[0].astype(np.uint16) * 256 + 100  # high byte = the 8-bit value
    cv2.imwrite(str(tmp_path / "rgb16.png"), deep[..., ::-1])
    np.testing.assert_array_equal(image_io.load_image(tmp_path / "rgb16.png"), face[0])
    cv2.imwrite(str(tmp_path / "gray16.png"), deep[..., 0])
    assert Image.open(tmp_path / "gray16.png").mode == "I;16"
    got = image_io.load_image(tmp_path / "gray16.png")
    for c in range(3):
        np.testing.assert_array_equal(got[..., c], face[0][..., 0])


def test_cmyk_jpeg(tmp_path, face):
    path = save(tmp_path, "cmyk.jpg", Image.fromarray(face[0]).convert("CMYK"), quality=95)
    assert Image.open(path).mode == "CMYK"
    got = image_io.load_image(path)
    assert np.abs(got.astype(int) - face[0]).mean() < 4


def test_exif_orientation_is_applied(tmp_path, face):
    upright = face[0][:, 56:456]  # 512 high, 400 wide, so a missed rotation changes the shape
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the viewer rotates 90 degrees clockwise
    path = save(tmp_path, "rotated.jpg", stored, exif=exif, quality=95)
    got = image_io.load_image(path)
    assert got.shape == upright.shape
    assert np.abs(got.astype(int) - upright).mean() < 3


@pytest.mark.parametrize("name,data,kind", [
    ("notes.jpg", b"shopping list: eggs, milk\n" * 20, "not an image"),
    ("noise.png", np.random.default_rng(8).bytes(5000), "not an image"),
    ("empty.jpg", b"", "not an image"),
])
def test_non_images(tmp_path, name, data, kind):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(image_io.ImageReadError) as e:
        image_io.load_image(path)
    assert e.value.kind == kind and e.value.path == str(path) and name in str(e.value)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("keep", [0.3, 0.9, 0.999])
def test_truncated_files_are_errors(tmp_path, face, fmt, keep):
    buffer = io.BytesIO()
    Image.fromarray(face[0]).save(buffer, fmt)
    data = buffer.getvalue()
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(image_io.ImageReadError) as e:
        image_io.load_image(path)
    assert e.value.kind == "truncated or corrupt"


def test_other_unreadable_inputs(tmp_path):
    cases = {
        "missing": (tmp_path / "missing.jpg", "unreadable file"),
        "folder": (tmp_path, "unreadable file"),
        "tiny": (save(tmp_path, "tiny.png", Image.new("RGB", (20, 300))), "too small"),
        "float": (save(tmp_path, "float.tif", Image.new("F", (64, 64))), "unsupported image"),
    }
    for path, kind in cases.values():
        with pytest.raises(image_io.ImageReadError) as e:
            image_io.load_image(path)
        assert e.value.kind == kind, (path, e.value)
    assert image_io.load_image(save(tmp_path, "small.png", Image.new("RGB", (32, 32)))).shape == (
        32, 32, 3)


# ---------------------------------------------------------------- detection


def test_no_face(tmp_path):
    gradient = np.broadcast_to(np.linspace(0, 255, 256, dtype=np.uint8)[None, :, None],
                               (256, 256, 3)).copy()
    assert alignment.detect_faces(gradient) == []
    with pytest.raises(alignment.NoFaceError) as e:
        alignment.detect_landmarks(gradient)
    assert e.value.kind == "no face" and isinstance(e.value, alignment.FaceDetectionError)


def test_several_faces(face):
    big = face[0]
    small = cv2.resize(big, (384, 384), interpolation=cv2.INTER_AREA)
    both = np.full((512, 1024, 3), 200, np.uint8)
    both[:, :512] = big
    both[64:448, 576:960] = small
    faces = alignment.detect_faces(both)
    assert len(faces) == 2 and faces[0].area > faces[1].area
    # At full resolution, as `face` was found: the same box, so the same landmarks.
    got = alignment.detect_landmarks(both, multiple_faces="largest", detection_side=None)
    np.testing.assert_allclose(got, face[1], atol=1.0)
    for policy in ("skip", alignment.MultipleFaces.ERROR):
        with pytest.raises(alignment.MultipleFacesError) as e:
            alignment.detect_landmarks(both, multiple_faces=policy)
        assert e.value.num_faces == 2 and e.value.kind == "multiple faces"
    with pytest.raises(ValueError):
        alignment.select_face(faces[:1], multiple_faces="all")


def test_detection_on_a_shrunk_copy_finds_the_full_resolution_landmarks(face):
    image = face[0]
    full = alignment.detect_faces(image, detection_side=None)
    for scale in (2, 4):  # 1024 and 2048 px: searched on a 640 px copy
        big = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        assert max(big.shape[:2]) > alignment.DETECTION_SIDE
        fast = alignment.detect_faces(big)
        assert len(fast) == len(full) == 1
        # Same face, landmarks within a pixel or so at the photo's own scale.
        assert np.abs(fast[0].landmarks / scale - full[0].landmarks).mean() < 1.5
        # Boxes come from dlib's pyramid levels, 6/5 apart in scale.
        box = np.array(fast[0].box) / scale
        assert np.abs(box - np.array(full[0].box)).max() < 0.2 * (full[0].box[2] - full[0].box[0])


def test_a_face_too_small_for_the_shrunk_copy_is_found_at_full_resolution(face):
    # A 300 px photo (face box about 100 px) in a 2000 px one: 32 px in the 640 px copy, too small for
    # dlib there, so the full-resolution search finds it.
    small = cv2.resize(face[0], (300, 300), interpolation=cv2.INTER_AREA)
    photo = np.full((2000, 2000, 3), 200, np.uint8)
    photo[900:1200, 1300:1600] = small
    faces = alignment.detect_faces(photo)
    assert len(faces) == 1
    want = face[1] * (300 / face[0].shape[0]) + [1300, 900]
    assert np.abs(faces[0].landmarks - want).mean() < 1.5


def test_landmarks_follow_exif_rotation(tmp_path, face):
    exif = Image.Exif()
    exif[0x0112] = 8  # the viewer rotates 90 degrees counter-clockwise
    stored = Image.fromarray(face[0]).transpose(Image.Transpose.ROTATE_270)
    path = save(tmp_path, "rotated.jpg", stored, exif=exif, quality=95)
    got = alignment.detect_landmarks(alignment.load_image(path))
    assert np.abs(got - face[1]).mean() < 1.5


def test_align_face(face):
    image, landmarks = face
    aligned = alignment.align_face(image, landmarks, size=64, hr_size=128)
    assert aligned.crop.shape == (64, 64, 3) and aligned.crop.dtype == np.uint8
    assert aligned.crop_hr.shape == (128, 128, 3) and aligned.crop_hr.dtype == np.uint8
    np.testing.assert_array_equal(aligned.landmarks, landmarks)
    np.testing.assert_allclose(
        aligned.landmarks_aligned, alignment.transform_points(aligned.transform, landmarks))
    # Both crops show the same square of the photo.
    shrunk = cv2.resize(aligned.crop_hr, (64, 64), interpolation=cv2.INTER_AREA)
    assert np.abs(shrunk.astype(int) - aligned.crop).mean() < 2
    error_px = np.linalg.norm(eye_centres(aligned.landmarks_aligned)
                              - eye_centres(alignment.canonical_template()), axis=1) * 32
    assert error_px.max() < 1.5
    with pytest.raises(ValueError, match="uint8"):
        alignment.align_face(image.astype(np.float32), landmarks)


@pytest.mark.slow
def test_template_rederived_from_london_neutral_faces(london_dir):
    """Re-runs the recipe in face_template._TEMPLATE's comment."""
    paths = sorted((london_dir / "neutral").glob("*.jpg"))
    assert len(paths) == 102
    shapes = [alignment.detect_landmarks(alignment.load_image(p)) for p in paths]
    stable, weights = list(alignment.STABLE_POINTS), alignment.STABLE_WEIGHTS
    mirror = list(alignment.MIRROR_PERMUTATION)
    mean = shapes[0]
    for _ in range(10):
        fitted = [alignment.transform_points(
            alignment.fit_similarity(s[stable], mean[stable], weights), s) for s in shapes]
        mean = np.mean(fitted, axis=0)
        mean = (mean + mean[mirror] * (-1, 1)) / 2
    eyes = eye_centres(mean).mean(axis=0)
    template = (mean - eyes) / (mean[8, 1] - eyes[1]) + (0.0, -0.2)
    np.testing.assert_allclose(alignment.canonical_template(), template, atol=1e-4)
