"""Teacher flows: optical flow of each pair's high-resolution crops, as labels for training.

Not in the paper, and not its kind of objective: an opt-in extra for real
faces, which have no ground-truth flow. On the London set the FVAE trained by
its photometric objective alone closes 19 % of the distance between a neutral
mouth and the person's real smile, while DIS optical flow computed between the
two 256 px crops closes 64 % (README, "Results with the London model"). A
teacher label brings that motion to the training pairs: `add_teacher_flow`
copies a dataset and gives every pair `teacher_coords` / `teacher_visibility`
(`fvae_tf.data.records`), which `FVAEConfig.flow_supervision` turns into an
end-point-error term, exactly as it does the synthetic ground truth. Nothing
reports a teacher as truth: the evaluation's end-point errors read only the
synthetic `gt_coords`.

`pair_labels` computes, for one pair,
  * the target-to-source flow F (`optical_flow.sampling_coords`, OpenCV in
    worker processes) at the high resolution S', and the backward flow B;
  * the forward-backward check of Meister et al. (UnFlow, 2018) at S', in
    pixels: p is consistent where
    |F(p) + B(p + F(p))|^2 < 0.01 (|F(p)|^2 + |B(p + F(p))|^2) + 0.5,
    i.e. going to the source and back lands near p (occluded or mismatched
    pixels fail it);
  * the labels at the training size S: the sampling coordinates box-averaged
    over each (S'/S)^2 block (normalized coordinates name the same point at
    every resolution, so the mean of a block's coordinates is where the
    block's centre reads), and visibility 1 where at least half the block is
    consistent.
"""

import dataclasses
import pathlib
import shutil
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from fvae_tf.data import builder, input_pipeline, records
from fvae_tf.eval import optical_flow
from fvae_tf.warp import sampler

FB_RELATIVE = 0.01  # UnFlow's alpha_1: tolerance relative to the squared flow lengths
FB_ABSOLUTE = 0.5  # UnFlow's alpha_2, squared pixels
_PAIRS_AT_A_TIME = 64  # per batch of flow workers: bounds memory and paces the progress line


def consistent(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """The forward-backward check (module docstring) of two sampling fields.

    Args:
      forward: [H, W, 2] normalized target-to-source coordinates.
      backward: [H, W, 2] normalized source-to-target coordinates.

    Returns:
      bool [H, W]: True where the round trip lands within the tolerance.
    """
    flow = optical_flow.coords_to_flow(forward)
    back = sampler.bilinear_sample(optical_flow.coords_to_flow(backward)[None],
                                   tf.constant(forward[None])).numpy()[0]
    error = np.sum((flow + back) ** 2, axis=-1)
    lengths = np.sum(flow ** 2, axis=-1) + np.sum(back ** 2, axis=-1)
    return error < FB_RELATIVE * lengths + FB_ABSOLUTE


def downsample_labels(coords: np.ndarray, valid: np.ndarray, size: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """High-resolution labels -> `size`: block means of coordinates, majority visibility.

    Args:
      coords: [S', S', 2] normalized sampling coordinates; S' a multiple of size.
      valid: bool [S', S'].

    Returns:
      float32 [size, size, 2] coordinates and uint8 [size, size] visibility.
    """
    factor = coords.shape[0] // size
    blocks = coords.reshape(size, factor, size, factor, 2).mean(axis=(1, 3))
    share = valid.reshape(size, factor, size, factor).mean(axis=(1, 3))
    return blocks.astype(np.float32), (share >= 0.5).astype(np.uint8)


def pair_labels(targets_hr: list[np.ndarray], sources_hr: list[np.ndarray], size: int,
                method: str, num_workers: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Teacher labels of pairs (module docstring).

    Args:
      targets_hr, sources_hr: uint8 RGB [S', S', 3] crops, one of each per pair.
      size: the training crops' side S; S' must be a multiple of it.
      method: an `optical_flow.FlowMethod` value.
      num_workers: OpenCV worker processes.

    Returns:
      Per pair, float32 [size, size, 2] coordinates and uint8 [size, size] visibility.
    """
    jobs = [(method, t, s) for t, s in zip(targets_hr, sources_hr)]
    jobs += [(method, s, t) for t, s in zip(targets_hr, sources_hr)]
    fields = optical_flow.flows_in_processes(jobs, num_workers)
    count = len(targets_hr)
    return [downsample_labels(fields[i], consistent(fields[i], fields[count + i]), size)
            for i in range(count)]


def _hr_crops(dataset_dir: pathlib.Path, split: str, manifest: records.Manifest
              ) -> list[np.ndarray]:
    """The split's high-resolution crops, uint8 RGB, in image-table order."""
    table = input_pipeline.load_images(dataset_dir, split, manifest, with_hr=True)
    return [input_pipeline.decode_image(png, manifest.hr_size).numpy() for png in table.crops_hr]


def _pairs(dataset_dir: pathlib.Path, split: str, manifest: records.Manifest) -> list[dict]:
    """The split's pair records in storage order, as numpy dicts of their features."""
    spec = records.pair_feature_spec(manifest)
    return [{key: value.numpy() for key, value in tf.io.parse_single_example(raw, spec).items()}
            for raw in tf.data.TFRecordDataset(records.shard_paths(dataset_dir, split, manifest))]


def _with_labels(pair: dict, labels: tuple[np.ndarray, np.ndarray], size: int
                 ) -> records.PairRecord:
    """A stored pair, its ground truth kept, with teacher labels."""
    truth = {}
    if "gt_coords" in pair:
        truth = {"gt_coords": pair["gt_coords"].reshape(size, size, 2),
                 "gt_visibility": np.frombuffer(pair["gt_visibility"], np.uint8
                                                ).reshape(size, size)}
    return records.PairRecord(int(pair["source"]), int(pair["target"]), **truth,
                              teacher_coords=labels[0], teacher_visibility=labels[1])


def add_teacher_flow(dataset_dir: str | pathlib.Path, output_dir: str | pathlib.Path,
                     method: str = "dis", overwrite: bool = False, num_workers: int = 2,
                     progress: Callable[[str, int, int], None] | None = None
                     ) -> records.Manifest:
    """Copies a dataset, every pair given teacher labels (module docstring).

    The image shards are copied as they are; the pair shards are written
    again with the labels; the manifest, written last, names the teacher
    (`teacher_flow`) and where it came from (`flags`). An interrupted run
    leaves no manifest, so no reader accepts the folder.

    Args:
      dataset_dir: a finished dataset (`data_prep.build_dataset`).
      output_dir: an empty or missing folder, or one holding a dataset to
        replace with `overwrite`.
      method: an `optical_flow.FlowMethod` value.
      overwrite: replace a dataset in `output_dir`.
      num_workers: OpenCV worker processes.
      progress: called with (split, pairs done, pairs in the split).

    Returns:
      The new manifest.

    Raises:
      records.RecordsError: `dataset_dir` is not a finished dataset or is
        `output_dir`, its high-resolution side is not a multiple of its
        training side, or `output_dir` is not empty (without overwrite).
      optical_flow.OpticalFlowError: a flow worker failed.
    """
    dataset_dir, output_dir = pathlib.Path(dataset_dir), pathlib.Path(output_dir)
    method = optical_flow.FlowMethod(method).value
    manifest = records.read_manifest(dataset_dir)
    if output_dir.resolve() == dataset_dir.resolve():
        raise records.RecordsError(output_dir, "is the dataset read; choose another "
                                   "{output_dir}", ("output_dir",))
    if manifest.hr_size % manifest.size:
        raise records.RecordsError(dataset_dir, f"its high-resolution crops ({manifest.hr_size} "
                                   f"px) are not a multiple of its crops ({manifest.size} px)")
    builder.check_output_dir(output_dir, overwrite)
    output_dir.mkdir(parents=True, exist_ok=True)
    builder.clear_dataset(output_dir)
    splits = {}
    for name, split in manifest.splits.items():
        for shard in split.image_shards:
            shutil.copyfile(dataset_dir / shard.file, output_dir / f"{shard.file}.tmp")
            (output_dir / f"{shard.file}.tmp").rename(output_dir / shard.file)
        crops, pairs = _hr_crops(dataset_dir, name, manifest), _pairs(dataset_dir, name, manifest)
        labelled = []
        if progress:
            progress(name, 0, len(pairs))
        for start in range(0, len(pairs), _PAIRS_AT_A_TIME):
            chunk = pairs[start:start + _PAIRS_AT_A_TIME]
            labels = pair_labels([crops[p["target"]] for p in chunk],
                                 [crops[p["source"]] for p in chunk], manifest.size, method,
                                 num_workers)
            labelled += [records.serialize_pair(_with_labels(p, label, manifest.size))
                         for p, label in zip(chunk, labels)]
            if progress:
                progress(name, len(labelled), len(pairs))
        shards = records.write_shards(output_dir, f"{name}-pairs", labelled,
                                      manifest.flags.get("shard_size", 256))
        splits[name] = dataclasses.replace(split, shards=shards)
    flags = {**manifest.flags, "teacher_flow_from": str(dataset_dir)}
    new = dataclasses.replace(manifest, splits=splits, teacher_flow=method, flags=flags)
    records.write_manifest(output_dir, new)
    return new
