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
The logic is in `fvae_tf.edit.photo`.
"""

import sys

from absl import app, flags

from experiments import photo_flags
from fvae_tf import errors
from fvae_tf.edit import editing, interpolation, photo
from fvae_tf.train import checkpoints

INPUTS = flags.DEFINE_multi_string("inputs", None, "The two photos (`--inputs A B`).",
                                   required=True)
STEPS = flags.DEFINE_integer("steps", 8, "Frames, both faces' own latents included.",
                             lower_bound=2)
CONFIDENCE = flags.DEFINE_bool("confidence", True, "Also blend by the confidence mask "
                               "(needs experiments.train_mask on the run).")
WEIGHTING = flags.DEFINE_enum_class(
    "weighting", interpolation.SourceWeighting.LATENT_SHARE, interpolation.SourceWeighting,
    "latent_share: confidences times each face's share of the latent (endpoints are the "
    "faces' own reconstructions); equal: normalized confidences alone.", case_sensitive=False)


def main(argv: list[str]) -> None:
    # `--inputs A B` leaves B as a positional argument: it is the second face.
    paths = INPUTS.value + argv[1:]
    checkpoint_dir = photo_flags.CHECKPOINT_DIR.value
    try:
        fvae = editing.load_fvae(checkpoint_dir)
    except errors.ActionableError as e:
        sys.exit(f"error: {e.describe('--{}')}")
    try:
        mask_model = checkpoints.load_confidence_model(checkpoint_dir) if CONFIDENCE.value else None
    except checkpoints.CheckpointError as e:
        sys.exit(f"error: {e}; train the mask with experiments.train_mask, or pass "
                 "--noconfidence")
    try:
        written = photo.interpolate_photos(fvae, mask_model, paths, STEPS.value,
                                           photo_flags.OUTPUT_DIR.value, WEIGHTING.value,
                                           photo_flags.HR_SIZE.value, photo_flags.detection())
    except photo.PhotoError as e:
        sys.exit(f"error: --inputs: {e.describe('--{}')}")
    print(f"wrote {', '.join(map(str, written[:-1]))} and {written[-1]} ({STEPS.value} steps)")


if __name__ == "__main__":
    app.run(main)
