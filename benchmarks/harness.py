"""What every benchmark shares: the machine's description and its result files.

Each benchmark writes `benchmarks/results/<name>.json` (machine, settings,
rows) and `<name>.md` (the same as a markdown table under a line naming the
machine), atomically.
"""

import os
import pathlib
import platform
from collections.abc import Sequence

import tensorflow as tf

from fvae_tf import atomic_io

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """CPU model, cores, TensorFlow version and GPUs of this machine."""
    cpu = platform.processor() or "unknown"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = [tf.config.experimental.get_device_details(d).get("device_name", d.name)
            for d in tf.config.list_physical_devices("GPU")]
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "tensorflow": tf.__version__,
            "gpu": ", ".join(gpus) or "none", "python": platform.python_version()}


def describe(info: dict) -> str:
    """One line naming the machine."""
    return (f"{info['cpu']}, {info['cores']} cores, TensorFlow {info['tensorflow']}, "
            f"GPU: {info['gpu']}")


def markdown_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """A markdown table of `rows` (dicts) with `columns`; floats to 3 significant digits."""
    def cell(value):
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1e5 else f"{value:.3e}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_results(name: str, settings: dict, tables: dict[str, tuple[list[dict], list[str]]],
                  notes: Sequence[str] = ()) -> pathlib.Path:
    """Writes `<name>.json` and `<name>.md` into RESULTS_DIR; returns the markdown path.

    Args:
      name: the benchmark's name.
      settings: what it ran with (sizes, repeats, command).
      tables: title -> (rows, columns).
      notes: lines printed under the tables.
    """
    info = machine()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    atomic_io.write_json(RESULTS_DIR / f"{name}.json", {
        "machine": info, "settings": settings,
        "tables": {title: rows for title, (rows, _) in tables.items()}, "notes": list(notes)})
    parts = [f"Machine: {describe(info)}.", f"Command: `{settings.get('command', '')}`."]
    for title, (rows, columns) in tables.items():
        parts += [f"**{title}**", markdown_table(rows, columns)]
    parts += list(notes)
    path = RESULTS_DIR / f"{name}.md"
    atomic_io.write_bytes(path, ("\n\n".join(parts) + "\n").encode())
    return path
