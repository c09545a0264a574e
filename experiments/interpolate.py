r"""Interpolates the expression between two faces (Algorithm 2).

    python -m experiments.interpolate --checkpoint_dir runs/london \
        --inputs neutral.jpg smiling.jpg --steps 8 --output_dir interp

Writes into --output_dir, at the high-resolution crop's size (flow upsampling):
  interpolation.gif                the frames blended by the confidence mask
  interpolation_no_confidence.gif  the frames as a cross-fade of the two warps
  interpolation.png                one row per step: face 1 warped, face 2
                                   warped, cross-fade, confidence blend, and
                                   face 1's blend weight over the blend (jet: 0
                                   blue, 1 red)
--noconfidence skips the confidence blend (for runs without a trained mask).
The logic is in `fvae_tf.edit.interpolation`.
"""

import pathlib
import sys

import numpy as np
from absl import app, flags

from fvae_tf import viz
from fvae_tf.data import alignment
from fvae_tf.edit import editing, interpolation
from fvae_tf.train import checkpoints, loop
from fvae_tf.model.fvae import FVAE

_FPS = 6

CHECKPOINT_DIR = flags.DEFINE_string("checkpoint_dir", None, "An FVAE run directory; the "
                                     "confidence mask is read from its mask/ subfolder.",
                                     required=True)
INPUTS = flags.DEFINE_multi_string("inputs", None, "The two photos (`--inputs A B`).",
                                   required=True)
STEPS = flags.DEFINE_integer("steps", 8, "Frames, both faces' own latents included.",
                             lower_bound=2)
OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where the pictures go.", required=True)
CONFIDENCE = flags.DEFINE_bool("confidence", True, "Also blend by the confidence mask "
                               "(needs experiments.train_mask on the run).")
WEIGHTING = flags.DEFINE_enum_class(
    "weighting", interpolation.SourceWeighting.LATENT_SHARE, interpolation.SourceWeighting,
    "latent_share: confidences times each face's share of the latent (endpoints are the "
    "faces' own reconstructions); equal: normalized confidences alone.", case_sensitive=False)
HR_SIZE = flags.DEFINE_integer("hr_size", 256, "Side of the output frames.", lower_bound=16)
UPSAMPLE = flags.DEFINE_integer("upsample", 0, "Times the face detector doubles each photo "
                                "first (finds faces half as small, 4x slower).", lower_bound=0)
MULTIPLE_FACES = flags.DEFINE_enum_class(
    "multiple_faces", alignment.MultipleFaces.ERROR, alignment.MultipleFaces,
    "Photos with several faces: error, or use the largest.", case_sensitive=False)


def main(argv: list[str]) -> None:
    # `--inputs A B` leaves B as a positional argument: it is the second face.
    paths = INPUTS.value + argv[1:]
    if len(paths) != 2:
        sys.exit(f"error: --inputs: got {len(paths)} photo(s) ({', '.join(paths)}); "
                 "interpolation takes exactly two")
    try:
        fvae = loop.load_model(CHECKPOINT_DIR.value)
    except checkpoints.CheckpointError as e:
        sys.exit(f"error: {e}")
    if not isinstance(fvae, FVAE):
        sys.exit(f"error: {CHECKPOINT_DIR.value} holds a VAE run; interpolation needs an FVAE "
                 "run (experiments.train --model=fvae)")
    try:
        mask_model = (loop.load_confidence_model(CHECKPOINT_DIR.value)
                      if CONFIDENCE.value else None)
    except checkpoints.CheckpointError as e:
        sys.exit(f"error: {e}; train the mask with experiments.train_mask, or pass "
                 "--noconfidence")
    faces = []
    for path in paths:
        try:
            photo, face = editing.load_face(path, UPSAMPLE.value, MULTIPLE_FACES.value)
        except alignment.InputError as e:
            sys.exit(f"error: {e}; {editing.input_hint(e)}")
        faces.append(alignment.align_face(photo, face.landmarks, fvae.config.image_size,
                                          HR_SIZE.value))

    sources = editing.to_float(np.stack([f.crop for f in faces]))
    sources_hr = editing.to_float(np.stack([f.crop_hr for f in faces]))
    alphas = interpolation.interpolation_alphas(STEPS.value)
    plain = interpolation.interpolate(fvae, sources, alphas, sources_hr=sources_hr).blend
    rows = [list(viz.to_uint8(plain.warped[:, 0].numpy())),
            list(viz.to_uint8(plain.warped[:, 1].numpy())),
            list(viz.to_uint8(plain.images.numpy()))]
    output_dir = pathlib.Path(OUTPUT_DIR.value)
    written = [output_dir / "interpolation_no_confidence.gif"]
    outputs = {written[0]: rows[2]}
    if mask_model is not None:
        blended = interpolation.interpolate(fvae, sources, alphas, mask_model, WEIGHTING.value,
                                            sources_hr).blend
        rows.append(list(viz.to_uint8(blended.images.numpy())))
        rows.append(list(viz.overlay_mask(rows[-1], blended.weights[:, 0].numpy())))
        written.append(output_dir / "interpolation.gif")
        outputs[written[1]] = rows[3]
    for path, frames in outputs.items():
        viz.save_gif(path, frames + frames[-2:0:-1], fps=_FPS)
    grid = viz.image_grid([list(column) for column in zip(*rows)],
                          labels=["face 1", "face 2", "cross-fade", "confidence", "weight 1"]
                          [:len(rows)])
    viz.save_png(output_dir / "interpolation.png", grid)
    print(f"wrote {', '.join(str(p) for p in written)} and {output_dir / 'interpolation.png'} "
          f"({STEPS.value} steps)")


if __name__ == "__main__":
    app.run(main)
