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

With --fit_direction_on=DATASET_DIR (not in the paper; README: values the paper
lost) Algorithm 1's direction is first refined on that dataset's training
pairs so that the edit carries their landmarks onto the real expression's
(`fvae_tf.edit.direction_fit`), and the edit is the change the direction
makes to the face's own field, averaged with the mirrored face's:

    python -m experiments.edit --checkpoint_dir runs/london --input me.jpg \
        --to smile --fit_direction_on runs/london_data --output_dir edits
"""

import sys

from absl import app, flags

from experiments import photo_flags
from fvae_tf import errors
from fvae_tf.edit import direction_fit, editing, photo
from fvae_tf.expressions import expression_id

INPUT = flags.DEFINE_multi_string("input", None, "Photos or folders of photos.", required=True)
TO = flags.DEFINE_string("to", None, "Target expression, e.g. smile.", required=True)
FROM = flags.DEFINE_string("from", "neutral", "Source expression of the photos.")
STRENGTH = flags.DEFINE_float("strength", 1.0, "Factor of the last step: <1 subtler, >1 "
                              "exaggerated, <0 the opposite way.")
STEPS = flags.DEFINE_integer("steps", 5, "Factors from 0 to --strength.", lower_bound=1)
FIT_DIRECTION_ON = flags.DEFINE_string(
    "fit_direction_on", None, "A dataset (data_prep.build_dataset) of the model's crop size: "
    "refine the direction on its training pairs' landmarks and edit with the residual, "
    "mirrored rule (not in the paper). Unset: Algorithm 1 as the paper has it.")


def fitted(model: editing.EditingModel, dataset_dir: str, source: str, target: str,
           initial) -> tuple:
    """(direction, rule) fitted on `dataset_dir`'s training pairs, with progress lines."""
    sources, source_landmarks, target_landmarks = direction_fit.training_pairs(
        dataset_dir, source, target)
    if sources.shape[1] != model.fvae.config.image_size:
        sys.exit(f"error: --fit_direction_on={dataset_dir}: its crops are {sources.shape[1]} px, "
                 f"the model's {model.fvae.config.image_size} px; build the dataset at the "
                 f"model's size")
    direction = direction_fit.fit_on_pairs(model.fvae, sources, source_landmarks,
                                           target_landmarks, initial, source, target)
    return direction, direction_fit.FITTED_RULE


def main(argv: list[str]) -> None:
    # `--input A B` leaves B as a positional argument: it is one more input.
    inputs = INPUT.value + argv[1:]
    checkpoint_dir, source, target = photo_flags.CHECKPOINT_DIR.value, FROM.value, TO.value
    try:
        expression_id(source)
        expression_id(target)
    except ValueError as e:
        sys.exit(f"error: --from/--to: {e}")
    try:
        paths = photo.photo_paths(inputs)
        model = editing.load_editing_model(checkpoint_dir)
        direction, rule = model.stats.direction(source, target), editing.EditRule()
        if FIT_DIRECTION_ON.value:
            direction, rule = fitted(model, FIT_DIRECTION_ON.value, source, target, direction)
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
