"""Face alignment speed: per-stage cost in one process, and images/s with 1 and 2 processes.

    python -m benchmarks.bench_alignment [--input_dir DIR] [--stage_images N]

The stage times come from the library in this process. The process counts
run `data_prep.align_faces` on the whole folder, so their rates include
starting the worker processes, loading dlib's 100 MB landmark model in each
and writing every output: what a user waits for. Results:
benchmarks/results/alignment.{json,md}.
"""

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

from benchmarks import harness
from fvae_tf.data import alignment

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def stage_times(paths: list[pathlib.Path]) -> dict[str, float]:
    """Median milliseconds per image of each stage of data_prep.align_faces."""
    alignment.detect_faces(alignment.load_image(paths[0]))  # loads the models
    times = {"load": [], "detect + landmarks": [], "warp 64 + 256": [], "encode PNGs": []}
    for path in paths:
        t0 = time.perf_counter()
        image = alignment.load_image(path)
        t1 = time.perf_counter()
        face = alignment.detect_faces(image)[0]
        t2 = time.perf_counter()
        aligned = alignment.align_face(image, face.landmarks, 64, 256)
        t3 = time.perf_counter()
        for crop in (aligned.crop, aligned.crop_hr):
            cv2.imencode(".png", crop[..., ::-1])
        t4 = time.perf_counter()
        for stage, seconds in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            times[stage].append(seconds)
    return {stage: 1000 * float(np.median(s)) for stage, s in times.items()}


def binary_rate(input_dir: pathlib.Path, num_workers: int) -> tuple[float, float, int]:
    """(images/s from the summary, wall seconds, images aligned) of one binary run."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "data_prep.align_faces", "--input_dir",
                        str(input_dir), "--output_dir", out, "--num_workers", str(num_workers)],
                       cwd=REPO_ROOT, check=True, capture_output=True)
        wall = time.perf_counter() - start
        summary = json.loads((pathlib.Path(out) / "alignment_summary.json").read_text())
    return summary["images_per_second"], wall, summary["num_aligned"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input_dir", type=pathlib.Path,
                        default=REPO_ROOT.parent / "shared" / "data" / "london_set")
    parser.add_argument("--stage_images", type=int, default=40)
    args = parser.parse_args()

    paths = sorted(args.input_dir.rglob("*.jpg"))[:args.stage_images]
    stages = [{"stage": stage, "ms": ms} for stage, ms in stage_times(paths).items()]
    rates = []
    for workers in (1, 2):
        rate, wall, aligned = binary_rate(args.input_dir, workers)
        rates.append({"processes": workers, "images": aligned, "images_per_s": rate,
                      "wall_s": wall})
    path = harness.write_results(
        "alignment", {"command": "python -m benchmarks.bench_alignment " + " ".join(sys.argv[1:]),
                      "input_dir": str(args.input_dir), "stage_images": len(paths)},
        {f"Per-image stages, median of {len(paths)} images, 1 process": (stages, ["stage", "ms"]),
         "data_prep.align_faces on the folder": (
             rates, ["processes", "images", "images_per_s", "wall_s"])},
        [f"Speed-up of 2 over 1 processes: "
         f"{rates[1]['images_per_s'] / rates[0]['images_per_s']:.2f}x "
         "(wall includes starting the interpreters and loading dlib's models)."])
    print(path.read_text())


if __name__ == "__main__":
    main()
