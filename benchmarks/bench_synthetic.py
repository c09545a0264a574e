"""Speed of the synthetic faces on one core: drawing, rendering, ground truth, writing.

    python -m benchmarks.bench_synthetic [--identities 4] [--repeats 3]

Rendering uses the Multi-PIE images' settings (pose and lighting jitter) and
excludes drawing the identities, which happens once per person and size and
is reported on its own. The write rate is `write_dataset` end to end (both
sizes, PNGs, landmark and truth files, pictures) per image written. OpenCV
and BLAS are held to one thread; rates are per CPU second of this process
(what one core delivers, whatever else the machine runs), wall-clock rates
beside them. Results: benchmarks/results/synthetic.{json,md}.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy loads its BLAS
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from benchmarks import harness  # noqa: E402
from fvae_tf.synthetic import faces, dataset  # noqa: E402
from fvae_tf.expressions import EXPRESSIONS  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("identities", 4, "People per measurement.", lower_bound=1)
flags.DEFINE_integer("repeats", 3, "Renders of each (person, expression) per size.", lower_bound=1)


class _Timer:
    """CPU and wall seconds of a `with` block."""

    def __enter__(self):
        self._cpu, self._wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.cpu = time.process_time() - self._cpu
        self.wall = time.perf_counter() - self._wall

    def row(self, what: str, size: int, count: int) -> dict:
        """A result row: `count` items made in this block."""
        return {"what": what, "px": size, "count": count, "per_cpu_s": count / self.cpu,
                "cpu_ms_each": 1000 * self.cpu / count, "per_wall_s": count / self.wall}


def main(argv: list[str]) -> None:
    del argv
    cv2.setNumThreads(1)
    people = [faces.make_identity(i) for i in range(FLAGS.identities)]
    rng = np.random.default_rng(0)
    rows = []
    for size in (64, 256):
        with _Timer() as timer:
            for person in people:
                person.layers(size)
        rows.append(timer.row("draw identity", size, len(people)))

        jobs = [(person, e, faces.random_pose(rng), faces.random_lighting(rng))
                for person in people for e in EXPRESSIONS for _ in range(FLAGS.repeats)]
        with _Timer() as timer:
            renders = [faces.render(p, e, 1.0, size, pose=pose, lighting=light)
                       for p, e, pose, light in jobs]
        rows.append(timer.row("render (images)", size, len(jobs)))

        pairs = [(renders[i].truth, renders[j].truth) for i in range(0, len(renders), FLAGS.repeats)
                 for j in range(0, len(renders), FLAGS.repeats)
                 if i != j and jobs[i][0] is jobs[j][0]]
        with _Timer() as timer:
            for source, target in pairs:
                faces.pair_truth(source, target, size)
        rows.append(timer.row("pair_truth (pairs)", size, len(pairs)))

    config = dataset.DatasetConfig(num_identities=FLAGS.identities)
    with tempfile.TemporaryDirectory() as tmp, _Timer() as timer:
        info = dataset.write_dataset(os.path.join(tmp, "set"), config)
    rows.append(timer.row(f"write_dataset (images, {config.size} + {config.hr_size} px)",
                          config.hr_size, 2 * info["num_images_per_tree"]))
    path = harness.write_results(
        "synthetic", {"command": "python -m benchmarks.bench_synthetic " + " ".join(sys.argv[1:]),
                      "identities": FLAGS.identities, "repeats": FLAGS.repeats},
        {f"Synthetic faces, {FLAGS.identities} identities x {len(EXPRESSIONS)} expressions, "
         "one core": (rows, ["what", "px", "count", "per_cpu_s", "cpu_ms_each", "per_wall_s"])})
    print(path.read_text())


if __name__ == "__main__":
    app.run(main)
