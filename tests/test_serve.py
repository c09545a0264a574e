"""The editing session behind the browser editor (`fvae_tf.edit.session`).

The oracle for every edit is the library's own batch edit
(`photo.edit_aligned`, Algorithm 1 on a whole photo): a slider move must give
the same photo to 1/255. The model is conftest's tiny trained run (the
pictures are nonsense; the plumbing is what is tested).
"""

import dataclasses
import pathlib

import numpy as np
import pytest
import skimage.data
from PIL import Image

from fvae_tf import viz
from fvae_tf.edit import direction_fit, photo, session
from fvae_tf.warp import flow_upsampling

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def editor(run_dir) -> session.Editor:
    return session.Editor.load(run_dir)


def _reference(editor: session.Editor, opened: session.PhotoSession, direction: np.ndarray,
               factor: float) -> photo.PhotoEdit:
    """The library's batch edit of the same photo and face."""
    return photo.edit_aligned(editor.fvae, opened.photo, opened.face, direction, [factor])


def _assert_within_one_level(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_a_slider_move_is_the_librarys_edit(editor, package_photos):
    assert editor.expressions == ("neutral", "smile", "surprise")  # the tiny dataset's labels
    assert editor.mask_model is not None
    for path in package_photos:
        opened = editor.open_photo(path)
        direction = editor.stats.direction("neutral", "smile")
        for factor in (0.0, 1.5, -1.0):
            result = opened.edit({"smile": factor, "surprise": 0.0}, source="neutral")
            reference = _reference(editor, opened, direction, factor)
            _assert_within_one_level(result.photo, reference.photo)
            _assert_within_one_level(result.face_after, viz.to_uint8(reference.crops_hr[-1]))
        np.testing.assert_array_equal(result.face_before, opened.face.crop_hr)
        assert result.photo.shape == opened.photo.shape
        assert np.any(result.photo != opened.photo)


def test_several_sliders_add_their_directions(editor, package_photos):
    opened = editor.open_photo(package_photos[1])
    stats = editor.stats
    # The photo shows a smile: each slider moves from the smile mean.
    combined = 0.7 * stats.direction("smile", "surprise") + 1.2 * stats.direction("smile",
                                                                                   "neutral")
    result = opened.edit({"surprise": 0.7, "neutral": 1.2, "smile": 2.0}, source="smile")
    _assert_within_one_level(result.photo, _reference(editor, opened, combined, 1.0).photo)


def test_the_session_encodes_once(editor, package_photos, monkeypatch):
    opened = editor.open_photo(package_photos[0])
    calls = []
    monkeypatch.setattr(editor.fvae, "encode", lambda *a: calls.append(a))
    for factor in (0.2, 0.4):
        opened.edit({"smile": factor})
    assert not calls


def test_a_fitted_slider_move_is_the_librarys_edit_under_the_fitted_rule(editor,
                                                                         package_photos,
                                                                         monkeypatch):
    # The fitted direction stands in for smile only; surprise keeps Algorithm 1's,
    # and both move under the residual, mirrored rule.
    assert editor.fitted == {}  # conftest's run has no fitted_directions.npz
    smile = np.random.default_rng(3).normal(0, 2, editor.fvae.config.latent_dim).astype(
        np.float32)
    fitted = dataclasses.replace(editor, fitted={("neutral", "smile"): smile})
    opened = fitted.open_photo(package_photos[0])
    moves = (({"smile": 1.5}, 1.5 * smile),
             ({"smile": -1.0, "surprise": 0.6},
              0.6 * fitted.stats.direction("neutral", "surprise") - smile))
    encode, calls = fitted.fvae.encode, []
    with monkeypatch.context() as patch:
        patch.setattr(fitted.fvae, "encode", lambda *a: calls.append(a) or encode(*a))
        results = [opened.edit(factors, fitted=True) for factors, _ in moves]
    assert len(calls) == 1  # the mirrored face, once
    for result, (_, direction) in zip(results, moves):
        reference = photo.edit_aligned(fitted.fvae, opened.photo, opened.face, direction, [1.0],
                                       direction_fit.FITTED_RULE)
        _assert_within_one_level(result.photo, reference.photo)
        _assert_within_one_level(result.face_after, viz.to_uint8(reference.crops_hr[-1]))
    # All factors 0: the photo itself, not its reconstruction; the paper's rule differs.
    _assert_within_one_level(opened.edit({"smile": 0.0}, fitted=True).photo, opened.photo)
    paper = opened.edit({"smile": 1.5}).photo
    assert np.abs(paper.astype(int) - results[0].photo.astype(int)).max() > 1
    _assert_within_one_level(paper, _reference(fitted, opened, 1.5 * fitted.stats.direction(
        "neutral", "smile"), 1.0).photo)


def test_interpolation_ends_at_each_faces_reconstruction(editor, package_photos):
    first, second = (editor.open_photo(p) for p in package_photos)
    for alpha, own in ((0.0, first), (1.0, second)):
        result = session.interpolate(first, second, alpha)
        coords = editor.fvae.decode_flow(own.latent, own.source)
        reconstruction = flow_upsampling.warp(own.source_hr, coords)[0].numpy()
        _assert_within_one_level(result.image, viz.to_uint8(reconstruction))
        assert result.confidence
    middle = session.interpolate(first, second, 0.5)
    assert 0.0 < middle.weight_first.mean() < 1.0
    assert middle.image.shape == (editor.hr_size, editor.hr_size, 3)


def test_bad_photos_raise_one_clear_message(editor, tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    with pytest.raises(session.PhotoError, match=r"^notes.jpg: not a recognised image format"):
        editor.open_photo(text)
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((300, 300, 3), 128, np.uint8)).save(blank)
    with pytest.raises(session.PhotoError, match=r"^blank.png: no face found"):
        editor.open_photo(blank)
    with pytest.raises(session.PhotoError, match="unknown expression 'grin'"):
        editor.open_photo(_astronaut(tmp_path)).edit({"grin": 1.0})


def _astronaut(folder: pathlib.Path) -> pathlib.Path:
    path = folder / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(path)
    return path


def test_several_faces_are_listed_and_one_can_be_chosen(editor, tmp_path):
    head = skimage.data.astronaut()[:300, 80:380]  # the face, not the badge dlib also finds
    two = tmp_path / "two.png"
    Image.fromarray(np.concatenate([head, head[:, ::-1]], axis=1)).save(two)
    with pytest.raises(session.SeveralFacesError) as error:
        editor.open_photo(two)
    assert len(error.value.faces) == 2 and error.value.photo.shape == (300, 600, 3)
    assert "2 faces found, choose the one to edit (face 1: " in str(error.value)
    assert "; face 2: " in str(error.value)
    for index in (0, 1):
        opened = editor.open_photo(two, face_index=index)
        changed = np.any(opened.edit({"smile": 2.0}).photo != opened.photo, axis=-1)
        left, _, right, _ = error.value.faces[index].box
        columns = np.nonzero(changed.any(axis=0))[0]
        assert columns.size and left - 100 < columns.min() and columns.max() < right + 100
    with pytest.raises(session.PhotoError, match="there is no face 3; the photo has 2 face"):
        editor.open_photo(two, face_index=2)


def test_a_huge_photo_is_downscaled_with_a_notice(editor, tmp_path):
    small = dataclasses.replace(editor, max_side=400)
    opened = small.open_photo(_astronaut(tmp_path))
    assert opened.photo.shape == (400, 400, 3)
    assert opened.notice == ("astronaut.png is 512x512 px; it is edited at 400x400 px "
                             "(longest side 400 px)")
    assert opened.edit({"smile": 1.0}).photo.shape == (400, 400, 3)
    assert editor.open_photo(_astronaut(tmp_path)).notice is None
