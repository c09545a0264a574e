"""Builds `make demo`'s report: one self-contained HTML page of pictures and numbers.

    python -m experiments.demo_report --demo_dir=runs/demo

Writes --demo_dir/report.html from what the demo's stages wrote, the
evaluation's tables and plots included (`fvae_tf.eval.demo_report`).
"""

import pathlib
import sys

from absl import app, flags

from fvae_tf import atomic_io, errors
from fvae_tf.data import records
from fvae_tf.eval import demo_report
from fvae_tf.train import checkpoints

DEMO_DIR = flags.DEFINE_string("demo_dir", "runs/demo", "What `make demo` wrote.")
EXAMPLES = flags.DEFINE_integer("examples", 6, "Test pairs in the example grids.", lower_bound=1)


def main(argv: list[str]) -> None:
    del argv
    demo = pathlib.Path(DEMO_DIR.value)
    try:
        page = demo_report.build_report(demo, EXAMPLES.value)
    except (checkpoints.CheckpointError, records.RecordsError, FileNotFoundError) as e:
        sys.exit(f"error: {errors.message(e, '--{}')}; run `make demo` first")
    atomic_io.write_bytes(demo / "report.html", page.encode())
    print(f"wrote {demo / 'report.html'}")


if __name__ == "__main__":
    app.run(main)
