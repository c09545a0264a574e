"""Dataset size, build time and memory, old format against new, and the input pipeline's rate.

    python -m benchmarks.bench_data [--people 20,100,337] [--pool 4]

Each set has Multi-PIE's shape: `--people` identities with 11 images each
(neutral x5, smile x2, surprise, squint, disgust, scream), 88 ordered pairs
per person. Rendering and aligning 337 x 11 synthetic faces would take most
of an hour on two cores, so `--pool` people are rendered (256 px, random pose
and light) and aligned once, and every person of a set reuses the aligned
crops of pool person `p % pool` under its own ids: the build then starts from
`data_prep.align_faces`-style outputs (`--aligned_dir`), so its time is
storage (reading crops, PNG encoding, writing shards), not alignment
(`benchmarks/bench_alignment.py` measures that, with 1 and 2 processes).

Build time and peak memory (ru_maxrss) are those of one `data_prep.build_dataset`
process per set; "import only" is that process's floor (Python, TensorFlow).
The old format's bytes are exact for these sets: format 1's record of each
pair (both images at both sizes, the source colour-transferred, labels and
landmarks) is serialized for every pool person's pairs. The old builder held
every aligned crop in memory; its "crops held" column is that lower bound.
The pipeline rate is `input_pipeline.make_dataset` on the largest set's train
split (batch 16, shuffled, flipped, colour transfer included) against the
demo training step's demand from `benchmarks/results/train.json`.
Results: benchmarks/results/data.{json,md}.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np
import tensorflow as tf
from absl import app, flags

from benchmarks import harness, timing
from fvae_tf import atomic_io
from fvae_tf.data import alignment, color_transfer, input_pipeline, records
from fvae_tf.synthetic import faces

FLAGS = flags.FLAGS
flags.DEFINE_list("people", ["20", "100", "337"], "Set sizes, in identities.")
flags.DEFINE_integer("pool", 4, "Synthetic people rendered and aligned; the sets reuse them.",
                     lower_bound=1)
flags.DEFINE_integer("batches", 50, "Batches per timed round of the input pipeline.",
                     lower_bound=1)

SIZE, HR_SIZE = 64, 256
# Multi-PIE's 11 frontal images of a person (`fvae_tf.expressions`).
IMAGES = (["neutral"] * 5 + ["smile"] * 2 + ["surprise", "squint", "disgust", "scream"])
BATCH = 16  # the demo preset's batch


def _pool(root: pathlib.Path, pool: int) -> list[list[tuple[str, dict]]]:
    """Renders and aligns the pool; writes each image's align_faces-style files once.

    Returns:
      Per pool person, per image: (expression, {suffix: file written}).
    """
    rng = np.random.default_rng(0)
    people = []
    for p in range(pool):
        identity, images = faces.make_identity(p), []
        for k, expression in enumerate(IMAGES):
            render = faces.render(identity, expression, 1.0, HR_SIZE,
                                  pose=faces.random_pose(rng), lighting=faces.random_lighting(rng))
            face = alignment.align_face(render.image, render.landmarks, SIZE, HR_SIZE)
            stem = root / f"{p}_{k}"
            atomic_io.write_bytes(f"{stem}.png", atomic_io.encode_png(face.crop))
            atomic_io.write_bytes(f"{stem}_hr.png", atomic_io.encode_png(face.crop_hr))
            atomic_io.write_json(f"{stem}_align.json", {
                "crop_size": SIZE, "crop_hr_size": HR_SIZE,
                "landmarks_aligned": face.landmarks_aligned, "transform": face.transform})
            images.append((expression, {s: pathlib.Path(f"{stem}{s}")
                                        for s in (".png", "_hr.png", "_align.json")}))
        people.append(images)
    return people


def _write_set(root: pathlib.Path, pool: list, people: int) -> tuple[pathlib.Path, pathlib.Path]:
    """A folder-layout input of placeholder photos and its aligned outputs (hard links)."""
    input_dir, aligned_dir = root / "input", root / "aligned"
    for p in range(people):
        for k, (expression, files) in enumerate(pool[p % len(pool)]):
            rel = pathlib.Path(f"{p:03d}") / expression / f"{k:02d}"
            (input_dir / rel.parent).mkdir(parents=True, exist_ok=True)
            (input_dir / rel).with_suffix(".png").write_bytes(b"")
            (aligned_dir / rel.parent).mkdir(parents=True, exist_ok=True)
            for suffix, path in files.items():
                os.link(path, aligned_dir / rel.parent / f"{rel.name}{suffix}")
    return input_dir, aligned_dir


def _run(command: list[str]) -> tuple[float, float]:
    """Runs a command; returns (wall seconds, its peak resident memory in MB)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {process.stderr.read().decode()}")
    return wall, usage.ru_maxrss / 1024


def _old_pair_bytes(source: dict, target: dict) -> int:
    """Bytes of format 1's record of one pair in a TFRecord file (16 bytes of framing)."""
    def png(image):
        return tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[atomic_io.encode_png(image)]))

    def other(n_bytes=0, n_floats=0, n_ints=0):
        if n_floats:
            return tf.train.Feature(float_list=tf.train.FloatList(value=[0.5] * n_floats))
        if n_ints:
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[3]))
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x" * n_bytes]))

    feature = {
        "source": png(color_transfer.transfer_color(source["crop"], target["crop"])),
        "target": png(target["crop"]),
        "source_hr": png(color_transfer.transfer_color(source["crop_hr"], target["crop_hr"])),
        "target_hr": png(target["crop_hr"]),
        "source_expression": other(n_ints=1), "target_expression": other(n_ints=1),
        "identity": other(3), "source_id": other(19), "target_id": other(19),
        "source_landmarks": other(n_floats=136), "target_landmarks": other(n_floats=136),
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return len(example.SerializeToString()) + 16


def _old_bytes_per_person(pool: list) -> list[int]:
    """Format 1's bytes of each pool person's 88 pairs."""
    sizes = []
    for images in pool:
        crops = [{"crop": cv2.imread(str(files[".png"]))[..., ::-1],
                  "crop_hr": cv2.imread(str(files["_hr.png"]))[..., ::-1]} for _, files in images]
        sizes.append(sum(_old_pair_bytes(crops[s], crops[t])
                         for s in range(len(images)) for t in range(len(images))
                         if images[s][0] != images[t][0]))
    return sizes


def _pipeline_rate(dataset_dir: pathlib.Path, with_hr: bool) -> tuple[float, float]:
    """(pairs/s of the train split's pipeline, seconds to its first batch)."""
    start = time.perf_counter()
    data = iter(input_pipeline.make_dataset(dataset_dir, "train", BATCH, with_hr=with_hr))
    next(data)
    first = time.perf_counter() - start
    timed = timing.time_call(lambda: next(data)["source"], FLAGS.batches, 2)
    return BATCH / (timed["wall_ms"] / 1000), first


def main(argv: list[str]) -> None:
    del argv
    people_sizes = [int(n) for n in FLAGS.people]
    build = [sys.executable, "-m", "data_prep.build_dataset", "--source=folder", "--overwrite",
             f"--size={SIZE}", f"--hr_size={HR_SIZE}"]
    baseline_s, baseline_mb = _run([sys.executable, "-c", "import fvae_tf.data.builder"])
    rows = [{"people": "import only", "build_s": baseline_s, "peak_mb": baseline_mb}]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "pool").mkdir()
        pool = _pool(tmp / "pool", FLAGS.pool)
        old_per_person = _old_bytes_per_person(pool)
        for people in people_sizes:
            shutil.rmtree(tmp / "set", ignore_errors=True)
            input_dir, aligned_dir = _write_set(tmp / "set", pool, people)
            out = tmp / f"dataset_{people}"
            wall, peak = _run(build + [f"--input_dir={input_dir}", f"--aligned_dir={aligned_dir}",
                                       f"--output_dir={out}"])
            manifest = records.read_manifest(out)
            splits = manifest.splits.values()
            image_bytes = sum(s.num_bytes for split in splits for s in split.image_shards)
            pair_bytes = sum(s.num_bytes for split in splits for s in split.shards)
            old = sum(old_per_person[p % len(pool)] for p in range(people))
            rows.append({
                "people": people, "images": sum(s.num_images for s in splits),
                "pairs": sum(s.num_pairs for s in splits), "build_s": wall, "peak_mb": peak,
                "image_shards_mb": image_bytes / 2**20, "pair_shards_mb": pair_bytes / 2**20,
                "old_format_mb": old / 2**20, "old_over_new": old / (image_bytes + pair_bytes),
                "old_crops_held_mb": people * len(IMAGES) * 3 * (SIZE**2 + HR_SIZE**2) / 2**20})
        largest = tmp / f"dataset_{people_sizes[-1]}"
        pipeline = []
        for with_hr in (False, True):
            rate, first = _pipeline_rate(largest, with_hr)
            pipeline.append({"with_hr": with_hr, "pairs_per_s": rate, "first_batch_s": first})

    train = json.loads((harness.RESULTS_DIR / "train.json").read_text())
    demand = {row["step"]: row["images_per_s"] for row in train["tables"]["Training step"]
              if row["preset"] == "demo"}
    for row in pipeline:
        for step, images_per_s in demand.items():
            row[f"x_demand_{step}"] = row["pairs_per_s"] / images_per_s
    notes = [
        f"Sets: {FLAGS.pool} rendered synthetic people reused (see the module docstring); "
        f"{len(IMAGES)} images and 88 pairs per person; crops {SIZE} and {HR_SIZE} px; no "
        "ground truth (as Multi-PIE). build_s, peak_mb: one data_prep.build_dataset process "
        "from align_faces-style crops (alignment excluded; bench_alignment measures it).",
        "old_format_mb: format 1 (one record per pair, both images at both sizes) for the same "
        "pairs, exact; old_crops_held_mb: what its builder held in memory besides its floor.",
        f"Pipeline: make_dataset on the {people_sizes[-1]}-people train split, batch {BATCH}, "
        "shuffled and flipped, colour transfer in TensorFlow; first_batch_s includes loading "
        "the image table. x_demand_*: pairs/s over the demo training step's images/s "
        f"({', '.join(f'{k}: {v:.1f}' for k, v in demand.items())}, "
        f"benchmarks/results/train.json, on {harness.describe(train['machine'])}).",
    ]
    path = harness.write_results(
        "data", {"command": "python -m benchmarks.bench_data " + " ".join(sys.argv[1:]),
                 "people": people_sizes, "pool": FLAGS.pool, "batches": FLAGS.batches},
        {"Dataset build, old format against new": (rows, [
            "people", "images", "pairs", "build_s", "peak_mb", "image_shards_mb",
            "pair_shards_mb", "old_format_mb", "old_over_new", "old_crops_held_mb"]),
         "Input pipeline": (pipeline, ["with_hr", "pairs_per_s", "first_batch_s",
                                       *[f"x_demand_{step}" for step in demand]])},
        notes)
    print(path.read_text())


if __name__ == "__main__":
    app.run(main)
