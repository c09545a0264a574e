r"""Evaluates an FVAE against the paper's baselines on a test split (paper section 6).

    python -m experiments.evaluate --fvae_dir=runs/demo/fvae --vae_dir=runs/demo/vae \
        --dataset_dir=runs/demo/dataset --split=test --output_dir=runs/demo/eval

Writes OUTPUT_DIR/results.json, results.md (one table per block, the paper's
Table 1 beside ours, which of its orderings hold), plots and image grids.
--blocks picks parts (table1, upsampling, editing, interpolation, real_editing;
default: every block the dataset allows); --max_pairs and --max_series bound the
work for a quick run. The logic is in `fvae_tf.eval.evaluate`.
"""

import sys

from absl import app, flags

from fvae_tf import errors
from fvae_tf.data import records
from fvae_tf.eval import data, models, optical_flow
from fvae_tf.eval import evaluate as evaluation

FVAE_DIR = flags.DEFINE_string("fvae_dir", None, "FVAE run directory (its mask/ is used too).",
                               required=True)
VAE_DIR = flags.DEFINE_multi_string("vae_dir", [], "VAE run directory; repeat for several.")
DATASET_DIR = flags.DEFINE_string("dataset_dir", None, "Built by data_prep.build_dataset.",
                                  required=True)
SPLIT = flags.DEFINE_enum("split", "test", list(records.SPLITS), "Identities to evaluate on.")
OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where the results go.", required=True)
BLOCKS = flags.DEFINE_multi_enum("blocks", [], [b.value for b in evaluation.Block],
                                 "Blocks to run (repeat or comma-separate); default: all "
                                 "the dataset allows.")
MAX_PAIRS = flags.DEFINE_integer("max_pairs", 0, "Table 1 pairs to evaluate; 0: all.",
                                 lower_bound=0)
MAX_TRAIN_PAIRS = flags.DEFINE_integer("max_train_pairs", 600, "Training pairs averaged for "
                                       "the average-flow baseline; 0: all.", lower_bound=0)
MAX_SERIES = flags.DEFINE_integer("max_series", 0, "Graded series (person x expression) for "
                                  "editing and interpolation; 0: all.", lower_bound=0)
UPSAMPLING_PAIRS = flags.DEFINE_integer("upsampling_pairs", 32, "Pairs of the upsampling "
                                        "block; 0: all.", lower_bound=0)
SYNTHETIC_DIR = flags.DEFINE_string("synthetic_dir", None, "The synthetic set's folder "
                                    "(graded series); default: the dataset's --input_dir.")
BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Pairs per forward pass.", lower_bound=1)
NUM_EXAMPLES = flags.DEFINE_integer("num_examples", 6, "Faces per image grid.", lower_bound=1)
NUM_WORKERS = flags.DEFINE_integer("num_workers", 2, "Optical-flow processes.", lower_bound=1)
OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing --output_dir.")


def main(argv: list[str]) -> None:
    del argv
    config = evaluation.EvalConfig(
        fvae_dir=FVAE_DIR.value, dataset_dir=DATASET_DIR.value, output_dir=OUTPUT_DIR.value,
        vae_dirs=tuple(VAE_DIR.value), split=SPLIT.value, blocks=tuple(BLOCKS.value),
        max_pairs=MAX_PAIRS.value, max_train_pairs=MAX_TRAIN_PAIRS.value,
        max_series=MAX_SERIES.value, upsampling_pairs=UPSAMPLING_PAIRS.value,
        synthetic_dir=SYNTHETIC_DIR.value, batch_size=BATCH_SIZE.value,
        num_examples=NUM_EXAMPLES.value, num_workers=NUM_WORKERS.value,
        overwrite=OVERWRITE.value)
    try:
        results = evaluation.evaluate(config, evaluation.StageProgress())
    except (evaluation.EvalError, models.EvalModelError, data.EvalDataError,
            records.RecordsError) as e:
        sys.exit(f"error: {errors.message(e, '--{}')}")
    except optical_flow.OpticalFlowError as e:
        sys.exit(f"error: {e}; nothing was written to {OUTPUT_DIR.value}. OpenCV's flows "
                 f"fail now and then without a cause in the data: run the command again")
    except KeyboardInterrupt:
        sys.exit(f"interrupted: nothing was written to {OUTPUT_DIR.value}")
    print(f"wrote {OUTPUT_DIR.value} (results.md, results.json, plots, grids) in "
          f"{sum(results['timings_s'].values()):.0f} s")


if __name__ == "__main__":
    app.run(main)
