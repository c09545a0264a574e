"""Latency of one slider move of the browser editor on a 1024x1024 photo.

    python -m benchmarks.bench_serve [--checkpoint_dir runs/london] [--moves 30]

Opens the photo once (`session.Editor.open_photo`: read, detect, align,
encode), then times `PhotoSession.edit` for `--moves` slider positions (decode
the moved latent, upsample the flow, paste back into the whole photo, warp the
aligned face) and its parts, plus the PNG encoding the page adds for the
full-resolution image, and the same move with the fitted direction
(`fitted=True`: the face and its mirror image decoded in one batch). The
target is 0.3 s per move on 2 CPU cores.

Without --checkpoint_dir the model is the `--preset` architecture (default
`london`, the run the README serves) with random weights and random latent
means: the same operations, so the same time, as a trained run of that
preset. The photos are made from scikit-image's astronaut (`test_photos`).
Prints a table and writes benchmarks/results/serve.json and serve.md.
"""

import argparse
import os
import pathlib
import sys
import tempfile
import time

import cv2
import numpy as np
import skimage.data

from benchmarks import harness
from fvae_tf import atomic_io
from fvae_tf.edit import paste_back, session
from fvae_tf.expressions import EXPRESSIONS
from fvae_tf.model.config import get_config
from fvae_tf.model.fvae import FVAE
from fvae_tf.train.latent_stats import LatentStats

PHOTO_SIZE = 1024


def random_editor(preset: str) -> session.Editor:
    """An editor with the preset's architecture, random weights and latent means."""
    fvae = FVAE(get_config(preset))
    fvae.build_for_inference()
    rng = np.random.default_rng(0)
    means = rng.normal(0, 1, (len(EXPRESSIONS), fvae.config.latent_dim)).astype(np.float32)
    stats = LatentStats(means, np.ones(len(EXPRESSIONS), np.int64), EXPRESSIONS, 0)
    fitted = {("neutral", "smile"): rng.normal(0, 1, fvae.config.latent_dim).astype(np.float32)}
    return session.Editor(fvae, stats, mask_model=None, fitted=fitted)


def _median_ms(times: list[float]) -> float:
    return 1000.0 * float(np.median(times))


def measure(editor: session.Editor, photo_path: pathlib.Path, moves: int) -> dict:
    """Seconds to open the photo (read, detect, align, encode) and median
    milliseconds per move and per part."""
    start = time.perf_counter()
    opened = editor.open_photo(photo_path, face_index=0)  # the largest: dlib finds false ones
    open_s = time.perf_counter() - start
    factors = np.linspace(-1.0, 2.0, moves)
    times = {"slider move (session.edit)": [], "decode flow": [], "warp the aligned face": [],
             "paste back": [], "PNG encoding of the photo": [],
             "slider move, fitted direction": []}
    opened.edit({"smile": 0.1})  # the first calls trace TensorFlow's kernels
    opened.edit({"smile": 0.1}, fitted=True)
    for factor in factors:
        start = time.perf_counter()
        result = opened.edit({"smile": float(factor)})
        times["slider move (session.edit)"].append(time.perf_counter() - start)
        latent = opened.latent_for({"smile": float(factor)}, "neutral")
        start = time.perf_counter()
        coords = editor.decode_flow(latent, opened.source)
        times["decode flow"].append(time.perf_counter() - start)
        start = time.perf_counter()
        editor.warp_face(opened.source_hr, coords)[0].numpy()
        times["warp the aligned face"].append(time.perf_counter() - start)
        coords = coords[0].numpy()
        start = time.perf_counter()
        paste_back.paste_flow(opened.photo, opened.face.transform, coords, opened.mask)
        times["paste back"].append(time.perf_counter() - start)
        start = time.perf_counter()
        atomic_io.encode_png(result.photo)
        times["PNG encoding of the photo"].append(time.perf_counter() - start)
        start = time.perf_counter()
        opened.edit({"smile": float(factor)}, fitted=True)
        times["slider move, fitted direction"].append(time.perf_counter() - start)
    region = paste_back.face_region(opened.face.transform, opened.mask, opened.photo.shape)
    return {"open photo s": open_s,
            "median ms": {part: _median_ms(t) for part, t in times.items()},
            "pasted region px": [region.x1 - region.x0, region.y1 - region.y0]}


def test_photos() -> dict[str, np.ndarray]:
    """Two 1024x1024 photos: the whole astronaut picture (the face about 1/5 of its
    width) and a portrait cut around her head (the face fills it), bicubic."""
    astronaut = skimage.data.astronaut()
    size = (PHOTO_SIZE, PHOTO_SIZE)
    return {"astronaut": cv2.resize(astronaut, size, interpolation=cv2.INTER_CUBIC),
            "portrait": cv2.resize(astronaut[:300, 80:380], size, interpolation=cv2.INTER_CUBIC)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint_dir", help="an FVAE run; default: random weights")
    parser.add_argument("--preset", default="london", help="architecture without a run")
    parser.add_argument("--moves", type=int, default=30, help="slider positions timed")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    editor = (session.Editor.load(args.checkpoint_dir) if args.checkpoint_dir
              else random_editor(args.preset))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, photo in test_photos().items():
            path = pathlib.Path(folder) / f"{name}.png"
            atomic_io.write_png(path, photo)
            timing = measure(editor, path, args.moves)
            width, height = timing["pasted region px"]
            rows.append({"photo": f"{name} {PHOTO_SIZE}x{PHOTO_SIZE}",
                         "opening s": timing["open photo s"],
                         "pasted region px": f"{width}x{height}", **timing["median ms"]})
    model = args.checkpoint_dir or f"random weights, preset {args.preset}"
    settings = {"command": " ".join(["python -m benchmarks.bench_serve", *sys.argv[1:]]),
                "model": model, "moves": args.moves, "load_average_at_start": load}
    path = harness.write_results("serve", settings, {"One slider move": (rows, list(rows[0]))}, [
        f"Milliseconds per slider move, median of {args.moves} after a warm-up (opening: "
        f"seconds, once per photo); model: {model}; load average {load:.1f} at the start. "
        "The PNG encoding is what the page adds to show the full-resolution photo."])
    print(path.read_text())


if __name__ == "__main__":
    main()
