"""Training throughput and efficiency of the demo, london and paper presets.

    python -m benchmarks.bench_train [--presets demo,london,paper --steps 5 --rounds 2]
        [--precisions float32,mixed_bfloat16,mixed_float16]

Each (preset, step kind, precision) runs in a fresh process, so its peak
memory (the process's peak resident set) is its own: the FVAE step that
`experiments.train` runs (`fvae_tf.train.step.make_train_step`: forward,
eq. 1's losses, backward, Adam), on random pairs, as a `tf.function` and
compiled with XLA (`jit_compile`), in each `--precisions` (`FVAEConfig.precision`;
float32 by default). Reported per preset, kind and precision:
* images/s: pairs per second of the step (fastest of `rounds` rounds).
* FLOPs per step: TensorFlow's graph profiler on the uncompiled step's
  graph (the registered FLOP statistics of Conv2D, its two backprop ops,
  MatMul and elementwise ops; batch norm and the gather/scatter of the
  sampler count little or nothing), and efficiency: FLOPs x steps/s over the
  FLOP/s of a 2048x2048 float32 matmul timed in the same process.
* where the time goes: the sampler's and the coherence loss's
  forward+backward on the step's shapes, timed alone the same way; the
  rest (convolutions, dense layers, batch norm, KL, Adam) is the remainder.
* the input pipeline (`input_pipeline.make_dataset`, decoding, colour-
  transferred pairs, flips) in pairs/s on `--dataset_dir`, against the
  step's demand.
Results: benchmarks/results/train.{json,md}.
"""

import json
import resource
import subprocess
import sys

import numpy as np
import tensorflow as tf
from absl import app, flags

from benchmarks import harness, timing
from fvae_tf.data import input_pipeline, records
from fvae_tf.model import config as config_lib
from fvae_tf.model import losses
from fvae_tf.train import checkpoints, step
from fvae_tf.warp import sampler

FLAGS = flags.FLAGS
flags.DEFINE_list("presets", ["demo", "london", "paper"], "Presets to measure.")
flags.DEFINE_integer("steps", 5, "Steps per timed round.")
flags.DEFINE_integer("rounds", 2, "Timed rounds; the fastest counts.")
flags.DEFINE_string("dataset_dir", "runs/demo/dataset",
                    "A built dataset for the input pipeline's rate (skipped if absent).")
flags.DEFINE_list("precisions", ["float32"], "FVAEConfig.precision values to measure.")
flags.register_validator(
    "precisions", lambda values: set(values) <= set(config_lib.PRECISIONS),
    f"--precisions takes FVAEConfig.precision values: {', '.join(config_lib.PRECISIONS)}")
flags.DEFINE_string("child", None,
                    "Internal: measure this 'preset:xla|function:precision' and print JSON.")

_MATMUL_SIZE = 2048


def matmul_flops_per_s(repeats: int = 5) -> float:
    """FLOP/s of a large float32 matmul on this machine, now."""
    a = tf.random.normal([_MATMUL_SIZE, _MATMUL_SIZE])
    product = tf.function(lambda: tf.matmul(a, a))
    seconds = timing.time_call(product, repeats, 2)["wall_ms"] / 1000
    return 2 * _MATMUL_SIZE ** 3 / seconds


def graph_flops(concrete: tf.types.experimental.ConcreteFunction) -> int:
    """FLOPs of one call of `concrete`, from TensorFlow's graph profiler."""
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(concrete.graph, options=options).total_float_ops


def pipeline_pairs_per_s(batch_size: int, batches: int = 20) -> float | None:
    """Pairs per second that the training input pipeline delivers, or None without a dataset."""
    try:
        data = iter(input_pipeline.make_dataset(FLAGS.dataset_dir, "train", batch_size))
    except records.RecordsError:  # no dataset built here: the row says so
        return None
    timed = timing.time_call(lambda: next(data)["source"], batches, 2)
    return batch_size / (timed["wall_ms"] / 1000)


def measure(preset: str, kind: str, precision: str) -> dict:
    """One preset's step, as a `tf.function` ("function") or compiled ("xla"), in `precision`."""
    config = config_lib.get_config(preset, jit_compile=kind == "xla", precision=precision)
    model = checkpoints.build_model("fvae", config)
    optimizer = step.make_optimizer(config, model.trainable_variables)
    train_step = step.make_train_step(tf.distribute.get_strategy(), model, optimizer)
    rng = np.random.default_rng(0)
    shape = [config.batch_size, config.image_size, config.image_size]
    batch = {k: tf.constant(rng.uniform(-1, 1, shape + [3]), tf.float32)
             for k in ("source", "target")}
    coords = tf.constant(rng.uniform(-1, 1, shape + [2]), tf.float32)
    spec = {k: tf.TensorSpec.from_tensor(v) for k, v in batch.items()}

    step_ms = timing.time_call(lambda: train_step(batch), FLAGS.steps, FLAGS.rounds)["wall_ms"]
    compile_as = dict(jit_compile=kind == "xla")

    def coords_gradient(loss):
        # Training differentiates these parts with respect to the flow only.
        def part(images, coords):
            with tf.GradientTape() as tape:
                tape.watch(coords)
                value = loss(images, coords)
            return tape.gradient(value, coords)
        return tf.function(part, **compile_as)

    warp = coords_gradient(lambda images, coords: tf.reduce_sum(
        sampler.bilinear_sample(images, coords) * batch["target"]))
    coherence = coords_gradient(lambda images, coords: losses.flow_coherence(
        coords, images, config.coherence_sigma, config.coherence_window))
    parts = {name: timing.time_call(lambda: fn(images, coords), FLAGS.steps,
                                    FLAGS.rounds)["wall_ms"]
             for name, fn, images in (("sampler_ms", warp, batch["source"]),
                                      ("coherence_ms", coherence, batch["target"]))}
    flops = graph_flops(step.make_train_step(
        tf.distribute.get_strategy(), model, optimizer).get_concrete_function(spec))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ceiling = matmul_flops_per_s()
    steps_per_s = 1000 / step_ms
    return {"preset": preset, "step": "XLA" if kind == "xla" else "tf.function",
            "precision": precision, "batch": config.batch_size, "step_ms": step_ms,
            "images_per_s": config.batch_size * steps_per_s, "peak_mb": peak,
            "gflop_per_step": flops / 1e9, "matmul_gflop_per_s": ceiling / 1e9,
            "efficiency_%": 100 * flops * steps_per_s / ceiling, **parts,
            "rest_ms": step_ms - sum(parts.values()),
            "pipeline_pairs_per_s": pipeline_pairs_per_s(config.batch_size)}


def main(argv):
    del argv
    if FLAGS.child:
        print(json.dumps(measure(*FLAGS.child.split(":"))))
        return
    columns = ["preset", "step", "precision", "batch", "step_ms", "images_per_s", "peak_mb",
               "gflop_per_step", "matmul_gflop_per_s", "efficiency_%", "sampler_ms",
               "coherence_ms", "rest_ms", "pipeline_pairs_per_s"]
    notes = ["sampler_ms, coherence_ms: forward+backward of each alone on the step's shapes, "
             "compiled like the step; rest_ms = step_ms - both (convolutions, dense layers, "
             "batch norm, KL, Adam). pipeline_pairs_per_s: the training input pipeline on "
             f"{FLAGS.dataset_dir} (its demand is images_per_s). FLOPs: TensorFlow's graph "
             "profiler on the step's graph. precision: FVAEConfig.precision (the hidden "
             "layers' Keras dtype policy; the matmul ceiling is float32's)."]
    settings = {"command": "python -m benchmarks.bench_train " + " ".join(sys.argv[1:]),
                "steps": FLAGS.steps, "rounds": FLAGS.rounds, "dataset_dir": FLAGS.dataset_dir}
    rows = []
    for preset in FLAGS.presets:
        for kind in ("function", "xla"):
            for precision in FLAGS.precisions:
                out = subprocess.run(
                    [sys.executable, "-m", "benchmarks.bench_train",
                     f"--child={preset}:{kind}:{precision}", f"--steps={FLAGS.steps}",
                     f"--rounds={FLAGS.rounds}", f"--dataset_dir={FLAGS.dataset_dir}"],
                    check=True, capture_output=True, text=True).stdout
                rows.append(json.loads(out.strip().splitlines()[-1]))
                # Written after every row, so a long run leaves what it measured so far.
                path = harness.write_results("train", settings,
                                             {"Training step": (rows, columns)}, notes)
    print(path.read_text())


if __name__ == "__main__":
    app.run(main)
