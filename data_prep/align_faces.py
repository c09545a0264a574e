"""Aligns every face photo under a folder onto the canonical template.

    python -m data_prep.align_faces --input_dir IN --output_dir OUT

Writes OUT/<rel>.png (64 crop), OUT/<rel>_hr.png (256 crop),
OUT/<rel>_align.json (landmarks, transform), OUT/alignment_summary.json and
OUT/contact_sheet.png; see `fvae_tf.data.align_folder`. A file that cannot be
aligned is reported with its reason; with --multiple_faces=skip it counts as
skipped, otherwise as failed. The exit status is non-zero when no face was
aligned, or when any file failed and --strict is set.
"""

import os
import pathlib
import sys

from absl import app, flags

from fvae_tf.data import align_folder, alignment
from fvae_tf.progress import Progress

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
    settings = align_folder.Settings(input_dir, output_dir, FLAGS.size, FLAGS.hr_size,
                                     FLAGS.upsample, FLAGS.multiple_faces)
    progress = None

    def report(done: int, total: int, not_aligned: int) -> None:
        nonlocal progress
        progress = progress or Progress("aligning", total, "img")
        progress.update(done, f"{not_aligned} not aligned")

    try:
        summary = align_folder.align_folder(settings, FLAGS.num_workers, report)
    except alignment.InputError as e:
        sys.exit(f"error: {e}")
    except OSError as e:
        sys.exit(f"error: cannot write under {output_dir}: {e.strerror or e}")
    except KeyboardInterrupt:
        sys.exit("interrupted; the outputs written so far are complete files")

    print(f"aligned {summary['num_aligned']} of {summary['num_images']} images "
          f"({summary['num_failed']} failed, {summary['num_skipped']} skipped) in "
          f"{summary['seconds']:.1f} s, {summary['images_per_second']} img/s with "
          f"{summary['num_workers']} process(es) -> {output_dir}")
    if summary["num_ignored_files"]:
        print(f"ignored {summary['num_ignored_files']} file(s) without an image extension")
    _print_groups("failed", summary["failed"])
    _print_groups("skipped", summary["skipped"])
    _print_groups("warnings", summary["warnings"])
    if not summary["num_aligned"]:
        sys.exit("error: no face was aligned; see the reasons above")
    if FLAGS.strict and summary["num_failed"]:
        sys.exit(f"error: {summary['num_failed']} image(s) failed and --strict is set")


if __name__ == "__main__":
    app.run(main)
