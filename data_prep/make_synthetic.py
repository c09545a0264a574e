r"""Renders the built-in synthetic face set with ground-truth flow.

    python -m data_prep.make_synthetic --output_dir DIR --num_identities N --seed S

Writes Multi-PIE's layout (camera 05_1, illumination 07) at --hr_size, graded
expression intensities under graded/, the same at --size under lowres/, and
beside every image its landmarks (.landmarks.npy) and ground truth
(.truth.npz); see `fvae_tf.synthetic.dataset` and DIR/README.txt. The same
flags give the same bytes. DIR appears only when complete.
"""

import sys
import time

from absl import app, flags

from fvae_tf.synthetic import dataset
from fvae_tf.progress import Progress

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", None, "Directory to create (must be empty or absent).")
flags.DEFINE_integer("num_identities", 20, "Number of people (subjects 001..N).", lower_bound=1,
                     upper_bound=dataset.MAX_IDENTITIES)
flags.DEFINE_integer("seed", 0, "Random seed; the same seed gives the same files.", lower_bound=0)
flags.DEFINE_integer("size", 64, "Side of the low-resolution images (lowres/), pixels.",
                     lower_bound=8)
flags.DEFINE_integer("hr_size", 256, "Side of the main images, pixels.", lower_bound=8,
                     upper_bound=dataset.MAX_SIZE)
flags.DEFINE_list("intensities", ["0.25", "0.5", "0.75", "1"],
                  "Intensities of the graded/ series, in [0, 1], at most two decimals.")
flags.DEFINE_float("pose_jitter", 1.0, "Scale of the per-recording pose jitter (0: none, 1: up to "
                   "3 degrees, 3% scale, 1.5% shift).", lower_bound=0.0)
flags.DEFINE_float("lighting_jitter", 1.0, "Scale of the per-recording lighting and colour jitter "
                   "(0: none).", lower_bound=0.0)
flags.DEFINE_bool("overwrite", False, "Replace a non-empty --output_dir.")
flags.mark_flag_as_required("output_dir")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {' '.join(argv[1:])}")
    try:
        intensities = tuple(float(t) for t in FLAGS.intensities)
    except ValueError:
        sys.exit(f"error: --intensities must be numbers, got {','.join(FLAGS.intensities)}")
    config = dataset.DatasetConfig(
        num_identities=FLAGS.num_identities, seed=FLAGS.seed, size=FLAGS.size,
        hr_size=FLAGS.hr_size, intensities=intensities, pose_jitter=FLAGS.pose_jitter,
        lighting_jitter=FLAGS.lighting_jitter)
    line = Progress("rendering identities", config.num_identities, "identity")

    def progress(done: int, total: int) -> None:
        line.update(done)

    start = time.monotonic()
    try:
        info = dataset.write_dataset(FLAGS.output_dir, config, overwrite=FLAGS.overwrite,
                                               progress=progress)
    except ValueError as e:
        sys.exit(f"error: {e}")
    except FileExistsError as e:
        sys.exit(f"error: {e} (pass --overwrite to replace it)")
    except OSError as e:
        sys.exit(f"error: cannot write {e.filename or FLAGS.output_dir}: {e.strerror or e}")
    except KeyboardInterrupt:
        sys.exit(f"interrupted; {FLAGS.output_dir} was left as it was")
    seconds = time.monotonic() - start
    images = 2 * info["num_images_per_tree"]
    print(f"wrote {images} images ({info['num_images_per_tree']} at {config.hr_size} px and at "
          f"{config.size} px) for {config.num_identities} identities in {seconds:.1f} s "
          f"({images / seconds:.0f} images/s) -> {FLAGS.output_dir}")


if __name__ == "__main__":
    app.run(main)
