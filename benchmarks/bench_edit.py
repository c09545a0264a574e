"""Editing latency of one photo, per stage, as the photo grows.

    python -m benchmarks.bench_edit [--sizes 512,1024,2048,4096 --repeats 5]

One photo (the London set's first neutral face, else scikit-image's
astronaut), scaled to each size so that the face keeps its share of the
photo, goes through what `experiments.edit` does for one edit step:
detection (dlib, `alignment.detect_faces`), alignment (`align_face`, crops
of 64 and 256), encoding and decoding (an untrained FVAE of the demo
architecture: timing does not depend on the weights), flow upsampling (the
256 px crop warped by the upsampled field) and paste-back (`face_mask` and
`paste_flow` at the photo's resolution). Median of `repeats` calls after a
warm-up call, milliseconds of wall time, and the sum of the stages' CPU
time (this process, all threads; steadier on a busy machine).
Results: benchmarks/results/edit.{json,md}.
"""

import os
import pathlib
import sys
import time

import cv2
import numpy as np
import skimage.data
import tensorflow as tf
from absl import app, flags

from benchmarks import harness
from fvae_tf.data import alignment
from fvae_tf.edit import editing, paste_back
from fvae_tf.model import config as config_lib
from fvae_tf.train import checkpoints
from fvae_tf.warp import flow_upsampling

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["512", "1024", "2048", "4096"], "Photo sides in pixels.")
flags.DEFINE_integer("repeats", 5, "Timed calls per stage and size (median).")
flags.DEFINE_integer("hr_size", 256, "Side of the high-resolution aligned crop.")

LONDON_PHOTO = pathlib.Path(os.environ.get("FVAE_LONDON_DIR", "../shared/data/london_set")
                            ) / "neutral" / "001_03.jpg"


def base_photo() -> tuple[np.ndarray, str]:
    """A square RGB photo with one frontal face, and what it is."""
    if LONDON_PHOTO.exists():
        photo = alignment.load_image(LONDON_PHOTO)
        side = min(photo.shape[:2])
        return photo[:side, :side], f"London set {LONDON_PHOTO.name}"
    return skimage.data.astronaut(), "scikit-image astronaut"


def stage_times(fvae, photo: np.ndarray) -> dict[str, float]:
    """Median milliseconds of each stage on `photo`, after one warm-up pass."""
    size = fvae.config.image_size
    stages, cpu_times = {}, {}

    def detection():
        return alignment.select_face(alignment.detect_faces(photo)).landmarks

    def aligning(landmarks):
        return alignment.align_face(photo, landmarks, size, FLAGS.hr_size)

    def encoding(face):
        return fvae.encode(editing.to_float(face.crop)[None])

    def decoding(face, z):
        return fvae.decode_flow(z, editing.to_float(face.crop)[None])

    def upsampling(face, coords):
        return flow_upsampling.warp(editing.to_float(face.crop_hr)[None], coords).numpy()

    def pasting(face, coords):
        mask = paste_back.face_mask(face.landmarks_aligned, FLAGS.hr_size)
        return paste_back.paste_flow(photo, face.transform, coords[0].numpy(), mask)

    def timed(name, fn, *args):
        start, cpu = time.perf_counter(), time.process_time()
        result = fn(*args)
        if isinstance(result, tf.Tensor):
            result.numpy()  # waits for the values
        stages.setdefault(name, []).append(time.perf_counter() - start)
        cpu_times.setdefault(name, []).append(time.process_time() - cpu)
        return result

    for _ in range(FLAGS.repeats + 1):
        landmarks = timed("detection", detection)
        face = timed("alignment", aligning, landmarks)
        z = timed("encoding", encoding, face)
        coords = timed("decoding", decoding, face, z)
        timed("flow upsampling", upsampling, face, coords)
        timed("paste-back", pasting, face, coords)
    times = {name: 1000 * float(np.median(t[1:])) for name, t in stages.items()}
    times["end to end"] = sum(times.values())
    times["end to end CPU"] = 1000 * sum(float(np.median(t[1:])) for t in cpu_times.values())
    start = time.perf_counter()
    alignment.detect_faces(photo, detection_side=None)
    times["detection at full resolution"] = 1000 * (time.perf_counter() - start)
    times["face box px"] = int(np.prod(np.ptp(landmarks, axis=0)))
    return times


def main(argv):
    del argv
    fvae = checkpoints.build_model("fvae", config_lib.get_config("demo"))
    photo, source = base_photo()
    rows = []
    for side in map(int, FLAGS.sizes):
        scaled = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA
                            if side < photo.shape[0] else cv2.INTER_LINEAR)
        rows.append({"photo": f"{side}x{side}", **stage_times(fvae, scaled)})
        print(rows[-1], flush=True)
    columns = ["photo", "detection", "alignment", "encoding", "decoding", "flow upsampling",
               "paste-back", "end to end", "end to end CPU", "detection at full resolution",
               "face box px"]
    notes = [f"Milliseconds per stage, median of {FLAGS.repeats} after a warm-up; photo: "
             f"{source} scaled to each size (the face keeps its share); model: untrained "
             f"FVAE, demo architecture; high-resolution crop {FLAGS.hr_size} px. face box px: "
             "area of the landmarks' bounding box in the photo. detection at full resolution: "
             "`detect_faces(..., detection_side=None)`, once, for comparison (not in the sums)."]
    path = harness.write_results(
        "edit", {"command": "python -m benchmarks.bench_edit " + " ".join(sys.argv[1:]),
                 "sizes": FLAGS.sizes, "repeats": FLAGS.repeats, "photo": source},
        {"Editing one photo, per stage": (rows, columns)}, notes)
    print(path.read_text())


if __name__ == "__main__":
    app.run(main)
