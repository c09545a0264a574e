"""Aligns every face photo under a folder onto the canonical template.

For each image IN/<rel>.<ext> (by extension: jpg, jpeg, png, bmp, tif, tiff,
webp, gif) `align_folder` writes, mirroring the folders:
  OUT/<rel>.png          the `size` crop (64x64 RGB)
  OUT/<rel>_hr.png       the `hr_size` crop (256x256 RGB)
  OUT/<rel>_align.json   landmarks in the photo (pixels) and in the crop
                         (normalized [-1, 1]), the photo -> crop transform,
                         the source path and size (see `fvae_tf.data.alignment`)
and for the run OUT/alignment_summary.json (every file's outcome, grouped by
reason) and OUT/contact_sheet.png (the first 256 crops, in path order).

A file that cannot be aligned (no face, several faces under
multiple_faces=skip|error, not an image, truncated, too small...) becomes an
`Outcome` with its reason, and its old outputs are removed; every file is
written atomically.
"""

import dataclasses
import enum
import multiprocessing
import pathlib
import time
from collections.abc import Callable, Iterable, Iterator

import cv2

from fvae_tf import atomic_io, viz
from fvae_tf.data import alignment
from fvae_tf.data.image_io import IMAGE_SUFFIXES

SUMMARY_NAME = "alignment_summary.json"
CONTACT_SHEET_NAME = "contact_sheet.png"
_CONTACT_SHEET_CROPS = 256
_CONTACT_SHEET_COLUMNS = 16


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
    SKIPPED = "skipped"  # several faces under multiple_faces=skip
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


def output_paths(settings: Settings, rel: str) -> tuple[pathlib.Path, pathlib.Path, pathlib.Path]:
    """(crop, high-resolution crop, alignment JSON) paths of input file `rel`."""
    stem = settings.output_dir / pathlib.PurePath(rel).with_suffix("")
    return (stem.with_name(stem.name + ".png"), stem.with_name(stem.name + "_hr.png"),
            stem.with_name(stem.name + "_align.json"))


def _align_one(job: tuple[Settings, str]) -> Outcome:
    """Aligns IN/<rel> and writes its three outputs; bad input becomes an Outcome."""
    settings, rel = job
    source = settings.input_dir / rel
    crop_path, hr_path, json_path = output_paths(settings, rel)
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
    atomic_io.write_png(crop_path, aligned.crop)
    atomic_io.write_png(hr_path, aligned.crop_hr)
    atomic_io.write_json(json_path, {
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
        "landmarks": aligned.landmarks,
        "landmarks_aligned": aligned.landmarks_aligned,
        "transform": aligned.transform,
    })
    if len(faces) > 1:
        return Outcome(rel, Status.ALIGNED, "multiple faces",
                       f"{len(faces)} faces found; aligned the largest")
    return Outcome(rel, Status.ALIGNED)


def _init_worker() -> None:
    cv2.setNumThreads(1)  # the processes already use every core


def map_in_processes(fn: Callable, jobs: Iterable, num_workers: int,
                     ordered: bool = False) -> Iterator:
    """Yields fn(job) for every job, over `num_workers` processes.

    Results come in completion order, or in job order when `ordered` (a
    result that finishes early waits for the ones before it).
    `fn` must be a module-level function (it is pickled). With one worker the
    jobs run in this process, in order. The processes are spawned, so they
    start clean instead of inheriting OpenCV's and TensorFlow's threads;
    leaving the generator (also on Ctrl-C) terminates them.
    """
    if num_workers <= 1:
        yield from map(fn, jobs)
        return
    with multiprocessing.get_context("spawn").Pool(num_workers, _init_worker) as pool:
        yield from (pool.imap if ordered else pool.imap_unordered)(fn, jobs)


def find_images(input_dir: pathlib.Path, output_dir: pathlib.Path) -> tuple[list[str], int]:
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
    owner = {settings.output_dir / SUMMARY_NAME: "the run summary",
             settings.output_dir / CONTACT_SHEET_NAME: "the contact sheet"}
    clashes = []
    for rel in paths:
        outputs = output_paths(settings, rel)
        other = next((owner[o] for o in outputs if o in owner), None)
        if other is None:
            owner.update(dict.fromkeys(outputs, rel))
        else:
            clashes.append(Outcome(rel, Status.FAILED, "output name clash",
                                   f"its outputs would overwrite those of {other}; rename one"))
    return clashes


def _grouped(outcomes: list[Outcome], status: Status) -> dict[str, list[dict[str, str]]]:
    """{kind: [{"path", "reason"}]} of the outcomes with `status` that carry a reason."""
    groups = {}
    for o in outcomes:
        if o.status == status and o.kind is not None:
            groups.setdefault(o.kind, []).append({"path": o.path, "reason": o.reason})
    return dict(sorted(groups.items()))


def _write_contact_sheet(settings: Settings, aligned: list[Outcome]) -> None:
    crops = [cv2.imread(str(output_paths(settings, o.path)[0]))[..., ::-1]
             for o in aligned[:_CONTACT_SHEET_CROPS]]
    if crops:
        rows = [crops[i:i + _CONTACT_SHEET_COLUMNS]
                for i in range(0, len(crops), _CONTACT_SHEET_COLUMNS)]
        viz.save_png(settings.output_dir / CONTACT_SHEET_NAME, viz.image_grid(rows, pad=1))


def align_folder(settings: Settings, num_workers: int,
                 progress: Callable[[int, int, int], None] | None = None) -> dict:
    """Aligns every image under the input folder; writes crops, summary and contact sheet.

    Args:
      settings: folders, crop sizes and detection options.
      num_workers: processes aligning in parallel.
      progress: called as progress(done, total, not aligned so far) after each file.

    Returns:
      The summary written to OUT/alignment_summary.json.

    Raises:
      alignment.InputError: the input folder holds no image file.
    """
    paths, ignored = find_images(settings.input_dir, settings.output_dir)
    if not paths:
        raise alignment.InputError(
            f"no image files ({', '.join(IMAGE_SUFFIXES)}) in it", settings.input_dir, "no images")
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    outcomes = _name_clashes(settings, paths)
    clashing = {o.path for o in outcomes}
    todo = [rel for rel in paths if rel not in clashing]
    num_workers = min(num_workers, len(todo))
    start = time.monotonic()
    not_aligned = 0
    jobs = [(settings, rel) for rel in todo]
    for done, outcome in enumerate(map_in_processes(_align_one, jobs, num_workers), 1):
        outcomes.append(outcome)
        not_aligned += outcome.status is not Status.ALIGNED
        if progress is not None:
            progress(done, len(todo), not_aligned)
    seconds = time.monotonic() - start
    outcomes.sort(key=lambda o: o.path)
    aligned = [o for o in outcomes if o.status is Status.ALIGNED]
    summary = {
        "input_dir": str(settings.input_dir),
        "output_dir": str(settings.output_dir),
        "settings": {"size": settings.size, "hr_size": settings.hr_size,
                     "upsample": settings.upsample,
                     "multiple_faces": settings.multiple_faces.value},
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
    atomic_io.write_json(settings.output_dir / SUMMARY_NAME, summary)
    _write_contact_sheet(settings, aligned)
    return summary
