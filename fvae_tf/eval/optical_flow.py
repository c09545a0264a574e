"""Optical-flow baselines (paper section 6, Table 1): OpenCV flows as sampling coordinates.

Three methods, each computed *from the target to the source*, so that
`target(p) ~ source(p + flow(p))`: the flow is a target-to-source sampling
field like the FVAE's, and `coords = identity + flow` warps the source with
the sampler:
  * SPARSE_TO_DENSE: OpenCV's `calcOpticalFlowSparseToDense` (PyrLK matches
    on a grid, interpolated edge-aware, as EpicFlow does: the paper's [23]),
    step by step (`sparse_to_dense`) so that its interpolation never asks for
    more neighbours than there are matches: OpenCV 5.0.0's function asks for
    k=128 whatever survives PyrLK, and with fewer matches it reads past its
    buffers (flows that change from process to process, up to 150 px on a
    64 px crop, NaN, segfaults in a process that also holds TensorFlow).
    `grid_step=4`, not OpenCV's 8: 256 grid points on a 64x64 crop, so that
    most pairs keep more than 128 matches.
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

SPARSE_TO_DENSE_GRID_STEP = 4  # see the module docstring: 8 leaves 64 points on 64 px crops
SPARSE_TO_DENSE_NEIGHBOURS = 128  # OpenCV's k: matches the interpolation weighs per pixel
# Tries per job, each on the images padded by this many replicated edge pixels
# (the flow cropped back). A guard: OpenCV's SparseToDense returned NaN now and then
# when it read past its buffers (module docstring; then again on each call with the
# same images in that process, while padded images of another size went through).
# With `sparse_to_dense` no non-finite flow has turned up (three worker runs of the
# demo's 352 test pairs, the demo and London evaluations), but one from any method
# is still computed again before the evaluation stops.
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
    target, source = np.ascontiguousarray(target), np.ascontiguousarray(source)
    if method is FlowMethod.SPARSE_TO_DENSE:
        return sparse_to_dense(target, source)
    grey = [cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in (target, source)]
    if method is FlowMethod.DEEPFLOW:
        flow = cv2.optflow.createOptFlow_DeepFlow().calc(*grey, None)
    else:
        flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(*grey, None)
    return np.asarray(flow, np.float32)


def sparse_to_dense(target: np.ndarray, source: np.ndarray) -> np.ndarray:
    """`cv2.optflow.calcOpticalFlowSparseToDense` on RGB images, with at most as many
    neighbours as matches.

    The same steps as OpenCV's function (opencv_contrib optflow/sparsetodenseflow.cpp):
    grid points every `SPARSE_TO_DENSE_GRID_STEP` px tracked by PyrLK (21x21
    window) on grey images, those PyrLK keeps interpolated by the edge-aware
    interpolator with OpenCV's defaults (sigma 0.05, post-processing, FGS
    lambda 500, sigma 1.5). One change: k = min(`SPARSE_TO_DENSE_NEIGHBOURS`,
    matches), where OpenCV reads past its buffers (module docstring). Where
    PyrLK keeps at least k points the flow equals OpenCV's on the BGR images.

    Args:
      target, source: uint8 RGB [H, W, 3] of equal size.

    Returns:
      float32 [H, W, 2] (dx, dy): target(p) ~ source(p + flow(p)).
    """
    points, matched = grid_matches(target, source)
    interpolator = cv2.ximgproc.createEdgeAwareInterpolator()
    interpolator.setK(min(SPARSE_TO_DENSE_NEIGHBOURS, len(points)))
    interpolator.setSigma(0.05)
    interpolator.setUsePostProcessing(True)
    interpolator.setFGSLambda(500.0)
    interpolator.setFGSSigma(1.5)
    flow = interpolator.interpolate(target, points.reshape(-1, 1, 2), source,
                                    matched.reshape(-1, 1, 2))
    return np.asarray(flow, np.float32)


def grid_matches(target: np.ndarray, source: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SparseToDense's matches: the grid points PyrLK tracks from `target` to `source`.

    Args:
      target, source: uint8 RGB [H, W, 3] of equal size.

    Returns:
      (points, matched) float32 [N, 2] pixel (x, y): the grid points every
      `SPARSE_TO_DENSE_GRID_STEP` px that PyrLK (21x21 window, grey images)
      keeps, and where it finds each in `source`.
    """
    step = SPARSE_TO_DENSE_GRID_STEP
    points = pixel_grid(*target.shape[:2])[::step, ::step].reshape(-1, 2).astype(np.float32)
    grey = [cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in (target, source)]
    matched, status, _ = cv2.calcOpticalFlowPyrLK(*grey, points, None, winSize=(21, 21))
    kept = status.ravel() != 0
    return points[kept], matched[kept]


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
