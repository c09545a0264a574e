r"""Edits the expression of the face in photos and puts it back at full resolution.

    python -m experiments.edit --checkpoint_dir runs/london --input me.jpg family/ \
        --to smile --strength 1.0 --steps 5 --output_dir edits

Inputs are photos or folders of photos (`--input A B`, or `--input A --input B`).
For each photo P it writes into --output_dir:
  P_<to>.png             the whole photo, its own size, face edited with --strength
  P_<to>_steps.png       the face at each of --steps factors from 0 to --strength
  P_<to>.gif             the same steps, back and forth
  P_<to>_flow.png        aligned source | edited | flow (Middlebury colours) | legend
  P_<to>_upsampling.png  high-resolution source | pixel-domain | flow-domain upsampling
and prints the two upsamplings' sharpness relative to the source. A photo
that fails (unreadable, no face, several faces) is reported and skipped; the
exit status is then non-zero. The logic is in `fvae_tf.edit.editing`.
"""

import pathlib
import sys

import cv2
import numpy as np
from absl import app, flags

from fvae_tf import viz
from fvae_tf.data import alignment
from fvae_tf.edit import editing
from fvae_tf.train import checkpoints
from fvae_tf.expressions import expression_id
from fvae_tf.data.image_io import IMAGE_SUFFIXES

_FRAME_HEIGHT = 256  # pixels of the face in the strip and the GIF
_FPS = 6

CHECKPOINT_DIR = flags.DEFINE_string("checkpoint_dir", None, "An FVAE run directory "
                                     "(experiments.train --workdir).", required=True)
INPUT = flags.DEFINE_multi_string("input", None, "Photos or folders of photos.", required=True)
TO = flags.DEFINE_string("to", None, "Target expression, e.g. smile.", required=True)
FROM = flags.DEFINE_string("from", "neutral", "Source expression of the photos.")
STRENGTH = flags.DEFINE_float("strength", 1.0, "Factor of the last step: <1 subtler, >1 "
                              "exaggerated, <0 the opposite way.")
STEPS = flags.DEFINE_integer("steps", 5, "Factors from 0 to --strength.", lower_bound=1)
OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where the pictures go.", required=True)
HR_SIZE = flags.DEFINE_integer("hr_size", 256, "Side of the aligned high-resolution crop "
                               "of the flow pictures.", lower_bound=16)
UPSAMPLE = flags.DEFINE_integer("upsample", 0, "Times the face detector doubles each photo "
                                "first (finds faces half as small, 4x slower).", lower_bound=0)
MULTIPLE_FACES = flags.DEFINE_enum_class(
    "multiple_faces", alignment.MultipleFaces.ERROR, alignment.MultipleFaces,
    "Photos with several faces: error, skip, or edit the largest.", case_sensitive=False)


def _photo_paths(inputs: list[str]) -> list[pathlib.Path]:
    """Files as given, folders expanded to their photos (sorted, not recursive)."""
    paths = []
    for name in inputs:
        path = pathlib.Path(name)
        if path.is_dir():
            paths += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            paths.append(path)
    return paths


def _frame(image: np.ndarray) -> np.ndarray:
    """Resizes to `_FRAME_HEIGHT` rows, keeping the aspect ratio."""
    height, width = image.shape[:2]
    interpolation = cv2.INTER_AREA if height > _FRAME_HEIGHT else cv2.INTER_LINEAR
    return cv2.resize(image, (max(1, round(width * _FRAME_HEIGHT / height)), _FRAME_HEIGHT),
                      interpolation=interpolation)


def _write(result: editing.PhotoEdit, stem: pathlib.Path, label: str) -> None:
    frames = [_frame(f) for f in result.frames]
    viz.save_png(f"{stem}.png", result.photo)
    viz.save_png(f"{stem}_steps.png", viz.image_grid(
        [frames], labels=[f"{label} x{f:.2f}" for f in result.factors]))
    viz.save_gif(f"{stem}.gif", frames + frames[-2:0:-1], fps=_FPS)
    source_hr = result.face.crop_hr
    edited_hr = viz.to_uint8(result.crops_hr[-1])
    viz.save_png(f"{stem}_flow.png", viz.image_grid(
        [[source_hr, edited_hr, viz.flow_to_color(result.coords[-1]),
          viz.color_wheel(source_hr.shape[0])]],
        labels=["source", f"{label} x{result.factors[-1]:.2f}", "flow", "flow colours"]))
    up = result.upsampling
    viz.save_png(f"{stem}_upsampling.png", viz.image_grid(
        [[source_hr, viz.to_uint8(up.pixel[0]), viz.to_uint8(up.flow[0])]],
        labels=["source", f"pixel upsampling {up.pixel_sharpness:.2f}",
                f"flow upsampling {up.flow_sharpness:.2f}"]))


def main(argv: list[str]) -> None:
    # `--input A B` leaves B as a positional argument: it is one more input.
    inputs = INPUT.value + argv[1:]
    source, target = FROM.value, TO.value
    try:
        expression_id(source)
        expression_id(target)
    except ValueError as e:
        sys.exit(f"error: --from/--to: {e}")
    paths = _photo_paths(inputs)
    if not paths:
        sys.exit(f"error: {', '.join(inputs)}: no photos found; pass image files or folders "
                 f"holding {', '.join(IMAGE_SUFFIXES)} files")
    stems = [p.stem for p in paths]
    clashes = sorted({s for s in stems if stems.count(s) > 1})
    if clashes:
        sys.exit(f"error: several inputs are named {', '.join(clashes)}; their outputs would "
                 "overwrite each other: edit them in separate calls")
    try:
        model = editing.load_editing_model(CHECKPOINT_DIR.value)
        direction = model.stats.direction(source, target)
    except (checkpoints.CheckpointError, editing.EditingError) as e:
        sys.exit(f"error: {e}")
    except ValueError as e:
        sys.exit(f"error: {CHECKPOINT_DIR.value}: {e}; choose --from/--to among those")

    factors = editing.edit_factors(STRENGTH.value, STEPS.value)
    output_dir = pathlib.Path(OUTPUT_DIR.value)
    failed = 0
    for path in paths:
        try:
            photo, face = editing.load_face(path, UPSAMPLE.value, MULTIPLE_FACES.value)
        except alignment.InputError as e:
            print(f"error: {e}; {editing.input_hint(e)}", file=sys.stderr)
            failed += 1
            continue
        result = editing.edit_photo(model.fvae, photo, face.landmarks, direction, factors,
                                    HR_SIZE.value)
        stem = output_dir / f"{path.stem}_{target}"
        _write(result, stem, target)
        up = result.upsampling
        print(f"{path}: wrote {stem}.png ({photo.shape[1]}x{photo.shape[0]}) and its steps, "
              f"GIF and flow; sharpness vs the aligned source: flow upsampling "
              f"{up.flow_sharpness:.3f}, pixel upsampling {up.pixel_sharpness:.3f}")
    if failed:
        sys.exit(f"error: {failed} of {len(paths)} photo(s) failed (see above)")


if __name__ == "__main__":
    app.run(main)
