"""End-to-end tests of `python -m data_prep.align_faces`, run as a subprocess."""

import json
import pathlib
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from fvae_tf.data import alignment

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_binary(*args):
    result = subprocess.run([sys.executable, "-m", "data_prep.align_faces", *map(str, args)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def read_rgb(path):
    return cv2.imread(str(path))[..., ::-1]


@pytest.fixture(scope="module")
def london_run(london_dir, tmp_path_factory):
    """The whole London set aligned once: (output dir, completed process)."""
    out = tmp_path_factory.mktemp("london_aligned")
    result = run_binary("--input_dir", london_dir, "--output_dir", out, "--hr_size", 128,
                        "--num_workers", 2)
    return out, result


@pytest.mark.slow
def test_london_set(london_run):
    out, result = london_run
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "alignment_summary.json").read_text())
    assert summary["num_images"] == 204 and summary["num_failed"] == 0
    aligned = set(summary["aligned"])
    identities = [p[len("neutral/"):][:3] for p in aligned if p.startswith("neutral/")]
    assert sum(f"smiling/{i}_08.jpg" in aligned for i in identities) >= 100
    assert f"aligned {summary['num_aligned']} of 204 images" in result.stdout

    template = alignment.canonical_template()
    template_eyes = np.stack([template[36:42].mean(0), template[42:48].mean(0)])
    errors = []
    for rel in summary["aligned"]:
        record = json.loads((out / (rel.rsplit(".", 1)[0] + "_align.json")).read_text())
        points = np.array(record["landmarks_aligned"])
        eyes = np.stack([points[36:42].mean(0), points[42:48].mean(0)])
        errors.append(np.linalg.norm(eyes - template_eyes, axis=1).max() * 32)  # 64-px units
    print(f"eye-centre error at 64 px: max {max(errors):.2f}, mean {np.mean(errors):.2f}")
    assert max(errors) < 1.5

    sheet = read_rgb(out / "contact_sheet.png")
    assert sheet.shape[1] == 16 * 65 + 1 and sheet.std() > 20


@pytest.mark.slow
def test_saved_transform_reproduces_the_crops(london_run):
    out, _ = london_run
    record = json.loads((out / "smiling" / "007_08_align.json").read_text())
    assert (record["crop_size"], record["crop_hr_size"]) == (64, 128)
    photo = alignment.load_image(record["source"])
    assert list(photo.shape[:2]) == [record["image_height"], record["image_width"]]
    transform = np.array(record["transform"])
    landmarks = np.array(record["landmarks"])
    np.testing.assert_allclose(alignment.transform_points(transform, landmarks),
                               record["landmarks_aligned"], atol=1e-9)
    for name, size in ((record["crop"], 64), (record["crop_hr"], 128)):
        saved = read_rgb(out / "smiling" / name)
        np.testing.assert_array_equal(saved, alignment.warp_to_crop(photo, transform, size))
    # The inverse of the pixel transform takes crop landmarks back onto the photo.
    to_photo = cv2.invertAffineTransform(alignment.crop_pixel_transform(transform, 64))
    crop_px = (np.array(record["landmarks_aligned"]) + 1) * 32 - 0.5
    np.testing.assert_allclose(alignment.transform_points(to_photo, crop_px), landmarks, atol=1e-6)


def make_input_folder(london_dir, folder):
    """Good, convertible and broken photos, named for what they are."""
    folder.mkdir()
    face = Image.open(london_dir / "neutral" / "002_03.jpg").convert("RGB")
    rgb = np.asarray(face)
    face.save(folder / "good.jpg")
    face.convert("L").save(folder / "grayscale.png")
    face.convert("RGBA").save(folder / "rgba.png")
    cv2.imwrite(str(folder / "deep16.png"), rgb[..., ::-1].astype(np.uint16) * 257)
    face.convert("CMYK").save(folder / "cmyk.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6
    face.transpose(Image.Transpose.ROTATE_90).save(folder / "exif_rotated.jpg", exif=exif)
    two = np.full((512, 1024, 3), 200, np.uint8)
    two[:, :512] = rgb
    two[64:448, 576:960] = cv2.resize(rgb, (384, 384), interpolation=cv2.INTER_AREA)
    Image.fromarray(two).save(folder / "two_faces.png")
    (folder / "sub").mkdir()
    ramp = np.linspace(0, 255, 256, dtype=np.uint8)
    Image.fromarray(np.broadcast_to(ramp[None, :, None], (256, 256, 3)).copy()).save(
        folder / "sub" / "no_face.png")
    (folder / "corrupt.jpg").write_bytes(np.random.default_rng(0).bytes(4000))
    data = (folder / "good.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[:len(data) // 2])
    (folder / "text.jpg").write_text("not a photo\n")
    face.resize((24, 24)).save(folder / "tiny.png")
    (folder / "README.txt").write_text("ignored: not an image extension\n")


EXPECTED = {
    "good.jpg": ("aligned", None),
    "grayscale.png": ("aligned", None),
    "rgba.png": ("aligned", None),
    "deep16.png": ("aligned", None),
    "cmyk.jpg": ("aligned", None),
    "exif_rotated.jpg": ("aligned", None),
    "two_faces.png": ("aligned", "multiple faces"),
    "sub/no_face.png": ("failed", "no face"),
    "corrupt.jpg": ("failed", "not an image"),
    "truncated.jpg": ("failed", "truncated or corrupt"),
    "text.jpg": ("failed", "not an image"),
    "tiny.png": ("failed", "too small"),
}


def outcomes(summary):
    """{path: (status, kind)} from a summary."""
    got = {p: ("aligned", None) for p in summary["aligned"]}
    for status in ("failed", "skipped", "warnings"):
        for kind, items in summary[status].items():
            for item in items:
                got[item["path"]] = ("aligned" if status == "warnings" else status, kind)
    return got


@pytest.mark.slow
def test_malformed_inputs(london_dir, tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    make_input_folder(london_dir, folder)
    result = run_binary("--input_dir", folder, "--output_dir", out, "--num_workers", 2)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "alignment_summary.json").read_text())
    assert outcomes(summary) == EXPECTED
    assert summary["num_ignored_files"] == 1
    for line in ("aligned 7 of 12 images (5 failed, 0 skipped)", "  no face (1): [",
                 "    tiny.png: image is 24x24 px", "  truncated or corrupt (1):",
                 "    two_faces.png: 2 faces found; aligned the largest"):
        assert line in result.stdout, result.stdout
    for rel, (status, _) in EXPECTED.items():
        stem = str(out / rel).rsplit(".", 1)[0]
        written = [pathlib.Path(stem + s).exists() for s in (".png", "_hr.png", "_align.json")]
        assert written == [status == "aligned"] * 3, rel
    assert read_rgb(out / "deep16.png").shape == (64, 64, 3)
    # The EXIF-rotated copy lands on the same upright face as the plain one.
    plain, rotated = (np.array(json.loads((out / f"{n}_align.json").read_text())["landmarks"])
                      for n in ("good", "exif_rotated"))
    assert np.abs(plain - rotated).mean() < 2

    # Same output folder: the two-face photo is now skipped and its old outputs go.
    result = run_binary("--input_dir", folder, "--output_dir", out, "--num_workers", 1,
                        "--multiple_faces", "skip", "--strict")
    assert result.returncode != 0 and "--strict" in result.stderr
    summary = json.loads((out / "alignment_summary.json").read_text())
    assert outcomes(summary)["two_faces.png"] == ("skipped", "multiple faces")
    assert not (out / "two_faces.png").exists() and not (out / "two_faces_align.json").exists()


@pytest.mark.slow
def test_nothing_aligned_is_an_error(london_dir, tmp_path):
    folder = tmp_path / "in"
    make_input_folder(london_dir, folder)
    for name in EXPECTED:
        if EXPECTED[name][0] == "aligned" and name != "two_faces.png":
            (folder / name).unlink()
    result = run_binary("--input_dir", folder, "--output_dir", tmp_path / "out",
                        "--num_workers", 1, "--multiple_faces", "error")
    assert result.returncode != 0
    assert "error: no face was aligned" in result.stderr
    summary = json.loads((tmp_path / "out" / "alignment_summary.json").read_text())
    assert summary["failed"]["multiple faces"] == [
        {"path": "two_faces.png", "reason": "2 faces found"}]


@pytest.mark.parametrize("setup,message", [
    (lambda tmp: tmp / "absent", "is not a folder"),
    (lambda tmp: tmp, "no image files"),
], ids=["missing", "empty"])
def test_bad_input_dir(tmp_path, setup, message):
    (tmp_path / "notes.txt").write_text("no photos here")
    result = run_binary("--input_dir", setup(tmp_path), "--output_dir", tmp_path / "out")
    assert result.returncode != 0
    assert message in result.stderr and result.stderr.count("\n") == 1
