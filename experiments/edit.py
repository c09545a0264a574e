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
exit status is then non-zero. The logic is in `fvae_tf.edit.photo`.

With --direction=fitted (not in the paper; README: values the paper lost) the
edit uses the direction `experiments.fit_direction` fitted to the training
people's landmarks and saved with the run (`fvae_tf.edit.fitted_directions`),
and is the change the direction makes to the face's own field, averaged with
the mirrored face's (factor 0 returns the photo untouched):

    python -m experiments.fit_direction --checkpoint_dir runs/london --to smile
    python -m experiments.edit --checkpoint_dir runs/london --input me.jpg \
        --to smile --direction fitted --output_dir edits
"""

import sys

from absl import app, flags

from experiments import expression_flags, photo_flags
from fvae_tf import errors
from fvae_tf.edit import direction_fit, editing, fitted_directions, photo

INPUT = flags.DEFINE_multi_string("input", None, "Photos or folders of photos.", required=True)
STRENGTH = flags.DEFINE_float("strength", 1.0, "Factor of the last step: <1 subtler, >1 "
                              "exaggerated, <0 the opposite way.")
STEPS = flags.DEFINE_integer("steps", 5, "Factors from 0 to --strength.", lower_bound=1)
DIRECTION = flags.DEFINE_enum(
    "direction", "paper", ["paper", "fitted"], "paper: Algorithm 1's direction and field. "
    "fitted: the direction experiments.fit_direction saved with the run, under the residual, "
    "mirrored rule (not in the paper).")


def main(argv: list[str]) -> None:
    # `--input A B` leaves B as a positional argument: it is one more input.
    inputs = INPUT.value + argv[1:]
    checkpoint_dir = photo_flags.CHECKPOINT_DIR.value
    source, target = expression_flags.source_and_target()
    try:
        paths = photo.photo_paths(inputs)
        model = editing.load_editing_model(checkpoint_dir)
        direction, rule = model.stats.direction(source, target), editing.EditRule()
        if DIRECTION.value == "fitted":
            direction = fitted_directions.load(checkpoint_dir, source, target, model.stats)
            rule = direction_fit.FITTED_RULE
    except errors.ActionableError as e:
        sys.exit(f"error: {e.describe('--{}')}")
    except ValueError as e:
        sys.exit(f"error: {checkpoint_dir}: {e}; choose --from/--to among those")

    failed = 0
    for done in photo.edit_photos(model.fvae, direction, target, paths,
                                  editing.edit_factors(STRENGTH.value, STEPS.value),
                                  photo_flags.OUTPUT_DIR.value, photo_flags.HR_SIZE.value,
                                  photo_flags.detection(), rule):
        if done.error is not None:
            print(f"error: {done.error.describe('--{}')}", file=sys.stderr)
            failed += 1
            continue
        size, up = done.edit.photo.shape, done.edit.upsampling
        print(f"{done.path}: wrote {done.stem}.png ({size[1]}x{size[0]}) and its steps, GIF "
              f"and flow; sharpness vs the aligned source: flow upsampling "
              f"{up.flow_sharpness:.3f}, pixel upsampling {up.pixel_sharpness:.3f}")
    if failed:
        sys.exit(f"error: {failed} of {len(paths)} photo(s) failed (see above)")


if __name__ == "__main__":
    app.run(main)
