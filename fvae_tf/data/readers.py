"""Dataset readers, the identity split and the ordered pairs.

Every reader returns a list of `FaceImage`s: one photo with its identity and
one of the six expression labels of `fvae_tf.expressions`. Readers only look
at file names (and, for the synthetic set, the landmark files beside the
images); `fvae_tf.data.builder` aligns them and writes the pairs.

Sources and layouts:
  * multipie: `ROOT/sessionSS/multiview/SSS/RR/05_1/SSS_SS_RR_051_II.png`,
    camera 05_1, one illumination II; (session, recording) -> expression as in
    `MULTIPIE_RECORDINGS` (SPEC, Data).
  * synthetic: `fvae_tf.synthetic.faces`'s output, the Multi-PIE layout with a
    landmark file beside each image.
  * london: `ROOT/neutral/NNN_03.jpg` and `ROOT/smiling/NNN_08.jpg`.
  * folder: `ROOT/<identity>/<expression>/<photos> (image_io.IMAGE_SUFFIXES)`, or a CSV manifest
    with columns `path,identity,expression` (relative paths are relative to
    the CSV's folder, which is then the root).

Every image has a unique id: its path relative to the reader's root without
the extension (`image_id`); `data_prep.align_faces` names its outputs after
the same relative path (`ALIGNED/<id>.png`, `<id>_hr.png`, `<id>_align.json`),
which is how alignments are reused.
"""

import csv
import dataclasses
import enum
import itertools
import os
import pathlib
import re

import numpy as np

from fvae_tf.synthetic import faces
from fvae_tf.data.image_io import IMAGE_SUFFIXES
from fvae_tf.expressions import (
    EXPRESSIONS,
    MULTIPIE_CAMERA,
    MULTIPIE_DEFAULT_ILLUMINATION,
    MULTIPIE_RECORDINGS,
)

_MULTIPIE_NAME = re.compile(r"^(\d{3})_(\d{2})_(\d{2})_(\d{3})_(\d{2})\.png$")
_LONDON_NAME = re.compile(r"^(\d+)_\d+\.(jpe?g|png)$", re.IGNORECASE)
_LONDON_FOLDERS = {"neutral": "neutral", "smiling": "smile"}


class Source(str, enum.Enum):
    """The dataset readers."""

    SYNTHETIC = "synthetic"
    LONDON = "london"
    MULTIPIE = "multipie"
    FOLDER = "folder"


class DatasetError(Exception):
    """A dataset that cannot be read: `.path` names the file or folder, `.reason` says why."""

    def __init__(self, path: pathlib.Path | str | None, reason: str):
        super().__init__(f"{path}: {reason}" if path is not None else reason)
        self.path = path
        self.reason = reason


@dataclasses.dataclass(frozen=True, eq=False)
class FaceImage:
    """One photo of a dataset.

    Attributes:
      path: the image file.
      identity: the person, e.g. "001".
      expression: one of `EXPRESSIONS`.
      landmarks: float64 [68, 2] dlib landmarks in pixel coordinates of the
        image when the dataset ships them (synthetic), else None.
      extras: source-specific fields, e.g. Multi-PIE's session, recording and
        illumination.
    """

    path: pathlib.Path
    identity: str
    expression: str
    landmarks: np.ndarray | None = None
    extras: dict = dataclasses.field(default_factory=dict)


def image_id(image: FaceImage, root: pathlib.Path) -> str:
    """The image's unique id: its path relative to `root`, POSIX, without extension.

    A CSV may list photos outside its folder; their ids then start with "../".
    """
    return pathlib.PurePath(os.path.relpath(image.path, root)).with_suffix("").as_posix()


def read_multipie(
    root: pathlib.Path, illumination: int = MULTIPIE_DEFAULT_ILLUMINATION
) -> list[FaceImage]:
    """Reads Multi-PIE's frontal camera at one illumination.

    Args:
      root: the folder holding `session01` .. `session04`.
      illumination: flash index 0-19.

    Returns:
      The images sorted by path; `extras` holds session, recording and
      illumination (ints).

    Raises:
      DatasetError: a file name disagrees with its folders, a (session,
        recording) is not one of Multi-PIE's, or no image matched.
    """
    root = pathlib.Path(root)
    camera_dir = MULTIPIE_CAMERA
    camera_code = MULTIPIE_CAMERA.replace("_", "")
    images = []
    seen_illuminations = set()
    for path in sorted(root.glob(f"session*/multiview/*/*/{camera_dir}/*.png")):
        match = _MULTIPIE_NAME.match(path.name)
        if not match:
            raise DatasetError(path, "not a Multi-PIE file name SSS_SS_RR_CCC_II.png")
        subject, session, recording, camera, illum = match.groups()
        recording_dir, subject_dir = path.parents[1], path.parents[2]
        session_dir = path.parents[4]
        if (camera != camera_code or recording_dir.name != recording
                or subject_dir.name != subject or session_dir.name != f"session{session}"):
            raise DatasetError(path, "file name disagrees with its folders "
                               "sessionSS/multiview/SSS/RR/05_1")
        seen_illuminations.add(int(illum))
        if int(illum) != illumination:
            continue
        key = (int(session), int(recording))
        if key not in MULTIPIE_RECORDINGS:
            raise DatasetError(path, f"session {key[0]} has no recording {key[1]} in Multi-PIE")
        images.append(FaceImage(
            path=path, identity=subject, expression=MULTIPIE_RECORDINGS[key],
            extras={"session": key[0], "recording": key[1], "illumination": int(illum)}))
    if not images:
        found = ", ".join(f"{i:02d}" for i in sorted(seen_illuminations)) or "none"
        raise DatasetError(root, f"no camera {MULTIPIE_CAMERA} image with illumination "
                           f"{illumination:02d} (illuminations found: {found}); expected "
                           "sessionSS/multiview/SSS/RR/05_1/SSS_SS_RR_051_II.png under it")
    return images


def read_synthetic(root: pathlib.Path) -> list[FaceImage]:
    """Reads the synthetic set: Multi-PIE layout plus stored landmarks.

    Args:
      root: a folder written by `fvae_tf.synthetic.faces`.

    Returns:
      The images sorted by path, with `landmarks` filled in.

    Raises:
      DatasetError: as `read_multipie`, or a landmark file is missing.
    """
    images = read_multipie(root, illumination=faces.ILLUMINATION)
    out = []
    for image in images:
        try:
            landmarks = faces.load_landmarks(image.path)
        except (OSError, ValueError) as e:
            raise DatasetError(image.path, f"cannot read its landmarks: {e}") from None
        out.append(dataclasses.replace(image, landmarks=landmarks))
    return out


def read_london(root: pathlib.Path) -> list[FaceImage]:
    """Reads the Face Research Lab London Set (neutral and smiling).

    Args:
      root: the folder holding `neutral/NNN_03.jpg` and `smiling/NNN_08.jpg`.

    Returns:
      The images sorted by path; identity is NNN, expression "neutral" or
      "smile".

    Raises:
      DatasetError: a folder is missing, or an image's name is not NNN_XX.jpg.
    """
    root = pathlib.Path(root)
    images = []
    for folder, expression in _LONDON_FOLDERS.items():
        if not (root / folder).is_dir():
            raise DatasetError(root / folder, "missing; expected neutral/ and smiling/ folders")
        for path in sorted(_image_files(root / folder)):
            match = _LONDON_NAME.match(path.name)
            if not match:
                raise DatasetError(path, "not a London-set name NNN_XX.jpg")
            images.append(FaceImage(path=path, identity=match.group(1), expression=expression))
    return images


def read_folder(root: pathlib.Path, manifest_csv: pathlib.Path | None = None) -> list[FaceImage]:
    """Reads a user's photos, laid out in folders or listed in a CSV.

    Args:
      root: `ROOT/<identity>/<expression>/<photos> (image_io.IMAGE_SUFFIXES)`; ignored when
        `manifest_csv` is given.
      manifest_csv: optional CSV with a header `path,identity,expression`;
        relative paths are relative to the CSV's folder, which is then the
        root of the image ids.

    Returns:
      The images, sorted by path for folders, in CSV order for a CSV.

    Raises:
      DatasetError: an expression is not one of `EXPRESSIONS`, a listed file
        is missing, a CSV column is missing, or there is no image at all.
    """
    if manifest_csv is not None:
        return _read_csv(pathlib.Path(manifest_csv))
    root = pathlib.Path(root)
    images = []
    for expression_dir in sorted(p for p in root.glob("*/*") if p.is_dir()
                                 and not p.name.startswith(".")
                                 and not p.parent.name.startswith(".")):
        expression = _check_expression(expression_dir.name, expression_dir)
        for path in sorted(_image_files(expression_dir)):
            images.append(FaceImage(
                path=path, identity=expression_dir.parent.name, expression=expression))
    if not images:
        raise DatasetError(root, "no image found; expected ROOT/<identity>/<expression>/*.jpg "
                           f"with <expression> one of {', '.join(EXPRESSIONS)}")
    return images


def _read_csv(manifest_csv: pathlib.Path) -> list[FaceImage]:
    """Reads a folder-source CSV manifest (see `read_folder`)."""
    try:
        with open(manifest_csv, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise DatasetError(manifest_csv, f"cannot read: {e.strerror}") from None
    missing = {"path", "identity", "expression"} - set(rows[0] if rows else {})
    if missing:
        raise DatasetError(manifest_csv, f"needs a header path,identity,expression "
                           f"(missing: {', '.join(sorted(missing))}) and at least one row")
    images = []
    for line, row in enumerate(rows, start=2):
        path = manifest_csv.parent / row["path"]
        where = f"{manifest_csv} line {line}"
        if not path.is_file():
            raise DatasetError(where, f"image {path} does not exist")
        images.append(FaceImage(path=path, identity=row["identity"],
                                expression=_check_expression(row["expression"], where)))
    return images


def _check_expression(name: str, where: pathlib.Path | str) -> str:
    if name not in EXPRESSIONS:
        raise DatasetError(where, f"unknown expression {name!r}; "
                           f"known expressions: {', '.join(EXPRESSIONS)}")
    return name


def _image_files(folder: pathlib.Path) -> list[pathlib.Path]:
    return [p for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]


def read_dataset(
    source: Source | str,
    root: pathlib.Path,
    *,
    illumination: int = MULTIPIE_DEFAULT_ILLUMINATION,
    manifest_csv: pathlib.Path | None = None,
) -> list[FaceImage]:
    """Dispatches to the reader of `source` (see the module docstring)."""
    source = Source(source)
    if source is Source.MULTIPIE:
        return read_multipie(root, illumination)
    if source is Source.SYNTHETIC:
        return read_synthetic(root)
    if source is Source.LONDON:
        return read_london(root)
    return read_folder(root, manifest_csv)


def split_identities(
    identities: list[str], val_fraction: float, test_fraction: float, seed: int
) -> tuple[list[str], list[str], list[str]]:
    """Splits identities three ways, train / val / test, seeded (SPEC, Data: about 70/10/20).

    Test gets round(n * test_fraction) identities and val round(n *
    val_fraction), each at least one when its fraction is > 0 and there are
    enough identities, and train always keeps at least one. Val serves early
    stopping and every hyper-parameter choice; test only the reported numbers.

    Args:
      identities: the identities (duplicates and order do not matter).
      val_fraction, test_fraction: each in [0, 1), summing to less than 1.
      seed: the permutation seed; the same seed gives the same split.

    Returns:
      (train, val, test), each sorted.

    Raises:
      ValueError: fractions out of range.
    """
    if not (0.0 <= val_fraction < 1.0 and 0.0 <= test_fraction < 1.0
            and val_fraction + test_fraction < 1.0):
        raise ValueError(f"val_fraction and test_fraction must be in [0, 1) and sum to less "
                         f"than 1, got {val_fraction} and {test_fraction}")
    unique = sorted(set(identities))
    counts = []
    room = len(unique) - 1  # train keeps one
    for fraction in (test_fraction, val_fraction):
        count = round(len(unique) * fraction)
        if fraction > 0:
            count = max(count, 1)
        count = max(min(count, room), 0)
        room -= count
        counts.append(count)
    num_test, num_val = counts
    order = np.random.default_rng(seed).permutation(len(unique))
    test = sorted(unique[i] for i in order[:num_test])
    val = sorted(unique[i] for i in order[num_test:num_test + num_val])
    train = sorted(unique[i] for i in order[num_test + num_val:])
    return train, val, test


def ordered_pairs(images: list[FaceImage]) -> list[tuple[int, int]]:
    """Every ordered pair of two images of one identity with different expressions.

    Args:
      images: any list of images.

    Returns:
      (source index, target index) pairs into `images`, in a fixed order.
    """
    by_identity: dict[str, list[int]] = {}
    for i, image in enumerate(images):
        by_identity.setdefault(image.identity, []).append(i)
    return [(s, t) for indices in by_identity.values()
            for s, t in itertools.permutations(indices, 2)
            if images[s].expression != images[t].expression]
