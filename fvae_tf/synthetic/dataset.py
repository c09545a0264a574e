"""Writes the synthetic faces to disk in Multi-PIE's layout, with landmarks and ground truth.

An output directory (`write_dataset`) holds, for subjects SSS = 001..N:

  sessionSS/multiview/SSS/RR/05_1/SSS_SS_RR_051_07.png
      Multi-PIE's layout (`fvae_tf.expressions.MULTIPIE_RECORDINGS`): one
      image per (session, recording), expression at intensity 1, at
      `hr_size`; neutral appears in five recordings. Each recording has its
      own pose and lighting jitter, as real sessions do.
  graded/SSS/<expression>_<PPP>.png
      Every expression at each intensity PPP percent (`intensities`), in the
      canonical pose and plain light, so a series differs by expression
      alone; `graded/SSS/neutral_000.png` is intensity 0 of all of them.
  lowres/...
      The same two trees rendered at `size` (64) from the same geometry.

Beside every image STEM.png: STEM.landmarks.npy (float64 [68, 2], pixels of
that image) and STEM.truth.npz (`faces.save_ground_truth`); the truth of
any ordered pair of one subject's images comes from their two files
(`faces.pair_truth_from_files`). `info.json` and `README.txt` describe
the run; `contact_sheet.png` (subjects x expressions), `ground_truth.png`
(pairs warped by their truth) and `graded.png` (one person's intensities at
`size`) show it. The directory appears only when complete (built under a
temporary name beside it, then renamed).
"""

import dataclasses
import os
import pathlib
import shutil
import tempfile
from collections.abc import Callable
from typing import NamedTuple

import cv2
import numpy as np

from fvae_tf import atomic_io, viz
from fvae_tf.synthetic import faces
from fvae_tf.expressions import EXPRESSIONS, MULTIPIE_CAMERA, MULTIPIE_RECORDINGS
from fvae_tf.warp import coordinates

FORMAT = "fvae-synthetic"
FORMAT_VERSION = 1
LOWRES_DIR = "lowres"
GRADED_DIR = "graded"
INFO_NAME = "info.json"
README_NAME = "README.txt"
CONTACT_SHEET_NAME = "contact_sheet.png"
GROUND_TRUTH_NAME = "ground_truth.png"
GRADED_NAME = "graded.png"
MAX_IDENTITIES = 999  # Multi-PIE subject ids have three digits
MAX_SIZE = 4096
_SHEET_SUBJECTS = 8  # rows of the contact sheet
_SHEET_CELL = 128  # picture cells, pixels
_FIGURE_PAIRS = (("neutral", "smile"), ("smile", "scream"), ("squint", "surprise"),
                 ("neutral", "disgust"))  # (source, target) rows of ground_truth.png


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    """What `write_dataset` renders."""

    num_identities: int = 20
    seed: int = 0
    size: int = 64  # side of the low-resolution images (lowres/)
    hr_size: int = 256  # side of the main images
    intensities: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)  # graded/; 0 is always written
    pose_jitter: float = 1.0  # scale of the Multi-PIE images' pose jitter (0: none)
    lighting_jitter: float = 1.0  # scale of their lighting and colour jitter (0: none)

    def check(self) -> None:
        """Raises ValueError, naming the field, when a value is out of range."""
        if not 1 <= self.num_identities <= MAX_IDENTITIES:
            raise ValueError(f"num_identities must be in [1, {MAX_IDENTITIES}], "
                             f"got {self.num_identities}")
        if not 8 <= self.size <= self.hr_size <= MAX_SIZE:
            raise ValueError(f"need 8 <= size <= hr_size <= {MAX_SIZE}, "
                             f"got size {self.size}, hr_size {self.hr_size}")
        for t in self.intensities:
            if not 0.0 <= t <= 1.0 or abs(t * 100 - round(t * 100)) > 1e-9:
                raise ValueError(f"intensities must lie in [0, 1] with at most two decimals, "
                                 f"got {t}")
        if self.pose_jitter < 0 or self.lighting_jitter < 0:
            raise ValueError("pose_jitter and lighting_jitter must be >= 0")


def multipie_path(subject: int, session: int, recording: int) -> str:
    """Relative path of a Multi-PIE-layout image.

    E.g. session01/multiview/001/01/05_1/001_01_01_051_07.png.
    """
    camera = MULTIPIE_CAMERA.replace("_", "")
    name = (f"{subject:03d}_{session:02d}_{recording:02d}_{camera}_"
            f"{faces.ILLUMINATION:02d}.png")
    return f"session{session:02d}/multiview/{subject:03d}/{recording:02d}/{MULTIPIE_CAMERA}/{name}"


def graded_path(subject: int, expression: str, intensity: float) -> str:
    """Relative path of a graded image, e.g. graded/001/smile_050.png."""
    return f"{GRADED_DIR}/{subject:03d}/{expression}_{round(intensity * 100):03d}.png"


def subject_identity(seed: int, subject: int) -> faces.Identity:
    """The person behind subject number `subject` (1-based) of a data set made with `seed`."""
    return faces.make_identity(np.random.default_rng([seed, subject]))


def contact_sheet(rows: list[list[np.ndarray]], cell: int = _SHEET_CELL) -> np.ndarray:
    """Subjects x expressions, each image resized to `cell` pixels: uint8 RGB.

    Args:
      rows: per subject, uint8 [S, S, 3] images in `EXPRESSIONS` order.
      cell: side of each image in the sheet (area-averaged down, or
        repeated pixels up).
    """
    def fit(image):
        shrink = image.shape[0] > cell
        return cv2.resize(image, (cell, cell),
                          interpolation=cv2.INTER_AREA if shrink else cv2.INTER_NEAREST)

    return viz.image_grid([[fit(image) for image in row] for row in rows],
                          labels=list(EXPRESSIONS))


def ground_truth_figure(identity: faces.Identity, size: int = _SHEET_CELL) -> np.ndarray:
    """Pairs of one person: source | target | source warped by the truth | flow | visibility.

    The warp is cv2.remap at px = ((x + 1) * size - 1) / 2; the flow is the
    displacement coloured by `viz.flow_to_color` on a scale shared by the
    rows, its key beside the first row; visibility is white where the
    target's content is in the source.

    Returns:
      uint8 RGB picture.
    """
    expressions = {e for pair in _FIGURE_PAIRS for e in pair}
    renders = {e: faces.render(identity, e, 1.0, size) for e in expressions}
    pairs = [faces.pair_truth(renders[s].truth, renders[t].truth, size)
             for s, t in _FIGURE_PAIRS]
    flows = viz.flow_to_color(np.stack([pair.coords for pair in pairs]))
    rows = []
    for (source, target), pair, flow in zip(_FIGURE_PAIRS, pairs, flows):
        maps = coordinates.to_pixels(pair.coords, size)
        warped = cv2.remap(renders[source].image, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        rows.append([renders[source].image, renders[target].image, warped, flow,
                     np.round(pair.visibility * 255).astype(np.uint8)])
    rows[0].append(viz.color_wheel(size))
    return viz.image_grid(rows, labels=["source", "target", "source warped by truth", "true flow",
                                        "visibility", "flow key"])


def graded_figure(identity: faces.Identity, intensities: tuple[float, ...], size: int = 64,
                  cell: int = _SHEET_CELL) -> np.ndarray:
    """One person's expressions (rows) at intensity 0 and `intensities` (columns), at `size` px.

    Images are enlarged to about `cell` pixels by repeating pixels, so the
    low-resolution faces are seen as they are.

    Returns:
      uint8 RGB picture.
    """
    levels = [0.0] + sorted(set(intensities) - {0.0})
    rows = [[faces.render(identity, e, t, size).image for t in levels] for e in EXPRESSIONS[1:]]
    labels = [f"{round(t * 100)}%" for t in levels]
    return viz.image_grid(rows, labels=labels, scale=max(1, cell // size))


class _Job(NamedTuple):
    """One image to render and write (at both sizes)."""

    relative: str  # path under a tree
    expression: str
    intensity: float
    pose: np.ndarray | None
    lighting: faces.Lighting | None


def _jobs(config: DatasetConfig, subject: int) -> list[_Job]:
    """One subject's images: its Multi-PIE recordings (jittered), then its graded series."""
    jobs = []
    for (session, recording), expression in sorted(MULTIPIE_RECORDINGS.items()):
        rng = np.random.default_rng([config.seed, subject, session, recording])
        jobs.append(_Job(multipie_path(subject, session, recording), expression, 1.0,
                         faces.random_pose(rng, config.pose_jitter),
                         faces.random_lighting(rng, config.lighting_jitter)))
    jobs.append(_Job(graded_path(subject, "neutral", 0.0), "neutral", 0.0, None, None))
    for expression in EXPRESSIONS[1:]:
        for t in sorted(set(config.intensities) - {0.0}):
            jobs.append(_Job(graded_path(subject, expression, t), expression, t, None, None))
    return jobs


def _write_image(root: pathlib.Path, relative: str, rendered: faces.Rendered) -> None:
    """STEM.png, STEM.landmarks.npy and STEM.truth.npz under `root`."""
    path = root / relative
    atomic_io.write_png(path, rendered.image)
    faces.save_landmarks(faces.landmarks_path(path), rendered.landmarks)
    faces.save_ground_truth(faces.truth_path(path), rendered.truth)


def _write_subject(root: pathlib.Path, config: DatasetConfig, subject: int) -> list[np.ndarray]:
    """Renders and writes one subject's images at both sizes.

    Returns:
      Its first Multi-PIE recording of each expression at `hr_size`, in
      `EXPRESSIONS` order (a contact sheet row).
    """
    identity = subject_identity(config.seed, subject)
    sheet_row = {}
    for job in _jobs(config, subject):
        for size, tree in ((config.hr_size, root), (config.size, root / LOWRES_DIR)):
            rendered = faces.render(identity, job.expression, job.intensity, size,
                                        pose=job.pose, lighting=job.lighting)
            _write_image(tree, job.relative, rendered)
            if tree is root and job.pose is not None:
                sheet_row.setdefault(job.expression, rendered.image)
    return [sheet_row[e] for e in EXPRESSIONS]


def _info(config: DatasetConfig) -> dict:
    """The contents of info.json."""
    return {
        "format": FORMAT, "version": FORMAT_VERSION, "truth_version": faces.TRUTH_VERSION,
        "config": dataclasses.asdict(config),
        "num_images_per_tree": len(_jobs(config, 1)) * config.num_identities,
        "trees": {".": f"{config.hr_size}x{config.hr_size}",
                  LOWRES_DIR: f"{config.size}x{config.size}"},
        "camera": MULTIPIE_CAMERA, "illumination": faces.ILLUMINATION,
        "expressions": list(EXPRESSIONS),
        "recordings": {f"session{s:02d}/{r:02d}": e
                       for (s, r), e in sorted(MULTIPIE_RECORDINGS.items())},
        "files": {
            "STEM.png": "uint8 RGB image",
            "STEM.landmarks.npy": "float64 [68, 2] dlib landmarks (x, y), pixels of STEM.png "
                                  "(pixel centres at integers)",
            "STEM.truth.npz": "the image's geometry and appearance maps (version, expression, "
                              "intensity, vertices, pose, jaw, mouth, crease, opening); a pair's "
                              "truth: fvae_tf.synthetic.faces.pair_truth_from_files(source_png, "
                              "target_png, size)",
        },
    }


_README = """Synthetic faces with ground-truth flow, written by fvae_tf.synthetic.dataset
(python -m data_prep.make_synthetic). Settings and counts: info.json.
Pictures: contact_sheet.png (subjects x expressions), ground_truth.png
(subject 001's pairs warped by their truth, the true flow, visibility),
graded.png (subject 001's graded series at {size}x{size}).

sessionSS/multiview/SSS/RR/05_1/SSS_SS_RR_051_07.png
    Multi-PIE's layout, camera 05_1, illumination 07; expression by (session,
    recording): neutral 01/01 02/01 03/01 04/01 04/02, smile 01/02 03/02,
    surprise 02/02, squint 02/03, disgust 03/03, scream 04/03. Intensity 1,
    per-recording pose and lighting jitter. {hr}x{hr} pixels.
graded/SSS/EXPRESSION_PPP.png
    Each expression at PPP percent intensity, canonical pose, plain light;
    neutral_000.png is intensity 0. {hr}x{hr} pixels.
lowres/...
    The same images at {size}x{size} pixels, from the same geometry.

Beside each STEM.png:
  STEM.landmarks.npy  float64 [68, 2], dlib order, (x, y) pixels of the image.
  STEM.truth.npz      the image's geometry; for two images of one subject,
                      fvae_tf.synthetic.faces.pair_truth_from_files(source, target, size)
                      gives the target-to-source sampling coordinates
                      [size, size, 2] (normalized, align_corners=False) and a
                      visibility mask [size, size] (0 where the target shows
                      what the source does not: teeth, eyeball, new wrinkles).
"""


def write_dataset(output_dir: str | os.PathLike, config: DatasetConfig, *,
                  overwrite: bool = False,
                  progress: Callable[[int, int], None] | None = None) -> dict:
    """Renders `config.num_identities` subjects into `output_dir` (see the module docstring).

    Args:
      output_dir: created; an existing one must be empty unless `overwrite`.
      config: what to render; the same config gives the same bytes.
      overwrite: replace a non-empty `output_dir`.
      progress: called as progress(subjects done, subjects) after each subject.

    Returns:
      The contents of info.json.

    Raises:
      ValueError: a config value is out of range.
      FileExistsError: `output_dir` is a file, or not empty and not `overwrite`.
      OSError: a file cannot be written.
    """
    config.check()
    output = pathlib.Path(output_dir)
    if output.exists() and not output.is_dir():
        raise FileExistsError(f"{output} is a file, not a directory")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise FileExistsError(f"{output} is not empty; choose another directory or overwrite it")
    output.parent.mkdir(parents=True, exist_ok=True)
    building = pathlib.Path(tempfile.mkdtemp(prefix=f".{output.name}.building-", dir=output.parent))
    try:
        sheet = []
        for subject in range(1, config.num_identities + 1):
            row = _write_subject(building, config, subject)
            if subject <= _SHEET_SUBJECTS:
                sheet.append(row)
            if progress is not None:
                progress(subject, config.num_identities)
        first = subject_identity(config.seed, 1)
        atomic_io.write_png(building / CONTACT_SHEET_NAME, contact_sheet(sheet))
        atomic_io.write_png(building / GROUND_TRUTH_NAME, ground_truth_figure(first))
        atomic_io.write_png(building / GRADED_NAME,
                            graded_figure(first, config.intensities, config.size))
        info = _info(config)
        atomic_io.write_json(building / INFO_NAME, info)
        atomic_io.write_bytes(building / README_NAME,
                              _README.format(hr=config.hr_size, size=config.size).encode())
        building.chmod(0o755)  # mkdtemp makes 0700
        if output.exists():
            old = pathlib.Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=output.parent))
            output.rename(old / "old")
            building.rename(output)
            shutil.rmtree(old)
        else:
            building.rename(output)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return info
