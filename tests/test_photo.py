"""Tests for fvae_tf.edit.photo: input expansion, detection errors, one alignment,
paste-back and the pictures written (random-weight tiny models; dlib for faces)."""

import numpy as np
import pytest
import skimage.data
from PIL import Image

from conftest import random_models
from fvae_tf.data import alignment
from fvae_tf.edit import photo

DETECT = photo.FaceDetection()


def _write(path, image: np.ndarray):
    Image.fromarray(image).save(path)
    return path


def test_photo_paths_expand_folders_and_refuse_clashes(tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    for name in ("b.jpg", "a.PNG", "notes.txt"):
        (folder / name).write_bytes(b"")
    single = tmp_path / "c.jpeg"
    assert photo.photo_paths([folder, single]) == [folder / "a.PNG", folder / "b.jpg", single]
    (tmp_path / "empty").mkdir()
    with pytest.raises(photo.PhotoError, match="empty: no photos found"):
        photo.photo_paths([tmp_path / "empty"])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.jpg").write_bytes(b"")
    with pytest.raises(photo.PhotoError, match="several inputs are named a;"):
        photo.photo_paths([folder, tmp_path / "other"])


def test_detection_errors_name_the_setting_to_change(tmp_path):
    blank = _write(tmp_path / "blank.png", np.full((200, 200, 3), 128, np.uint8))
    with pytest.raises(photo.PhotoError) as error:
        photo.load_aligned(blank, DETECT, 64, 128)
    assert str(error.value).startswith(f"{blank}: no face found")
    assert str(error.value).endswith("or set upsample 1")
    assert error.value.describe("--{}").endswith("or set --upsample 1")

    astronaut = skimage.data.astronaut()
    two = _write(tmp_path / "two.png", np.concatenate([astronaut, astronaut], axis=1))
    with pytest.raises(photo.PhotoError) as error:
        photo.load_aligned(two, DETECT, 64, 128)
    assert "faces found; crop the photo to one face" in str(error.value)
    assert "--multiple_faces=largest" in error.value.describe("--{}")
    largest = photo.FaceDetection(multiple_faces=alignment.MultipleFaces.LARGEST)
    image, face = photo.load_aligned(two, largest, 64, 128)
    assert image.shape == (512, 1024, 3) and face.crop.shape == (64, 64, 3)

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a photo")
    with pytest.raises(photo.PhotoError, match="check that the file is a readable photo"):
        photo.load_aligned(broken, DETECT, 64, 128)


def test_load_aligned_is_data_preparations_alignment(tmp_path):
    path = _write(tmp_path / "astronaut.png", skimage.data.astronaut())
    image, face = photo.load_aligned(path, DETECT, 64, 96)
    landmarks = alignment.detect_landmarks(image)
    oracle = alignment.align_face(image, landmarks, 64, 96)
    np.testing.assert_array_equal(face.crop, oracle.crop)
    np.testing.assert_array_equal(face.crop_hr, oracle.crop_hr)
    assert face.crop_hr.shape == (96, 96, 3)


def test_frame_keeps_the_aspect_ratio():
    assert photo.frame(np.zeros((100, 50, 3), np.uint8)).shape == (256, 128, 3)
    assert photo.frame(np.zeros((512, 300, 3), np.uint8), height=64).shape == (64, 38, 3)


def test_edit_photos_pastes_back_around_the_face_and_writes_the_pictures(tmp_path):
    fvae, _ = random_models(gain=0.5)
    astronaut = _write(tmp_path / "astronaut.png", skimage.data.astronaut())
    blank = _write(tmp_path / "blank.png", np.full((200, 200, 3), 128, np.uint8))
    direction = np.random.default_rng(0).normal(0, 3, fvae.config.latent_dim).astype(np.float32)
    out = tmp_path / "out"
    out.mkdir()
    done = list(photo.edit_photos(fvae, direction, "smile", [blank, astronaut], [0.0, 1.0], out,
                                  hr_size=128))
    assert done[0].error is not None and done[0].edit is None
    result = done[1].edit
    assert done[1].stem == out / "astronaut_smile"
    original = skimage.data.astronaut()
    assert result.photo.shape == original.shape and result.frames.shape[0] == 2
    outside = np.ones(original.shape[:2], bool)
    outside[result.region.slices] = False
    np.testing.assert_array_equal(result.photo[outside], original[outside])
    np.testing.assert_array_equal(result.frames[-1], result.photo[result.region.slices])
    assert result.crops_hr.shape == (2, 128, 128, 3) and result.coords.shape == (2, 64, 64, 2)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"astronaut_smile{end}" for end in (".png", "_steps.png", ".gif", "_flow.png",
                                             "_upsampling.png"))
    with Image.open(out / "astronaut_smile.gif") as gif:
        assert gif.height == photo.FRAME_HEIGHT


def test_interpolate_photos_needs_two(tmp_path):
    fvae, _ = random_models()
    with pytest.raises(photo.PhotoError, match="interpolation takes exactly two"):
        photo.interpolate_photos(fvae, None, [tmp_path / "a.png"], 3, tmp_path)
