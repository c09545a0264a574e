"""Tests for fvae_tf.data.readers: readers, identity split, ordered pairs, alignment routes."""

import json
import pathlib

import cv2
import numpy as np
import pytest

from fvae_tf.data import alignment, builder, readers

# Real Multi-PIE names, camera 05_1, illumination 07, and the expression the
# paper gives each (session, recording) (paper 5.1).
_SUBJECT_001 = {
    "001_01_01_051_07.png": "neutral", "001_01_02_051_07.png": "smile",
    "001_02_01_051_07.png": "neutral", "001_02_02_051_07.png": "surprise",
    "001_02_03_051_07.png": "squint",
    "001_03_01_051_07.png": "neutral", "001_03_02_051_07.png": "smile",
    "001_03_03_051_07.png": "disgust",
    "001_04_01_051_07.png": "neutral", "001_04_02_051_07.png": "neutral",
    "001_04_03_051_07.png": "scream",
}
_SUBJECT_002 = {"002_01_01_051_07.png": "neutral", "002_01_02_051_07.png": "smile"}
_SUBJECT_003 = {"003_02_01_051_07.png": "neutral", "003_02_02_051_07.png": "surprise",
                "003_02_03_051_07.png": "squint"}


def _multipie_path(root: pathlib.Path, name: str, camera_dir: str = "05_1") -> pathlib.Path:
    subject, session, recording = name.split("_")[:3]
    return root / f"session{session}" / "multiview" / subject / recording / camera_dir / name


def _touch(path: pathlib.Path) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


@pytest.fixture
def multipie_root(tmp_path):
    root = tmp_path / "Multi-Pie" / "data"
    for name in {**_SUBJECT_001, **_SUBJECT_002, **_SUBJECT_003}:
        _touch(_multipie_path(root, name))
        _touch(_multipie_path(root, name.replace("_07.png", "_00.png")))  # another flash
    _touch(_multipie_path(root, "001_01_01_041_07.png", camera_dir="04_1"))  # another camera
    return root


def test_multipie_labels(multipie_root):
    images = readers.read_multipie(multipie_root, illumination=7)
    got = {image.path.name: image.expression for image in images}
    assert got == {**_SUBJECT_001, **_SUBJECT_002, **_SUBJECT_003}
    by_name = {image.path.name: image for image in images}
    assert by_name["001_04_02_051_07.png"].identity == "001"
    assert by_name["001_04_02_051_07.png"].extras == {
        "session": 4, "recording": 2, "illumination": 7}
    assert readers.image_id(by_name["003_02_03_051_07.png"], multipie_root) == (
        "session02/multiview/003/03/05_1/003_02_03_051_07")


def test_multipie_pairs(multipie_root):
    images = readers.read_multipie(multipie_root, illumination=7)
    pairs = {(images[s].path.name, images[t].path.name)
             for s, t in readers.ordered_pairs(images)}
    # 001: 11 images, 11 * 10 ordered pairs minus the same-expression ones:
    # 5 neutrals (5 * 4) and 2 smiles (2 * 1) -> 88. 002: 2. 003: 3 * 2 = 6.
    assert len(pairs) == 88 + 2 + 6
    assert ("001_01_01_051_07.png", "001_04_03_051_07.png") in pairs  # neutral -> scream
    assert ("001_04_03_051_07.png", "001_01_01_051_07.png") in pairs  # and back
    assert ("001_04_01_051_07.png", "001_04_02_051_07.png") not in pairs  # both neutral
    assert ("001_01_02_051_07.png", "001_03_02_051_07.png") not in pairs  # both smile
    assert all(s[:3] == t[:3] for s, t in pairs)  # never across identities


def test_multipie_illumination_flag(multipie_root):
    images = readers.read_multipie(multipie_root, illumination=0)
    assert len(images) == 16 and all(i.path.name.endswith("_00.png") for i in images)
    with pytest.raises(readers.DatasetError, match=r"illuminations found: 00, 07"):
        readers.read_multipie(multipie_root, illumination=12)


def test_multipie_rejects_inconsistent_names(multipie_root):
    wrong = _multipie_path(multipie_root, "001_01_02_051_07.png").parent / "004_01_02_051_07.png"
    _touch(wrong)
    with pytest.raises(readers.DatasetError, match="disagrees with its folders") as info:
        readers.read_multipie(multipie_root)
    assert info.value.path == wrong


def test_multipie_rejects_unknown_recording(tmp_path):
    _touch(_multipie_path(tmp_path, "001_01_03_051_07.png"))
    with pytest.raises(readers.DatasetError, match="session 1 has no recording 3"):
        readers.read_multipie(tmp_path)


def _london_tree(root: pathlib.Path, identities: list[str]) -> pathlib.Path:
    for identity in identities:
        _touch(root / "neutral" / f"{identity}_03.jpg")
        _touch(root / "smiling" / f"{identity}_08.jpg")
    return root


def test_london_reader(tmp_path):
    root = _london_tree(tmp_path, ["001", "017"])
    _touch(root / "neutral" / ".DS_Store")
    _touch(root / "london_info.csv")
    images = readers.read_london(root)
    assert [(i.identity, i.expression, i.path.name) for i in images] == [
        ("001", "neutral", "001_03.jpg"), ("017", "neutral", "017_03.jpg"),
        ("001", "smile", "001_08.jpg"), ("017", "smile", "017_08.jpg")]
    assert len(readers.ordered_pairs(images)) == 4


def test_london_reader_errors(tmp_path):
    with pytest.raises(readers.DatasetError, match="expected neutral/ and smiling/"):
        readers.read_london(tmp_path)
    root = _london_tree(tmp_path, ["001"])
    _touch(root / "smiling" / "portrait.jpg")
    with pytest.raises(readers.DatasetError, match="NNN_XX.jpg"):
        readers.read_london(root)


def test_london_reader_on_the_real_set(london_dir):
    images = readers.read_london(london_dir)
    assert len(images) == 204
    assert len({i.identity for i in images}) == 102
    assert len(readers.ordered_pairs(images)) == 204


def test_folder_reader(tmp_path):
    _touch(tmp_path / "alice" / "neutral" / "a.jpg")
    _touch(tmp_path / "alice" / "smile" / "b.PNG")
    _touch(tmp_path / "alice" / "smile" / "notes.txt")
    _touch(tmp_path / "bob" / "scream" / "c.jpeg")
    _touch(tmp_path / ".git" / "objects" / "pack.png")  # hidden folders are not identities
    images = readers.read_folder(tmp_path)
    assert [(i.identity, i.expression, i.path.name) for i in images] == [
        ("alice", "neutral", "a.jpg"), ("alice", "smile", "b.PNG"), ("bob", "scream", "c.jpeg")]
    assert readers.ordered_pairs(images) == [(0, 1), (1, 0)]


def test_folder_reader_unknown_expression(tmp_path):
    _touch(tmp_path / "alice" / "smiling" / "a.jpg")
    with pytest.raises(readers.DatasetError, match="unknown expression 'smiling'.*neutral, smile"):
        readers.read_folder(tmp_path)


def test_folder_reader_csv(tmp_path):
    _touch(tmp_path / "photos" / "x.jpg")
    _touch(tmp_path / "photos" / "y.jpg")
    csv_path = tmp_path / "list.csv"
    header = "path,identity,expression\n"
    outside = _touch(tmp_path.parent / f"{tmp_path.name}_elsewhere" / "w.png")
    csv_path.write_text(header + "photos/x.jpg,p1,neutral\nphotos/y.jpg,p1,surprise\n"
                        f"{outside},p2,smile\n")
    images = readers.read_folder(tmp_path / "ignored", manifest_csv=csv_path)
    assert [(i.identity, i.expression) for i in images] == [
        ("p1", "neutral"), ("p1", "surprise"), ("p2", "smile")]
    assert readers.image_id(images[1], tmp_path) == "photos/y"
    assert readers.image_id(images[2], tmp_path) == f"../{tmp_path.name}_elsewhere/w"
    csv_path.write_text(header + "photos/x.jpg,p1,neutral\nphotos/z.jpg,p1,smile\n")
    with pytest.raises(readers.DatasetError, match="line 3.*z.jpg does not exist"):
        readers.read_folder(tmp_path, manifest_csv=csv_path)
    csv_path.write_text("file,identity,expression\nphotos/x.jpg,p1,neutral\n")
    with pytest.raises(readers.DatasetError, match="missing: path"):
        readers.read_folder(tmp_path, manifest_csv=csv_path)


def test_split_identities():
    identities = [f"{i:03d}" for i in range(1, 103)]
    train, val, test = readers.split_identities(identities + identities[:5], 0.1, 0.2, seed=0)
    # The London set's 102 people: round(102 * 0.2) = 20 test, round(10.2) = 10 val.
    assert (len(train), len(val), len(test)) == (72, 10, 20)
    assert sorted(train + val + test) == identities
    assert (train, val, test) == readers.split_identities(list(reversed(identities)), 0.1, 0.2,
                                                          seed=0)
    assert test != readers.split_identities(identities, 0.1, 0.2, seed=1)[2]
    assert readers.split_identities(["a", "b"], 0.2, 0.0, seed=0)[1] in (["a"], ["b"])
    # Three people: one each; two: train keeps one, test comes first.
    assert [len(s) for s in readers.split_identities(["a", "b", "c"], 0.1, 0.2, 0)] == [1, 1, 1]
    assert [len(s) for s in readers.split_identities(["a", "b"], 0.1, 0.2, 0)] == [1, 0, 1]
    assert readers.split_identities(["a", "b", "c"], 0.0, 0.0, seed=0) == (["a", "b", "c"], [], [])
    for fractions in ((1.0, 0.0), (0.0, 1.0), (0.5, 0.5), (-0.1, 0.2)):
        with pytest.raises(ValueError):
            readers.split_identities(identities, *fractions, seed=0)


def test_ordered_pairs_by_hand():
    images = [readers.FaceImage(pathlib.Path(n), i, e) for n, i, e in [
        ("a", "p", "neutral"), ("b", "q", "neutral"), ("c", "p", "smile"),
        ("d", "p", "smile"), ("e", "q", "neutral")]]
    assert sorted(readers.ordered_pairs(images)) == [(0, 2), (0, 3), (2, 0), (3, 0)]


def _face_photo(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic photo with landmarks: the template drawn at 200 px scale."""
    landmarks = alignment.canonical_template() * 80 + [150, 140]
    image = np.full((300, 300, 3), 90, np.uint8)
    image[::7] = 200  # stripes, so the crops have structure
    for x, y in landmarks:
        cv2.circle(image, (int(round(x)), int(round(y))), 3, (255, 40, 40), -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image[..., ::-1])
    return image, landmarks


def test_align_images_with_given_landmarks_and_bad_files(tmp_path):
    image, landmarks = _face_photo(tmp_path / "p" / "neutral" / "a.png")
    (tmp_path / "p" / "smile").mkdir()
    (tmp_path / "p" / "smile" / "broken.png").write_bytes(b"not a png")
    images = [readers.FaceImage(tmp_path / "p" / "neutral" / "a.png", "p", "neutral",
                                 landmarks=landmarks),
              readers.FaceImage(tmp_path / "p" / "smile" / "broken.png", "p", "smile",
                                 landmarks=landmarks)]
    calls = []
    aligned, failures = builder.align_images(
        images, tmp_path, size=32, hr_size=96, num_workers=1,
        progress=lambda done, total: calls.append((done, total)))
    want = alignment.align_face(image, landmarks, 32, 96)
    assert [a.image_id for a in aligned] == ["p/neutral/a"]
    np.testing.assert_array_equal(aligned[0].crop, want.crop)
    np.testing.assert_array_equal(aligned[0].crop_hr, want.crop_hr)
    # The photo was drawn from the template, so the aligned landmarks are it.
    np.testing.assert_allclose(aligned[0].landmarks, alignment.canonical_template(), atol=1e-9)
    np.testing.assert_allclose(aligned[0].transform, want.transform)
    assert failures == [builder.Failure(str(images[1].path), failures[0].reason)]
    assert "not a recognised image format" in failures[0].reason
    assert calls == [(1, 2), (2, 2)]


def test_align_images_reuses_aligned_dir(tmp_path):
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    crop_hr = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    landmarks = rng.uniform(-1, 1, (68, 2))
    aligned_dir = tmp_path / "aligned"
    (aligned_dir / "p" / "neutral").mkdir(parents=True)
    stem = aligned_dir / "p" / "neutral" / "a"
    cv2.imwrite(f"{stem}.png", crop[..., ::-1])
    cv2.imwrite(f"{stem}_hr.png", crop_hr[..., ::-1])
    pathlib.Path(f"{stem}_align.json").write_text(json.dumps({
        "crop_size": 32, "crop_hr_size": 96, "landmarks_aligned": landmarks.tolist(),
        "transform": [[2.0, 0.0, -1.0], [0.0, 2.0, -1.5]], "image_width": 1, "image_height": 2}))
    images = [readers.FaceImage(tmp_path / "in" / "p" / "neutral" / "a.jpg", "p", "neutral"),
              readers.FaceImage(tmp_path / "in" / "p" / "smile" / "b.jpg", "p", "smile")]
    aligned, failures = builder.align_images(images, tmp_path / "in", size=32, hr_size=96,
                                              aligned_dir=aligned_dir)
    np.testing.assert_array_equal(aligned[0].crop, crop)
    np.testing.assert_array_equal(aligned[0].crop_hr, crop_hr)
    np.testing.assert_allclose(aligned[0].landmarks, landmarks)
    np.testing.assert_array_equal(aligned[0].transform, [[2.0, 0.0, -1.0], [0.0, 2.0, -1.5]])
    # The crop spans photo x 0-1 and y 0.25-1.25: past the 1 x 2 px photo's right edge.
    np.testing.assert_array_equal(aligned[0].frame, alignment.photo_coverage(
        aligned[0].transform, (2, 1), 32))
    assert aligned[0].frame[0, 0] > 0.9 and aligned[0].frame[:, -1].max() < 0.05
    assert len(failures) == 1 and "b_align.json" in failures[0].reason
    _, failures = builder.align_images(images[:1], tmp_path / "in", size=64, hr_size=256,
                                        aligned_dir=aligned_dir)
    assert "aligned at 32/96 px" in failures[0].reason
