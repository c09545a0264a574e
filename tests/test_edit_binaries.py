"""End-to-end runs of experiments.edit and experiments.interpolate (tiny preset, subprocesses).

The checkpoint comes from experiments.train and experiments.train_mask on the
tiny training dataset, with a learning rate high enough that three steps move
the flow visibly away from the identity (the pictures are nonsense; what is
tested is the plumbing: detection, paste-back, files, errors).
"""

import dataclasses
import json
import pathlib
import shutil

import numpy as np
import pytest
import skimage.data
from PIL import Image

from conftest import (TINY_SIZE, experiment_ok, fails_cleanly, run_experiment,
                      write_tiny_dataset)
from fvae_tf.data import alignment
from fvae_tf.edit import direction_fit, editing, fitted_directions, session
from fvae_tf.edit.photo import edit_aligned
from fvae_tf.train import checkpoints, latent_stats

pytestmark = pytest.mark.slow
EDIT_OUTPUTS = ("{}.png", "{}_steps.png", "{}.gif", "{}_flow.png", "{}_upsampling.png")


def _assert_edited_around_the_face(photo_path: pathlib.Path, edited_path: pathlib.Path) -> None:
    """Same size as the photo; every changed pixel near the face; some changed."""
    photo = alignment.load_image(photo_path)
    edited = alignment.load_image(edited_path)
    assert edited.shape == photo.shape
    changed = np.any(edited != photo, axis=-1)
    landmarks = alignment.detect_landmarks(photo)
    (x0, y0), (x1, y1) = landmarks.min(axis=0), landmarks.max(axis=0)
    pad = 0.35 * max(x1 - x0, y1 - y0)
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 0.05 * (x1 - x0) * (y1 - y0)
    assert xs.min() >= x0 - pad and xs.max() <= x1 + pad
    assert ys.min() >= y0 - pad and ys.max() <= y1 + pad


def _assert_edit_outputs(output_dir: pathlib.Path, photo: pathlib.Path, steps: int) -> None:
    stem = f"{photo.stem}_smile"
    for pattern in EDIT_OUTPUTS:
        assert (output_dir / pattern.format(stem)).is_file(), pattern.format(stem)
    _assert_edited_around_the_face(photo, output_dir / f"{stem}.png")
    # Frames are 256 px high; PIL merges identical GIF frames, so only the strip shows the count.
    with Image.open(output_dir / f"{stem}.gif") as gif:
        assert gif.height == 256
    with Image.open(output_dir / f"{stem}_steps.png") as strip:
        assert strip.width > steps * 0.8 * 256


def test_edit_package_photos(run_dir, package_photos, tmp_path):
    out = tmp_path / "out"
    stdout = experiment_ok("edit", f"--checkpoint_dir={run_dir}", "--input", *package_photos,
                           "--to=smile", "--steps=3", f"--output_dir={out}")
    for photo in package_photos:
        _assert_edit_outputs(out, photo, steps=3)
    assert stdout.count("flow upsampling") == 2
    assert not list(out.glob(".*"))  # no temporary files left


def test_fit_a_direction_then_edit_with_it(run_dir, tiny_dataset, package_photos, tmp_path):
    run = tmp_path / "run"  # a copy: the shared run stays without fitted directions
    shutil.copytree(run_dir, run)
    photo_path, out = package_photos[0], tmp_path / "out"
    edit = ("edit", f"--checkpoint_dir={run}", f"--input={photo_path}", "--to=smile",
            "--strength=1.5", "--steps=3", "--direction=fitted")
    fit_command = (f"python -m experiments.fit_direction --checkpoint_dir={run} "
                   "--from=neutral --to=smile")
    fails_cleanly(run_experiment(*edit, f"--output_dir={out}"),
                  f"error: {run} has no fitted neutral->smile direction; fit it with "
                  f"{fit_command}\n")
    assert not out.exists()

    # The dataset defaults to the run's own (its flags.json).
    result = run_experiment("fit_direction", f"--checkpoint_dir={run}", "--to=smile")
    assert result.returncode == 0, result.stderr
    assert "fitting the neutral->smile direction on 4 pairs 300/300" in result.stderr
    path = run / fitted_directions.FILENAME
    assert result.stdout.startswith(f"wrote {path}: the neutral->smile direction fitted on 4 "
                                    f"training pairs of {tiny_dataset[0]} (length ")
    model = editing.load_editing_model(run)
    fitted = fitted_directions.load(run, "neutral", "smile", model.stats)
    pairs = direction_fit.training_pairs(tiny_dataset[0], "neutral", "smile", TINY_SIZE)
    targets = direction_fit.pose_free_targets(pairs[1], pairs[2])
    error = [float(direction_fit.fitting_loss(model.fvae, pairs[0], pairs[1], targets, d,
                                              direction_fit.FITTED_RULE))
             for d in (model.stats.direction("neutral", "smile"), fitted)]
    assert error[1] < 0.9 * error[0], error

    # The edit is the library's, with the saved direction under the fitted rule.
    experiment_ok(*edit, f"--output_dir={out}")
    _assert_edit_outputs(out, photo_path, steps=3)
    editor = session.Editor.load(run)
    np.testing.assert_array_equal(editor.fitted["neutral", "smile"], fitted)
    opened = editor.open_photo(photo_path)
    reference = edit_aligned(editor.fvae, opened.photo, opened.face, fitted, [1.5],
                             direction_fit.FITTED_RULE).photo
    written = alignment.load_image(out / f"{photo_path.stem}_smile.png")
    assert np.abs(written.astype(int) - reference.astype(int)).max() <= 1

    # Training on changes the latent statistics: the direction is stale.
    stats = latent_stats.load(run / latent_stats.FILENAME)
    latent_stats.save(run / latent_stats.FILENAME,
                      dataclasses.replace(stats, means=stats.means + 0.5, step=stats.step + 3))
    fails_cleanly(run_experiment(*edit, f"--output_dir={tmp_path / 'other'}"),
                  f"error: {path}: the neutral->smile direction was fitted on the weights of "
                  f"step {stats.step}, and the run's best weights are now those of step "
                  f"{stats.step + 3}; fit it again with {fit_command}\n")
    assert not (tmp_path / "other").exists()


def test_fit_direction_refuses_what_it_cannot_fit_on(run_dir, tiny_dataset, package_photos,
                                                    tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    fit = ("fit_direction", f"--checkpoint_dir={run}", "--to=smile")
    fails_cleanly(run_experiment(*fit, f"--dataset_dir={tmp_path / 'no_dataset'}"),
                  f"error: {tmp_path / 'no_dataset'}/manifest.json: missing")
    larger = tmp_path / "larger_crops"
    write_tiny_dataset(larger, train_ids=1, val_ids=1, size=2 * TINY_SIZE)
    fails_cleanly(run_experiment(*fit, f"--dataset_dir={larger}"),
                  f"error: {larger}: its crops are {2 * TINY_SIZE} px, the model's "
                  f"{TINY_SIZE} px; build the dataset at the model's size")
    fails_cleanly(run_experiment(*fit[:2], "--to=grin"), "error: --from/--to: unknown "
                  "expression 'grin'")
    (run / checkpoints.FLAGS_FILE).unlink()
    fails_cleanly(run_experiment(*fit), f"error: {run}/flags.json names no training dataset; "
                  "pass --dataset_dir")
    assert not (run / fitted_directions.FILENAME).exists()
    # A broken fitted_directions.npz: every binary that reads it stops in one line.
    broken = run / fitted_directions.FILENAME
    broken.write_bytes(b"not an npz")
    cannot = f"error: {broken} cannot be read"
    fails_cleanly(run_experiment(*fit, f"--dataset_dir={tiny_dataset[0]}"), cannot)
    fails_cleanly(run_experiment("edit", f"--checkpoint_dir={run}", "--to=smile",
                                 f"--input={package_photos[0]}", "--direction=fitted",
                                 f"--output_dir={tmp_path / 'out'}"), cannot)
    fails_cleanly(run_experiment("serve", f"--checkpoint_dir={run}"), cannot)
    assert broken.read_bytes() == b"not an npz" and not (tmp_path / "out").exists()
    broken.unlink()
    fails_cleanly(run_experiment("fit_direction", f"--checkpoint_dir={tmp_path / 'none'}",
                                 "--to=smile"), "config.json is missing")


def test_edit_a_folder_of_london_faces(run_dir, london_dir, tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    photos = [london_dir / "neutral" / name for name in ("012_03.jpg", "042_03.jpg")]
    for photo in photos:
        shutil.copy(photo, folder)
    out = tmp_path / "out"
    experiment_ok("edit", f"--checkpoint_dir={run_dir}", f"--input={folder}", "--to=smile",
                  "--strength=1.5", "--steps=2", f"--output_dir={out}")
    for photo in photos:
        _assert_edit_outputs(out, folder / photo.name, steps=2)


def test_edit_reports_each_bad_photo_and_still_edits_the_good_one(run_dir, package_photos,
                                                                   tmp_path):
    astronaut = skimage.data.astronaut()
    bad = {"blank.png": np.full((200, 200, 3), 128, np.uint8),
           "two_faces.png": np.concatenate([astronaut, astronaut], axis=1)}
    for name, image in bad.items():
        Image.fromarray(image).save(tmp_path / name)
    (tmp_path / "broken.jpg").write_bytes(b"not a photo")
    inputs = [tmp_path / "blank.png", tmp_path / "two_faces.png", tmp_path / "broken.jpg",
              package_photos[0]]
    out = tmp_path / "out"
    result = run_experiment("edit", f"--checkpoint_dir={run_dir}", "--input", *inputs,
                            "--to=smile", "--steps=2", f"--output_dir={out}")
    fails_cleanly(result, f"error: {inputs[0]}: no face found",
                  f"error: {inputs[1]}: ", "faces found", "--multiple_faces=largest",
                  f"error: {inputs[2]}: not a recognised image format", "3 of 4 photo(s) failed")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        pattern.format("astronaut_smile") for pattern in EDIT_OUTPUTS)


def _copy_run(run_dir: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy


def test_edit_refuses_bad_checkpoints_and_labels(run_dir, package_photos, tmp_path):
    out = tmp_path / "out"
    photo = package_photos[0]

    def edit(checkpoint_dir, *flags):
        return run_experiment("edit", f"--checkpoint_dir={checkpoint_dir}", f"--input={photo}",
                              f"--output_dir={out}", *flags)

    fails_cleanly(edit(run_dir, "--to=grin"),
                  "unknown expression 'grin'; known expressions: neutral, smile, surprise")
    fails_cleanly(edit(tmp_path / "missing", "--to=smile"), "config.json is missing")

    no_stats = _copy_run(run_dir, tmp_path / "a")
    (no_stats / latent_stats.FILENAME).unlink()
    fails_cleanly(edit(no_stats, "--to=smile"), "latent_stats.npz is missing")

    other_config = _copy_run(run_dir, tmp_path / "b")
    config_path = other_config / "config.json"
    config = json.loads(config_path.read_text())
    config["config"]["latent_dim"] = 16
    config_path.write_text(json.dumps(config))
    fails_cleanly(edit(other_config, "--to=smile"), "does not fit this model")
    assert not out.exists()  # nothing written


def test_interpolate_with_and_without_confidence(run_dir, london_dir, tmp_path):
    faces = [london_dir / "neutral" / "012_03.jpg", london_dir / "smiling" / "012_08.jpg"]
    out = tmp_path / "out"
    stdout = experiment_ok("interpolate", f"--checkpoint_dir={run_dir}", "--inputs", *faces,
                           "--steps=3", "--hr_size=128", f"--output_dir={out}")
    assert "interpolation.gif" in stdout
    for name in ("interpolation.gif", "interpolation_no_confidence.gif"):
        with Image.open(out / name) as gif:
            assert gif.size == (128, 128)
    with Image.open(out / "interpolation.png") as grid:
        assert grid.height > 3 * 128 and grid.width > 5 * 128  # 3 steps x 5 columns

    no_mask = _copy_run(run_dir, tmp_path / "a")
    shutil.rmtree(no_mask / "mask")
    flags = [f"--checkpoint_dir={no_mask}", "--inputs", *faces, "--steps=2", "--hr_size=64"]
    fails_cleanly(run_experiment("interpolate", *flags, f"--output_dir={tmp_path / 'x'}"),
                  "experiments.train_mask", "--noconfidence")
    assert not (tmp_path / "x").exists()
    experiment_ok("interpolate", *flags, "--noconfidence", f"--output_dir={tmp_path / 'y'}")
    assert sorted(p.name for p in (tmp_path / "y").iterdir()) == [
        "interpolation.png", "interpolation_no_confidence.gif"]
    fails_cleanly(run_experiment("interpolate", f"--checkpoint_dir={run_dir}",
                                 f"--inputs={faces[0]}", f"--output_dir={tmp_path / 'z'}"),
                  "interpolation takes exactly two")
