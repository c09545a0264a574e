"""Timing of TensorFlow calls, shared by the benchmarks and their tensorflow-addons worker.

Imports only numpy and TensorFlow, so that it also runs in the addons' own
environment (TensorFlow 2.15, no project dependencies).
"""

import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf

_ROUND_BUDGET_S = 1.0  # seconds a timed round aims at, for slow calls


def time_call(fn: Callable[[], object], repeats: int, rounds: int) -> dict[str, float]:
    """Milliseconds per call of `fn`: the fastest of `rounds` rounds of `repeats` calls.

    One untimed call first (tracing, compilation), and one more to size the
    rounds: a call slower than `_ROUND_BUDGET_S` / `repeats` gets fewer
    repeats (at least one), so slow methods do not stall a benchmark.
    Results are turned into numpy inside the timed region, so asynchronous
    work is waited for. The fastest round is the least disturbed by other
    processes on a shared machine. Returns wall and CPU (this process, all
    threads) milliseconds.
    """
    def run():
        return tf.nest.map_structure(np.asarray, fn())

    run()
    start = time.perf_counter()
    run()
    repeats = max(1, min(repeats, int(_ROUND_BUDGET_S / (time.perf_counter() - start))))
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(repeats):
            run()
        best_wall = min(best_wall, (time.perf_counter() - wall) / repeats)
        best_cpu = min(best_cpu, (time.process_time() - cpu) / repeats)
    return {"wall_ms": 1000 * best_wall, "cpu_ms": 1000 * best_cpu}


def forward_backward(sample: Callable, upstream: tf.Tensor) -> Callable:
    """(images, coords) -> [d images, d coords] of sum(sample(images, coords) * upstream).

    The same loss for every sampler compared, so each does the same work.
    """
    def step(images, coords):
        with tf.GradientTape() as tape:
            tape.watch([images, coords])
            loss = tf.reduce_sum(sample(images, coords) * upstream)
        return tape.gradient(loss, [images, coords])

    return step
