r"""Copies a pair dataset, giving every pair an optical-flow teacher's labels.

    python -m data_prep.add_teacher_flow --dataset_dir=runs/london_data \
        --output_dir=runs/london_teacher_data [--method=dis]

Not in the paper: for real faces, which have no ground-truth flow, an optical
flow between each pair's high-resolution crops (forward-backward checked,
averaged down to the training size; `fvae_tf.eval.teacher_flow`) becomes a
label that `experiments.train --flow_supervision=W` trains toward. The
images are copied unchanged; the manifest, written last, names the teacher.
"""

import os
import sys
import time

from absl import app, flags

from fvae_tf import errors
from fvae_tf.data import records
from fvae_tf.eval import optical_flow, teacher_flow
from fvae_tf.progress import StageProgress

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset_dir", None, "A finished dataset (data_prep.build_dataset).")
flags.DEFINE_string("output_dir", None, "Where the labelled copy goes.")
flags.DEFINE_enum("method", optical_flow.FlowMethod.DIS.value,
                  [m.value for m in optical_flow.FlowMethod],
                  "The teacher: OpenCV's DIS (medium preset), DeepFlow or SparseToDense.")
flags.DEFINE_bool("overwrite", False, "Replace the dataset already in --output_dir.")
flags.DEFINE_integer("num_workers", min(2, os.cpu_count() or 1),
                     "Processes computing optical flow in parallel.", lower_bound=1)
flags.mark_flags_as_required(["dataset_dir", "output_dir"])


def main(argv: list[str]) -> None:
    del argv
    start = time.monotonic()
    try:
        manifest = teacher_flow.add_teacher_flow(
            FLAGS.dataset_dir, FLAGS.output_dir, FLAGS.method, FLAGS.overwrite,
            FLAGS.num_workers, StageProgress(lambda split: (f"labelling {split}", "pair")))
    except (records.RecordsError, optical_flow.OpticalFlowError) as e:
        sys.exit(f"error: {errors.message(e, '--{}')}")
    except KeyboardInterrupt:
        sys.exit(f"interrupted: {FLAGS.output_dir} holds no finished dataset (no manifest)")
    pairs = {name: split.num_pairs for name, split in manifest.splits.items()}
    print(f"wrote {FLAGS.output_dir}: {FLAGS.method} teacher labels for pairs {pairs} "
          f"in {time.monotonic() - start:.1f} s")


if __name__ == "__main__":
    app.run(main)
