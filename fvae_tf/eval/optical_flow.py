"""Optical-flow baselines (paper section 6, Table 1): OpenCV flows as sampling coordinates.

Three methods, each computed *from the target to the source*, so that
`target(p) ~ source(p + flow(p))`: the flow is a target-to-source sampling
field like the FVAE's, and `coords = identity + flow` warps the source with
the sampler:
  * SPARSE_TO_DENSE: `cv2.optflow.calcOpticalFlowSparseToDense`, PyrLK
    matches on a grid interpolated edge-aware, as EpicFlow does (the paper's
    [23]). `grid_step=4`, not OpenCV's 8: on a 64x64 crop a step of 8 gives
    64 matches, fewer than the k=128 neighbours the interpolation asks for,
    and OpenCV 5.0.0 then reads past its buffers (NaN in part of the flow,
    results that change from run to run, segfaults in a process that also
    holds TensorFlow). With 4 there are 256 matches.
  * DEEPFLOW: `cv2.optflow.createOptFlow_DeepFlow` on grey images.
  * DIS: `cv2.DISOpticalFlow` (medium preset) on grey images.

`flows_in_processes` runs them in fresh worker processes: OpenCV's native
code then never shares a process with TensorFlow, and both cores work. This
module imports neither TensorFlow nor anything that does.

Images are uint8 RGB [H, W, 3]; fields are float32 [H, W, 2], normalized
(x, y) sampling coordinates (align_corners=False, the sampler's convention).
"""

import enum
import pathlib
import subprocess
import sys
import tempfile

import cv2
import numpy as np

from fvae_tf.warp import coordinates

SPARSE_TO_DENSE_GRID_STEP = 4  # see the module docstring: 8 breaks OpenCV 5 on 64 px crops
# Tries per job, each on the images padded by this many replicated edge pixels
# (the flow cropped back). SparseToDense still returns NaN now and then, on a pair
# that depends on the process's earlier work, and then again on each call with the
# same images in that process; padded images of another size go through (the
# 1,584 demo pairs, twice in one process: one pair failed unpadded, two others
# padded by 8, none both ways).
RETRY_PADDINGS = (0, 4, 8)
ATTEMPTS = len(RETRY_PADDINGS)


class OpticalFlowError(RuntimeError):
    """An optical-flow worker failed; the message holds its last error line."""


class FlowMethod(str, enum.Enum):
    """The optical-flow baselines."""

    SPARSE_TO_DENSE = "sparse_to_dense"  # EpicFlow-style interpolation (paper [23])
    DEEPFLOW = "deepflow"
    DIS = "dis"


def pixel_flow(method: FlowMethod | str, target: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Optical flow from `target` to `source` in pixels.

    Args:
      method: which flow.
      target, source: uint8 RGB [H, W, 3] of equal size.

    Returns:
      float32 [H, W, 2] (dx, dy): target(p) ~ source(p + flow(p)).
    """
    method = FlowMethod(method)
    if method is FlowMethod.SPARSE_TO_DENSE:
        flow = cv2.optflow.calcOpticalFlowSparseToDense(
            np.ascontiguousarray(target), np.ascontiguousarray(source),
            grid_step=SPARSE_TO_DENSE_GRID_STEP)
    else:
        grey = [cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
                for image in (target, source)]
        if method is FlowMethod.DEEPFLOW:
            flow = cv2.optflow.createOptFlow_DeepFlow().calc(*grey, None)
        else:
            flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(*grey, None)
    return np.asarray(flow, np.float32)


def pixel_grid(height: int, width: int) -> np.ndarray:
    """Pixel centres (x, y), float64 [H, W, 2]."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([xs, ys], axis=-1).astype(np.float64)


def flow_to_coords(flow: np.ndarray) -> np.ndarray:
    """A pixel flow [H, W, 2] -> normalized sampling coordinates identity + flow, float32."""
    height, width = flow.shape[:2]
    pixels = pixel_grid(height, width) + flow
    return coordinates.to_normalized(pixels, np.array([width, height], np.float64)
                                     ).astype(np.float32)


def coords_to_flow(coords: np.ndarray) -> np.ndarray:
    """Normalized sampling coordinates [..., H, W, 2] -> pixel displacement from identity."""
    pixels = coordinates.field_to_pixels(coords)
    return (pixels - pixel_grid(*pixels.shape[-3:-1])).astype(np.float32)


def sampling_coords(job: tuple[str, np.ndarray, np.ndarray]) -> np.ndarray:
    """`(method, target, source)` -> the target-to-source sampling coordinates [H, W, 2].

    A flow with NaN or Inf is computed again on the images padded by the
    next of `RETRY_PADDINGS` (replicated edges; the flow is cropped back, so
    away from the border it is the same flow).

    Raises:
      ValueError: the flow held NaN or Inf on each of `ATTEMPTS` tries (an
        OpenCV failure, never silent).
    """
    method, target, source = job
    height, width = target.shape[:2]
    for pad in RETRY_PADDINGS:
        padded = [cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
                  for image in (target, source)]
        flow = pixel_flow(method, *padded)[pad:pad + height, pad:pad + width]
        if np.all(np.isfinite(flow)):
            return flow_to_coords(flow)
    raise ValueError(f"{FlowMethod(method).value} returned a non-finite flow "
                     f"{ATTEMPTS} times on the same images")


def flows_in_processes(jobs: list[tuple[str, np.ndarray, np.ndarray]], num_workers: int
                       ) -> list[np.ndarray]:
    """`sampling_coords` of every job, in `num_workers` fresh Python processes, in order.

    Each worker is `python -m fvae_tf.eval.optical_flow IN.npz OUT.npz` on a
    slice of the jobs: a new interpreter that imports only OpenCV and numpy
    (multiprocessing's "spawn" would re-import the calling binary, and with it
    TensorFlow, into every worker). A worker killed by a signal (OpenCV's
    native code crashes now and then, as its NaN flows come and go with the
    process) runs its slice once more in a fresh process.

    Args:
      jobs: (method value, target uint8 [H, W, 3], source uint8 [H, W, 3]).
      num_workers: processes; OpenCV runs in them, never in the caller.

    Returns:
      float32 [H, W, 2] normalized sampling coordinates per job.

    Raises:
      OpticalFlowError: a worker failed (its last error line is in the message).
    """
    if not jobs:
        return []
    chunks = np.array_split(np.arange(len(jobs)), max(1, min(num_workers, len(jobs))))
    with tempfile.TemporaryDirectory(prefix="fvae_flow_") as folder:
        workers = []
        for index, chunk in enumerate(chunks):
            inputs, outputs = (pathlib.Path(folder) / f"{name}_{index}.npz"
                               for name in ("in", "out"))
            np.savez(inputs, methods=np.array([FlowMethod(jobs[i][0]).value for i in chunk]),
                     targets=np.stack([jobs[i][1] for i in chunk]),
                     sources=np.stack([jobs[i][2] for i in chunk]))
            workers.append((inputs, outputs, _start_worker(inputs, outputs)))
        results = []
        for inputs, outputs, worker in workers:
            _, errors = worker.communicate()
            if worker.returncode < 0:
                worker = _start_worker(inputs, outputs)
                _, errors = worker.communicate()
            if worker.returncode != 0:
                last = errors.strip().splitlines()[-1] if errors.strip() else "no message"
                raise OpticalFlowError(f"an optical-flow worker (OpenCV) exited with "
                                       f"{worker.returncode}: {last}")
            with np.load(outputs) as data:
                results.extend(data["coords"])
    return results


def _start_worker(inputs: pathlib.Path, outputs: pathlib.Path) -> subprocess.Popen:
    """A fresh interpreter running `_worker` on `inputs`, writing `outputs`."""
    return subprocess.Popen([sys.executable, "-m", __name__, str(inputs), str(outputs)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _worker(inputs: str, outputs: str) -> None:
    """Computes the jobs of one `flows_in_processes` slice."""
    with np.load(inputs) as data:
        coords = [sampling_coords((str(m), t, s))
                  for m, t, s in zip(data["methods"], data["targets"], data["sources"])]
    np.savez(outputs, coords=np.stack(coords))


if __name__ == "__main__":
    _worker(*sys.argv[1:3])
