r"""How far the training objective's own minimum lies from the true flow (synthetic data).

    python -m experiments.objective_minimum --dataset_dir=runs/demo/dataset --preset=demo \
        --photometric=l1

A smooth free field (a `--grid` x `--grid` displacement lattice) starts at
the ground truth of `--num_pairs` pairs of `--split` and descends the
objective that `experiments.train` with the same preset and flags would
train on (L_rec + lambda L_flow). The printed table gives, for the exact
truth, its lattice version (the start) and the end of the descent, the
end-point errors against the truth (as Table 1 scores a model) and the
objective. Compare candidate objectives (a flag each) before training with
them. The logic is in `fvae_tf.eval.objective_minimum`.
"""

import sys

from absl import app, flags

from experiments import config_flags
from fvae_tf.data import records
from fvae_tf.eval import data, objective_minimum
from fvae_tf.model import config

config_flags.define()
flags.adopt_module_key_flags(config_flags)

DATASET_DIR = flags.DEFINE_string("dataset_dir", None, "A synthetic dataset "
                                  "(data_prep.build_dataset --source=synthetic).", required=True)
SPLIT = flags.DEFINE_enum("split", "train", list(records.SPLITS),
                          "Pairs to descend from (the objective's minimum on the training "
                          "pairs is what training sees).")
PRESET = flags.DEFINE_enum("preset", "demo", config.preset_names(), "Named set of values.")
NUM_PAIRS = flags.DEFINE_integer("num_pairs", 48, "Pairs drawn at random (seeded).",
                                 lower_bound=1)
GRID = flags.DEFINE_integer("grid", 16, "Lattice side: the field's smoothness (16 at 64 px: "
                            "a value every 4 px).", lower_bound=2)
STEPS = flags.DEFINE_integer("steps", 400, "Adam steps.", lower_bound=1)
LEARNING_RATE = flags.DEFINE_float("learning_rate_descent", 2e-3, "Adam's rate, in normalized "
                                   "coordinates (1 px = 2 / 64).", lower_bound=0.0)


def main(argv: list[str]) -> None:
    del argv
    try:
        objective = config_flags.config_from_flags(PRESET.value)
        pairs = data.read_pairs(DATASET_DIR.value, SPLIT.value)
        drift = objective_minimum.measure(pairs, objective, NUM_PAIRS.value, GRID.value,
                                          STEPS.value, LEARNING_RATE.value, objective.seed)
    except (ValueError, records.RecordsError, data.EvalDataError) as e:
        sys.exit(f"error: {e}")
    print(f"objective: {objective.photometric} on {objective.multiscale_levels} pyramid "
          f"level(s), trim {objective.photometric_trim:g}, lambda {objective.flow_weight:g}, "
          f"coherence sigma {objective.coherence_sigma:g} over "
          f"{objective.coherence_window}x{objective.coherence_window}; {drift.num_pairs} "
          f"{SPLIT.value} pairs, {GRID.value}x{GRID.value} lattice, {STEPS.value} steps")
    print("| field | EPE visible px | EPE moving px | EPE moving px, inside face | objective |")
    print("|---|---|---|---|---|")
    print(f"| the truth | 0 | 0 | 0 | {drift.objective_at_truth:.1f} |")
    for name, field in (("the truth on the lattice (start)", drift.start),
                        ("the objective's minimum near it (end)", drift.end)):
        print(f"| {name} | {field.epe_visible:.3f} | {field.epe_moving:.3f} "
              f"| {field.epe_moving_face:.3f} | {field.objective:.1f} |")


if __name__ == "__main__":
    app.run(main)
