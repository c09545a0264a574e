"""Aligns every face photo under a folder onto the canonical template.

    python -m data_prep.align_faces --input_dir IN --output_dir OUT

For each image IN/<rel>.<ext> (by extension: jpg, jpeg, png, bmp, tif, tiff,
webp, gif) it writes, mirroring the folders:
  OUT/<rel>.png          the --size crop (64x64 RGB)
  OUT/<rel>_hr.png       the --hr_size crop (256x256 RGB)
  OUT/<rel>_align.json   landmarks in the photo (pixels) and in the crop
                         (normalized [-1, 1]), the photo -> crop transform,
                         the source path and size (see `fvae_tf.alignment`)
and for the run OUT/alignment_summary.json (every file's outcome, grouped by
reason) and OUT/contact_sheet.png (the first 256 crops, in path order).

A file that cannot be aligned (no face, several faces under
--multiple_faces=skip|error, not an image, truncated, too small...) is reported
with its reason and its old outputs are removed. With --multiple_faces=skip it
counts as skipped, otherwise as failed. The exit status is non-zero when no
face was aligned, or when any file failed and --strict is set.
"""

import dataclasses
import enum
import json
import multiprocessing
import os
import pathlib
import sys
import tempfile
import time
from collections.abc import Iterator

import cv2
import numpy as np
from absl import app, flags

from fvae_tf import alignment, viz

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
_SUMMARY = "alignment_summary.json"
_CONTACT_SHEET = "contact_sheet.png"
_CONTACT_SHEET_CROPS = 256
_CONTACT_SHEET_COLUMNS = 16
_LISTED_PER_REASON = 10  # the printed summary lists this many files per reason
_HINTS = {
    "no face": "faces smaller than about 80 px: try --upsample 1",
    "multiple faces": "--multiple_faces chooses: largest, skip or error",
}

FLAGS = flags.FLAGS
flags.DEFINE_string("input_dir", None, "Folder of photos, searched recursively.")
flags.DEFINE_string("output_dir", None, "Where crops, landmarks and the summary go.")
flags.DEFINE_integer("size", 64, "Side of the training crop, pixels.", lower_bound=8)
flags.DEFINE_integer("hr_size", 256, "Side of the high-resolution crop, pixels.", lower_bound=8)
flags.DEFINE_integer("upsample", 0, "Times dlib's detector doubles each image first; each "
                     "doubling finds faces half as small, and is about 4x slower.", lower_bound=0)
flags.DEFINE_enum_class("multiple_faces", alignment.MultipleFaces.LARGEST,
                        alignment.MultipleFaces, "Photos with several faces: align the "
                        "largest (with a warning), skip the photo, or count it as failed.",
                        case_sensitive=False)
flags.DEFINE_bool("strict", False, "Exit non-zero if any image failed.")
flags.DEFINE_integer("num_workers", os.cpu_count() or 1, "Processes aligning in parallel.",
                     lower_bound=1)
flags.mark_flags_as_required(["input_dir", "output_dir"])


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every worker needs to align one file."""

    input_dir: pathlib.Path
    output_dir: pathlib.Path
    size: int
    hr_size: int
    upsample: int
    multiple_faces: alignment.MultipleFaces


class Status(enum.Enum):
    ALIGNED = "aligned"
    SKIPPED = "skipped"  # several faces under --multiple_faces=skip
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One file's result.

    Attributes:
      path: relative to the input folder.
      status: what happened.
      kind: the reason's category (failed, skipped) or the warning's (aligned).
      reason: the reason or warning for a person; None when aligned cleanly.
    """

    path: str
    status: Status
    kind: str | None = None
    reason: str | None = None


def _output_paths(settings: Settings, rel: str) -> tuple[pathlib.Path, pathlib.Path, pathlib.Path]:
    stem = settings.output_dir / pathlib.PurePath(rel).with_suffix("")
    return (stem.with_name(stem.name + ".png"), stem.with_name(stem.name + "_hr.png"),
            stem.with_name(stem.name + "_align.json"))


def _write_atomic(path: pathlib.Path, data: bytes) -> None:
    """Writes via a temp file in the same folder and os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _write_png(path: pathlib.Path, rgb: np.ndarray) -> None:
    # OpenCV encodes a 256x256 crop in 2.4 ms; Pillow's default level (viz.save_png)
    # takes 21 ms, as long as detecting the face.
    _write_atomic(path, cv2.imencode(".png", rgb[..., ::-1])[1].tobytes())


def _write_json(path: pathlib.Path, data: dict, indent: int | None = None) -> None:
    _write_atomic(path, json.dumps(data, indent=indent).encode())


def _align_one(job: tuple[Settings, str]) -> Outcome:
    """Aligns IN/<rel> and writes its three outputs; bad input becomes an Outcome."""
    settings, rel = job
    source = settings.input_dir / rel
    crop_path, hr_path, json_path = _output_paths(settings, rel)
    try:
        image = alignment.load_image(source)
        faces = alignment.detect_faces(image, settings.upsample)
        face = alignment.select_face(faces, settings.multiple_faces, source)
    except alignment.InputError as e:
        for path in (crop_path, hr_path, json_path):
            path.unlink(missing_ok=True)
        skipped = (isinstance(e, alignment.MultipleFacesError)
                   and settings.multiple_faces is alignment.MultipleFaces.SKIP)
        return Outcome(rel, Status.SKIPPED if skipped else Status.FAILED, e.kind, e.reason)
    aligned = alignment.align_face(image, face.landmarks, settings.size, settings.hr_size)
    _write_png(crop_path, aligned.crop)
    _write_png(hr_path, aligned.crop_hr)
    _write_json(json_path, {
        "source": str(source.resolve()),
        "image_width": image.shape[1],
        "image_height": image.shape[0],
        "num_faces": len(faces),
        "face_box": list(face.box),
        "crop": crop_path.name,
        "crop_size": settings.size,
        "crop_hr": hr_path.name,
        "crop_hr_size": settings.hr_size,
        "coordinates": ("landmarks: (x, y) pixels of the EXIF-upright photo, pixel centres at "
                        "integers; landmarks_aligned: normalized crop coordinates in [-1, 1], "
                        "pixel ((x + 1) * S - 1) / 2 at crop size S; transform: 2x3, photo "
                        "pixels -> normalized crop coordinates"),
        "landmarks": aligned.landmarks.tolist(),
        "landmarks_aligned": aligned.landmarks_aligned.tolist(),
        "transform": aligned.transform.tolist(),
    })
    if len(faces) > 1:
        return Outcome(rel, Status.ALIGNED, "multiple faces",
                       f"{len(faces)} faces found; aligned the largest")
    return Outcome(rel, Status.ALIGNED)


def _init_worker() -> None:
    cv2.setNumThreads(1)  # the processes already use every core


def _align_all(settings: Settings, paths: list[str], num_workers: int) -> Iterator[Outcome]:
    """Yields each file's Outcome as it finishes (any order)."""
    jobs = [(settings, rel) for rel in paths]
    if num_workers == 1:
        yield from map(_align_one, jobs)
        return
    # spawn: the children start clean instead of inheriting OpenCV's threads.
    with multiprocessing.get_context("spawn").Pool(num_workers, _init_worker) as pool:
        yield from pool.imap_unordered(_align_one, jobs)


def _find_images(input_dir: pathlib.Path, output_dir: pathlib.Path) -> tuple[list[str], int]:
    """Image files under `input_dir` (relative, sorted) and how many other files were ignored."""
    images, ignored = [], 0
    for path in sorted(input_dir.rglob("*")):
        rel = path.relative_to(input_dir)
        if (not path.is_file() or any(part.startswith(".") for part in rel.parts)
                or path.is_relative_to(output_dir)):
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES:
            images.append(rel.as_posix())
        else:
            ignored += 1
    return images, ignored


def _name_clashes(settings: Settings, paths: list[str]) -> list[Outcome]:
    """Failures for files whose outputs would overwrite an earlier file's (a.jpg and a.png)."""
    owner = {settings.output_dir / _SUMMARY: "the run summary",
             settings.output_dir / _CONTACT_SHEET: "the contact sheet"}
    clashes = []
    for rel in paths:
        outputs = _output_paths(settings, rel)
        other = next((owner[o] for o in outputs if o in owner), None)
        if other is None:
            owner.update(dict.fromkeys(outputs, rel))
        else:
            clashes.append(Outcome(rel, Status.FAILED, "output name clash",
                                   f"its outputs would overwrite those of {other}; rename one"))
    return clashes


class _Progress:
    """A one-line progress report on stderr, redrawn in place on a terminal."""

    def __init__(self, total: int):
        self._total = total
        self._start = self._last = time.monotonic()
        self._tty = sys.stderr.isatty()

    def update(self, done: int, failed: int) -> None:
        now = time.monotonic()
        if done < self._total and now - self._last < (0.5 if self._tty else 5.0):
            return
        self._last = now
        rate = done / max(now - self._start, 1e-9)
        eta = (self._total - done) / rate if rate > 0 else 0.0
        line = (f"aligning {done}/{self._total} ({failed} not aligned), "
                f"{rate:.1f} img/s, ETA {eta:.0f} s")
        end = "\n" if done == self._total or not self._tty else ""
        print(f"\r{line}" if self._tty else line, end=end, file=sys.stderr, flush=True)


def _grouped(outcomes: list[Outcome], status: Status) -> dict[str, list[dict[str, str]]]:
    """{kind: [{"path", "reason"}]} of the outcomes with `status` that carry a reason."""
    groups = {}
    for o in outcomes:
        if o.status == status and o.kind is not None:
            groups.setdefault(o.kind, []).append({"path": o.path, "reason": o.reason})
    return dict(sorted(groups.items()))


def _print_groups(title: str, groups: dict) -> None:
    if not groups:
        return
    print(f"{title}:")
    for kind, items in groups.items():
        hint = f" [{_HINTS[kind]}]" if kind in _HINTS else ""
        print(f"  {kind} ({len(items)}):{hint}")
        for item in items[:_LISTED_PER_REASON]:
            print(f"    {item['path']}: {item['reason']}")
        if len(items) > _LISTED_PER_REASON:
            print(f"    ... and {len(items) - _LISTED_PER_REASON} more (alignment_summary.json)")


def main(argv: list[str]) -> None:
    del argv
    input_dir = pathlib.Path(FLAGS.input_dir).resolve()
    output_dir = pathlib.Path(FLAGS.output_dir).resolve()
    if not input_dir.is_dir():
        sys.exit(f"error: --input_dir {input_dir} is not a folder; point it at the photos")
    if output_dir == input_dir:
        sys.exit("error: --output_dir must differ from --input_dir (crops are PNG images too)")
    paths, ignored = _find_images(input_dir, output_dir)
    if not paths:
        sys.exit(f"error: no image files ({', '.join(IMAGE_SUFFIXES)}) under {input_dir}")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        sys.exit(f"error: cannot create --output_dir {output_dir}: {e.strerror}")
    settings = Settings(input_dir, output_dir, FLAGS.size, FLAGS.hr_size, FLAGS.upsample,
                        FLAGS.multiple_faces)
    outcomes = _name_clashes(settings, paths)
    clashing = {o.path for o in outcomes}
    todo = [rel for rel in paths if rel not in clashing]
    num_workers = min(FLAGS.num_workers, len(todo))
    progress = _Progress(len(todo))
    start = time.monotonic()
    not_aligned = 0
    try:
        for done, outcome in enumerate(_align_all(settings, todo, num_workers), 1):
            outcomes.append(outcome)
            not_aligned += outcome.status is not Status.ALIGNED
            progress.update(done, not_aligned)
    except KeyboardInterrupt:
        sys.exit("interrupted; the outputs written so far are complete files")
    seconds = time.monotonic() - start
    outcomes.sort(key=lambda o: o.path)

    aligned = [o for o in outcomes if o.status is Status.ALIGNED]
    summary = {
        "input_dir": str(input_dir),
        "output_dir": str(output_dir),
        "flags": {"size": FLAGS.size, "hr_size": FLAGS.hr_size, "upsample": FLAGS.upsample,
                  "multiple_faces": FLAGS.multiple_faces.value, "strict": FLAGS.strict,
                  "num_workers": FLAGS.num_workers},
        "num_images": len(paths),
        "num_aligned": len(aligned),
        "num_failed": sum(o.status is Status.FAILED for o in outcomes),
        "num_skipped": sum(o.status is Status.SKIPPED for o in outcomes),
        "num_ignored_files": ignored,
        "seconds": round(seconds, 3),
        "images_per_second": round(len(todo) / seconds, 2) if seconds > 0 else None,
        "num_workers": num_workers,
        "failed": _grouped(outcomes, Status.FAILED),
        "skipped": _grouped(outcomes, Status.SKIPPED),
        "warnings": _grouped(outcomes, Status.ALIGNED),
        "aligned": [o.path for o in aligned],
    }
    _write_json(output_dir / _SUMMARY, summary, indent=1)
    crops = [cv2.imread(str(_output_paths(settings, o.path)[0]))[..., ::-1]
             for o in aligned[:_CONTACT_SHEET_CROPS]]
    if crops:
        rows = [crops[i:i + _CONTACT_SHEET_COLUMNS]
                for i in range(0, len(crops), _CONTACT_SHEET_COLUMNS)]
        _write_png(output_dir / _CONTACT_SHEET, viz.image_grid(rows, pad=1))

    print(f"aligned {summary['num_aligned']} of {len(paths)} images "
          f"({summary['num_failed']} failed, {summary['num_skipped']} skipped) in {seconds:.1f} s, "
          f"{summary['images_per_second']} img/s with {num_workers} process(es) -> {output_dir}")
    if ignored:
        print(f"ignored {ignored} file(s) without an image extension")
    _print_groups("failed", summary["failed"])
    _print_groups("skipped", summary["skipped"])
    _print_groups("warnings", summary["warnings"])
    if not aligned:
        sys.exit("error: no face was aligned; see the reasons above")
    if FLAGS.strict and summary["num_failed"]:
        sys.exit(f"error: {summary['num_failed']} image(s) failed and --strict is set")


if __name__ == "__main__":
    app.run(main)
