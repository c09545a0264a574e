r"""Builds a pair dataset (TFRecord shards + manifest) from photos.

    python -m data_prep.build_dataset --source=london \
        --input_dir ../shared/data/london_set --output_dir data/london

Reads the source, aligns every face (or reuses `data_prep.align_faces`'
output with --aligned_dir), splits identities train/val/test (70/10/20)
with --seed, stores each aligned image once (OUT/{split}-images-*.tfrecord),
makes every ordered pair of two different expressions of one identity
(OUT/{split}-pairs-*.tfrecord, indices into the images) and writes
OUT/manifest.json (see `fvae_tf.data.records`); colour transfer happens in the
input pipeline. The manifest is written last: an interrupted build leaves no
dataset a reader would accept.
"""

import os
import sys
import time

from absl import app, flags

from fvae_tf import errors
from fvae_tf.data import builder, readers, records
from fvae_tf.expressions import MULTIPIE_DEFAULT_ILLUMINATION
from fvae_tf.progress import StageProgress

_LISTED_FAILURES = 20  # the printed summary lists this many; the manifest has all

FLAGS = flags.FLAGS
flags.DEFINE_enum_class("source", None, readers.Source, "Which reader to use.",
                        case_sensitive=False)
flags.DEFINE_string("input_dir", None, "The dataset's root folder (for --source=folder with "
                    "--manifest_csv, the CSV's folder is the root).")
flags.DEFINE_string("output_dir", None, "Where the shards and manifest.json go.")
flags.DEFINE_string("aligned_dir", None, "Output of `data_prep.align_faces` run on "
                    "--input_dir: reuse its crops instead of detecting faces again.")
flags.DEFINE_integer("size", 64, "Side of the training crops, pixels.", lower_bound=8)
flags.DEFINE_integer("hr_size", 256, "Side of the high-resolution crops, pixels.", lower_bound=8)
flags.DEFINE_float("val_fraction", 0.1, "Share of identities for validation (early "
                   "stopping, hyper-parameters).", lower_bound=0.0, upper_bound=0.99)
flags.DEFINE_float("test_fraction", 0.2, "Share of identities for testing (the reported "
                   "numbers; no training decision sees them).", lower_bound=0.0,
                   upper_bound=0.99)
flags.DEFINE_integer("seed", 0, "Seed of the identity split and of the storage order.")
flags.DEFINE_integer("shard_size", 256, "Records per shard file (images in the image "
                     "tables, pairs in the pair tables).", lower_bound=1)
flags.DEFINE_integer("illumination", MULTIPIE_DEFAULT_ILLUMINATION,
                     "Multi-PIE flash index (00-19) to read; the paper's was lost.",
                     lower_bound=0, upper_bound=19)
flags.DEFINE_string("manifest_csv", None, "--source=folder: a CSV with columns "
                    "path,identity,expression instead of ROOT/<identity>/<expression>/.")
flags.DEFINE_bool("overwrite", False, "Replace the dataset already in --output_dir.")
flags.DEFINE_integer("num_workers", min(2, os.cpu_count() or 1),
                     "Processes detecting faces in parallel.", lower_bound=1)
flags.mark_flags_as_required(["source", "output_dir"])


def _describe_stage(stage: str) -> tuple[str, str]:
    """The progress line of a build stage: aligning, then each split's pairs."""
    return ("aligning", "img") if stage == "align" else (f"writing {stage}", "pair")


def main(argv: list[str]) -> None:
    del argv
    if FLAGS.input_dir is None and FLAGS.manifest_csv is None:
        sys.exit("error: --input_dir is required (or --manifest_csv with --source=folder)")
    if FLAGS.manifest_csv is not None and FLAGS.source is not readers.Source.FOLDER:
        sys.exit("error: --manifest_csv only applies to --source=folder")
    if FLAGS.val_fraction + FLAGS.test_fraction >= 1.0:
        sys.exit("error: --val_fraction plus --test_fraction must be below 1 (train needs people)")
    config = builder.BuildConfig(
        source=FLAGS.source.value, input_dir=FLAGS.input_dir, output_dir=FLAGS.output_dir,
        aligned_dir=FLAGS.aligned_dir, size=FLAGS.size, hr_size=FLAGS.hr_size,
        val_fraction=FLAGS.val_fraction, test_fraction=FLAGS.test_fraction, seed=FLAGS.seed,
        shard_size=FLAGS.shard_size,
        illumination=FLAGS.illumination, manifest_csv=FLAGS.manifest_csv,
        overwrite=FLAGS.overwrite, num_workers=FLAGS.num_workers)
    start = time.monotonic()
    try:
        manifest = builder.build_dataset(config, StageProgress(_describe_stage))
    except (readers.DatasetError, records.RecordsError) as e:
        sys.exit(f"error: {errors.message(e, '--{}')}")
    except KeyboardInterrupt:
        sys.exit(f"interrupted: {FLAGS.output_dir} holds no finished dataset (no manifest)")
    seconds = time.monotonic() - start

    for name, split in manifest.splits.items():
        print(f"{name}: {len(split.identities)} identities, {split.num_images} images, "
              f"{split.num_pairs} pairs in {len(split.image_shards) + len(split.shards)} shard(s); "
              f"images {split.images_per_expression}")
    print(f"alignment: {manifest.alignment}")
    if manifest.identities_without_pairs:
        print(f"{len(manifest.identities_without_pairs)} identities have no pair (fewer "
              f"than two expressions aligned): {', '.join(manifest.identities_without_pairs)}")
    if manifest.failures:
        print(f"{len(manifest.failures)} image(s) left out:")
        for failure in manifest.failures[:_LISTED_FAILURES]:
            print(f"  {failure['path']}: {failure['reason']}")
        if len(manifest.failures) > _LISTED_FAILURES:
            print(f"  ... and {len(manifest.failures) - _LISTED_FAILURES} more (manifest.json)")
    print(f"wrote {FLAGS.output_dir} in {seconds:.1f} s")


if __name__ == "__main__":
    app.run(main)
