"""The evaluation (paper section 6): every block, every baseline, on one split; atomic outputs.

`evaluate(config)` loads the FVAE run (and its mask), the VAE runs and the
split's pairs, runs the chosen blocks (`Block`), and writes into
`config.output_dir`:

  results.json        every number (NaN written as null), the setting, timings
  results.md          one table per block, the paper's Table 1 beside ours,
                      which of the paper's orderings hold here
  *.png               plots (bars per method, per-step curves) and image grids
                      of every method on the same test faces

The folder is built under a temporary name beside `output_dir` and renamed
when complete, so an interrupted or failed run leaves nothing half-written.
Bad input (a run of the wrong kind or crop size, a dataset without the
split, a graded block without the synthetic set) raises `EvalError` or the
loaders' errors before any work, each with one message saying what to do.
"""

import dataclasses
import enum
import functools
import json
import math
import os
import pathlib
import shutil
import tempfile
import time
from collections.abc import Callable

from fvae_tf import atomic_io
from fvae_tf.data import records
from fvae_tf.eval import data, graded, models as models_lib, real_faces, report, table1
from fvae_tf.progress import Progress


class EvalError(Exception):
    """An evaluation that cannot run as asked; the message says what to do."""


class Block(str, enum.Enum):
    """The evaluation's parts."""

    TABLE1 = "table1"  # Table 1 protocol; on synthetic data also the confidence AUC
    UPSAMPLING = "upsampling"  # flow vs pixel upsampling (6.4)
    EDITING = "editing"  # Algorithm 1 vs the synthetic graded series
    INTERPOLATION = "interpolation"  # Algorithm 2 and baselines vs the graded series
    REAL_EDITING = "real_editing"  # neutral -> smile vs the person's real smile (dlib measures)


GRADED_BLOCKS = (Block.EDITING, Block.INTERPOLATION)


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Settings of one evaluation (the flags of `experiments.evaluate`)."""

    fvae_dir: str  # an FVAE run directory; its RUN/mask is used when present
    dataset_dir: str  # built by data_prep.build_dataset
    output_dir: str  # where results.json, results.md and pictures go
    vae_dirs: tuple[str, ...] = ()  # VAE run directories (any decoder)
    split: str = "test"  # the identities to evaluate on
    blocks: tuple[str, ...] = ()  # `Block` values; empty: every block the dataset allows
    max_pairs: int = 0  # Table 1 pairs evaluated (storage order); 0: all
    max_train_pairs: int = 600  # training pairs whose flows make the average-flow baseline
    max_series: int = 0  # graded series (person x expression) evaluated; 0: all
    upsampling_pairs: int = 32  # pairs of the upsampling block (reads 256 px crops)
    synthetic_dir: str | None = None  # graded series' folder; None: the dataset's input_dir
    batch_size: int = 32  # pairs per forward pass
    num_examples: int = 6  # faces in each image grid
    num_workers: int = 2  # processes computing optical flow
    overwrite: bool = False  # replace an existing output_dir


StageReport = Callable[[str, int, int], None]


class StageProgress:
    """A `StageReport` printing one `Progress` line (with ETA) per stage."""

    def __init__(self):
        self.stage, self.line = None, None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            self.stage, self.line = stage, Progress(stage, total, "item")
        self.line.update(done)


def _blocks(config: EvalConfig, manifest: records.Manifest) -> list[Block]:
    """The blocks to run: as asked, or by default the graded blocks on synthetic faces and
    the real-smile block on real ones."""
    synthetic = manifest.source == "synthetic"
    if not config.blocks:
        left_out = (Block.REAL_EDITING,) if synthetic else GRADED_BLOCKS
        return [b for b in Block if b not in left_out]
    try:
        chosen = [Block(b) for b in config.blocks]
    except ValueError:
        raise EvalError(f"unknown block in {', '.join(config.blocks)}; known blocks: "
                        f"{', '.join(b.value for b in Block)}") from None
    if not synthetic and any(b in GRADED_BLOCKS for b in chosen):
        raise EvalError(f"blocks {', '.join(b.value for b in GRADED_BLOCKS)} need synthetic "
                        f"faces' graded series; {config.dataset_dir} is a {manifest.source} "
                        "dataset")
    return chosen


def _check_output(output_dir: pathlib.Path, overwrite: bool) -> None:
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        if not overwrite:
            raise EvalError(f"{output_dir} exists and is not empty; choose another output "
                            "folder or pass --overwrite to replace it")


def _plain(value):
    """NaN and inf -> None, recursively (results.json is strict JSON)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _graded_series(config: EvalConfig, manifest: records.Manifest) -> list[data.GradedSeries]:
    synthetic_dir = config.synthetic_dir or manifest.flags.get("input_dir")
    identities = manifest.splits[config.split].identities
    if config.max_series:
        identities = identities[:-(-config.max_series // 5)]  # five expressions a person
    series = data.read_graded(synthetic_dir, identities, manifest.size, manifest.hr_size)
    return series[:config.max_series or None]


def evaluate(config: EvalConfig, progress: StageReport | None = None) -> dict:
    """Runs the evaluation and writes `config.output_dir` (see the module docstring).

    Returns:
      The results dictionary written to results.json.

    Raises:
      EvalError, models.EvalModelError, data.EvalDataError, records.RecordsError:
        bad input, before anything is written.
    """
    output_dir = pathlib.Path(config.output_dir)
    _check_output(output_dir, config.overwrite)
    manifest = records.read_manifest(config.dataset_dir)
    records.shard_paths(config.dataset_dir, config.split, manifest)  # the rebuild message
    blocks = _blocks(config, manifest)
    models = models_lib.load_models(config.fvae_dir, list(config.vae_dirs), manifest.size)
    series = _graded_series(config, manifest) if set(blocks) & set(GRADED_BLOCKS) else []
    split_pairs = data.read_pairs(config.dataset_dir, config.split)
    pairs = split_pairs.subset(slice(config.max_pairs or None))
    needs_average = bool({Block.TABLE1, Block.EDITING, Block.REAL_EDITING} & set(blocks))
    train = (data.read_pairs(config.dataset_dir, "train", config.max_train_pairs or None)
             if needs_average and manifest.splits["train"].num_pairs else None)

    results = {"setting": {
        "dataset_dir": str(config.dataset_dir), "source": manifest.source, "split": config.split,
        "identities": len(manifest.splits[config.split].identities), "pairs": len(pairs),
        "split_pairs": len(split_pairs), "fvae_dir": str(config.fvae_dir),
        "mask": models.mask is not None,
        "vae_dirs": dict(zip(models.vaes, map(str, config.vae_dirs))),
        "blocks": [b.value for b in blocks], "graded_series": len(series),
        "config": dataclasses.asdict(config)}, "timings_s": {}}
    grids = {}

    def timed(name: str, start: float) -> None:
        results["timings_s"][name] = round(time.monotonic() - start, 1)

    def stage(name: str) -> Callable[[int, int], None] | None:
        return None if progress is None else functools.partial(progress, name)

    start = time.monotonic()
    averages = {}
    if train is not None:
        averages = table1.training_average_flows(train, config.num_workers)
        results["average_flow_pairs"] = averages[table1.AVERAGE_FLOW].counts
        timed("average_flow", start)
    if Block.TABLE1 in blocks:
        start = time.monotonic()
        flows = table1.optical_flows(pairs, config.num_workers)
        block, examples = table1.run_table1(
            models, pairs, split_pairs, averages, flows, config.batch_size, config.num_examples,
            stage("table 1"))
        results.update(block)
        grids["table1"] = {"source": pairs.source[:config.num_examples],
                           "target": pairs.target[:config.num_examples], **examples}
        timed("table1", start)
    if Block.UPSAMPLING in blocks:
        start = time.monotonic()
        hr_pairs = data.read_pairs(config.dataset_dir, config.split,
                                   config.upsampling_pairs or None, with_hr=True)
        results["upsampling"], examples = table1.run_upsampling(models, hr_pairs,
                                                                config.batch_size)
        grids["upsampling"] = {"target": hr_pairs.target_hr[:2], **examples}
        timed("upsampling", start)
    if Block.EDITING in blocks:
        start = time.monotonic()
        results["editing"], grids["editing"] = graded.run_editing(models, series, averages,
                                                                  stage("editing"))
        timed("editing", start)
    if Block.INTERPOLATION in blocks:
        start = time.monotonic()
        results["interpolation"], grids["interpolation"] = graded.run_interpolation(
            models, series, config.num_workers, stage("interpolation"))
        timed("interpolation", start)
    if Block.REAL_EDITING in blocks:
        start = time.monotonic()
        hr_pairs = data.read_pairs(config.dataset_dir, config.split, with_hr=True)
        results["real_editing"], grids["real_editing"] = real_faces.run_real_editing(
            models, hr_pairs, train, averages.get(table1.AVERAGE_FLOW), stage("real editing"))
        timed("real_editing", start)

    results = _plain(results)
    _write(output_dir, results, grids)
    return results


def _write(output_dir: pathlib.Path, results: dict, grids: dict) -> None:
    """Writes every output into a temporary folder beside `output_dir`, then renames it."""
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    building = pathlib.Path(tempfile.mkdtemp(dir=output_dir.parent,
                                             prefix=f".{output_dir.name}.building."))
    try:
        atomic_io.write_bytes(building / "results.json",
                              (json.dumps(results, indent=2) + "\n").encode())
        atomic_io.write_bytes(building / "results.md", report.markdown(results).encode())
        report.write_plots(building, results)
        report.write_grids(building, grids)
        os.chmod(building, 0o755)
        if output_dir.exists():
            old = pathlib.Path(tempfile.mkdtemp(dir=output_dir.parent,
                                                prefix=f".{output_dir.name}.old."))
            os.replace(output_dir, old / output_dir.name)
            os.replace(building, output_dir)
            shutil.rmtree(old)
        else:
            os.replace(building, output_dir)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
