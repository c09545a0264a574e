"""What training shows a person: TensorBoard scalars, image grids, the config, console lines.

Scalar names follow `train/<term>`, `val/<term>`, `eval/<metric>`. Image
grids are one row per example: source | target | output | flow | error for
the FVAE (the flow coloured with the Middlebury wheel, whose legend sits at
the end of the first row), source | target | output | error for the VAE,
and source | target | warped | label | confidence for the mask stage.

Summaries are written with `tf.summary.write` and the TensorBoard plugins'
metadata (what `tensorboard.summary` itself writes), so training does not
need the `tensorboard` package; viewing the events does.
"""

import dataclasses
import datetime

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from fvae_tf import viz
from fvae_tf.model.config import FVAEConfig


def _metadata(plugin: str, data_class: int) -> summary_pb2.SummaryMetadata:
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin),
        data_class=data_class)


def write_scalars(prefix: str, values: dict[str, float], step: int) -> None:
    """Writes `prefix/name` scalars to the default summary writer."""
    metadata = _metadata("scalars", summary_pb2.DATA_CLASS_SCALAR)
    for name, value in values.items():
        tf.summary.write(f"{prefix}/{name}", tf.constant(value, tf.float32), step=step,
                         metadata=metadata)


def write_config(model_kind: str, config: FVAEConfig) -> None:
    """Writes the run's hyper-parameters as a markdown table (text summary `hparams`)."""
    rows = [f"| model | {model_kind} |"]
    rows += [f"| {key} | {value} |" for key, value in dataclasses.asdict(config).items()]
    table = "\n".join(["| name | value |", "|---|---|", *rows])
    tf.summary.write("hparams", tf.constant(table), step=0,
                     metadata=_metadata("text", summary_pb2.DATA_CLASS_TENSOR))


def pair_grid(
    source: np.ndarray,
    target: np.ndarray,
    output: np.ndarray,
    coords: np.ndarray | None = None,
    label: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
) -> np.ndarray:
    """One grid row per example.

    Args:
      source, target, output: float [B, H, W, 3] in [-1, 1].
      coords: [B, H, W, 2] sampling coordinates (FVAE): adds flow and legend.
      label, confidence: [B, H, W, 1] in [0, 1] (mask stage): replace the
        error column by the eq. 7 label and M's confidence as jet heat maps,
        both stretched from their common minimum (blue) to 1 (red): labels
        sit near 1 almost everywhere.

    Returns:
      uint8 [height, width, 3].
    """
    columns = [viz.to_uint8(source), viz.to_uint8(target), viz.to_uint8(output)]
    labels = ["source", "target", "output"]
    if coords is not None:
        columns.append(viz.flow_to_color(coords))
        labels.append("flow")
    if label is None:
        columns.append(viz.error_map(output, target))
        labels.append("error")
    else:
        black = np.zeros(np.shape(label)[:-1] + (3,), np.uint8)
        low = min(np.min(label), np.min(confidence))
        columns += [viz.overlay_mask(black, (m - low) / max(1.0 - low, 1e-6), alpha=1.0)
                    for m in (label, confidence)]
        labels += ["label", "confidence"]
    rows = [[column[i] for column in columns] for i in range(len(source))]
    if coords is not None:
        rows[0].append(viz.color_wheel(np.shape(source)[1]))
        labels.append("legend")
    return viz.image_grid(rows, labels=labels, scale=2)


def write_grid(name: str, grid: np.ndarray, step: int) -> None:
    """Writes one uint8 [H, W, 3] grid as an image summary."""
    height, width = grid.shape[:2]
    tensor = tf.stack([str(width), str(height), tf.io.encode_png(grid)])
    tf.summary.write(name, tensor, step=step,
                     metadata=_metadata("images", summary_pb2.DATA_CLASS_BLOB_SEQUENCE))


def format_duration(seconds: float) -> str:
    """Seconds as h:mm:ss."""
    return str(datetime.timedelta(seconds=round(max(seconds, 0.0))))


def progress_line(step: int, num_steps: int, losses: dict[str, float],
                  steps_per_second: float) -> str:
    """A console line: step, losses, speed and the time left if training runs to the end."""
    terms = "  ".join(f"{name} {value:.4g}" for name, value in losses.items())
    eta = format_duration((num_steps - step) / steps_per_second) if steps_per_second else "?"
    return (f"step {step}/{num_steps}  {terms}  {steps_per_second:.2f} steps/s  "
            f"ETA {eta}")
