"""Paper Table 1's protocol, the confidence mask against truth, and flow upsampling (6.1, 6.4).

Table 1 reconstructs each test target from its source *with the true target
latent* `z = mu(E(x_t))` (the target is known): PSNR, SSIM, L1 and sharpness
against the target for
  * FVAE: `S(x_s, D(z, x_s))`;
  * FVAE with confidence: every other image of the target's person (each
    stored pair's source, colour-transferred to that target) warped toward
    `z` and blended by normalized `M` (`editing.blend`), scored once per pair
    like the other rows;
  * each VAE: its decoder's image for its own `z` of the target;
  * optical flow from the true target to the source (`optical_flow`), the
    source warped by it: SparseToDense (EpicFlow-style), DeepFlow, DIS;
  * the average flow of the pair's (source, target) expressions over the
    training identities (`baselines.AverageFlow`) of SparseToDense flows and,
    on synthetic faces, of the true flows (an oracle: it knows the training
    people's exact motion);
  * no motion (the source itself).
On synthetic faces every field is also scored against the true one
(end-point error over visible and over moving pixels).

Confidence: how well `1 - M(x_s, z)` and `1 - y` (eq. 7's label) find the
target pixels the source does not show (ROC AUC against 1 - visibility,
pooled over pixels).

Flow upsampling: the FVAE's 64 px field upsampled to sample the
high-resolution source, against the 64 px output upsampled in pixel space
(bilinear, bicubic); sharpness and PSNR against the true high-resolution
target.
"""

import collections
import math
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from fvae_tf import metrics, viz
from fvae_tf.edit import editing, upsampling
from fvae_tf.eval import baselines, optical_flow
from fvae_tf.eval.data import Pairs
from fvae_tf.eval.models import Models
from fvae_tf.eval.scores import Scores, face_region, flow_scores, image_scores
from fvae_tf.warp import flow_upsampling

FVAE = "FVAE"
FVAE_CONFIDENCE = "FVAE with confidence"
AVERAGE_FLOW = "average flow"
TRUE_AVERAGE_FLOW = "average true flow (oracle)"
NO_MOTION = "no motion"
OPTICAL_FLOW_NAMES = {
    optical_flow.FlowMethod.SPARSE_TO_DENSE: "optical flow: SparseToDense (EpicFlow-style)",
    optical_flow.FlowMethod.DEEPFLOW: "optical flow: DeepFlow",
    optical_flow.FlowMethod.DIS: "optical flow: DIS",
}
# Paper Table 1, PSNR in dB on Multi-PIE; the paper's VAE decodes z alone.
PAPER_PSNR = {FVAE: 18.14, FVAE_CONFIDENCE: 18.35, "VAE (z only, paper)": 25.41,
              OPTICAL_FLOW_NAMES[optical_flow.FlowMethod.SPARSE_TO_DENSE]: 15.76}

Progress = Callable[[int, int], None]


def _batches(count: int, batch_size: int):
    for start in range(0, count, batch_size):
        yield slice(start, min(start + batch_size, count))


def optical_flows(pairs: Pairs, num_workers: int) -> dict[str, np.ndarray]:
    """Every optical flow of every pair, target to source: name -> float32 [N, S, S, 2]."""
    sources, targets = viz.to_uint8(pairs.source), viz.to_uint8(pairs.target)
    jobs = [(method.value, targets[i], sources[i])
            for method in OPTICAL_FLOW_NAMES for i in range(len(pairs))]
    coords = optical_flow.flows_in_processes(jobs, num_workers)
    n = len(pairs)
    return {name: np.stack(coords[k * n:(k + 1) * n])
            for k, name in enumerate(OPTICAL_FLOW_NAMES.values())}


def training_average_flows(train: Pairs, num_workers: int) -> dict[str, baselines.AverageFlow]:
    """The average-flow baselines per expression pair over the training pairs.

    Returns:
      AVERAGE_FLOW: of SparseToDense flows (what real data allows); and, when
      the pairs have ground truth, TRUE_AVERAGE_FLOW: of the true flows.
    """
    sources, targets = viz.to_uint8(train.source), viz.to_uint8(train.target)
    method = optical_flow.FlowMethod.SPARSE_TO_DENSE.value
    fields = {AVERAGE_FLOW: optical_flow.flows_in_processes(
        [(method, targets[i], sources[i]) for i in range(len(train))], num_workers)}
    if train.gt_coords is not None:
        fields[TRUE_AVERAGE_FLOW] = list(train.gt_coords)
    return {name: baselines.average_flow(coords, list(train.source_expression),
                                         list(train.target_expression))
            for name, coords in fields.items()}


def _auc(scores: list[np.ndarray], positives: list[np.ndarray]) -> float:
    positives = np.concatenate([p.ravel() for p in positives])
    if positives.all() or not positives.any():
        return math.nan
    return metrics.roc_auc(np.concatenate([s.ravel() for s in scores]), positives)


def run_table1(models: Models, pairs: Pairs, split_pairs: Pairs,
               averages: dict[str, baselines.AverageFlow], flows: dict[str, np.ndarray],
               batch_size: int, num_examples: int,
               progress: Progress | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """Table 1 and the confidence block on `pairs`.

    Args:
      models: the runs to compare.
      pairs: the evaluated pairs.
      split_pairs: every pair of the split (the other sources of a target).
      averages: row name -> average-flow baseline (`training_average_flows`).
      flows: `optical_flows(pairs)`.
      batch_size: pairs per forward pass.
      num_examples: outputs of the first pairs kept for the image grid.
      progress: called as progress(done, total) over pairs.

    Returns:
      (results, examples): results {"table1": method -> means, "confidence":
      ... or absent, "notes": [...]}; examples method -> [num_examples, S, S, 3].
    """
    fvae = models.fvae
    truth = pairs.gt_coords is not None
    table, examples = Scores(), collections.defaultdict(list)
    auc_parts = {"mask": [], "label": [], "hidden": [], "face": []}
    identity = baselines.identity_coords(*pairs.source.shape[1:3])
    for rows in _batches(len(pairs), batch_size):
        source, target = pairs.source[rows], pairs.target[rows]
        faces = ([face_region(points, source.shape[1]) for points in pairs.target_landmarks[rows]]
                 if truth else None)  # only the synthetic truth's measures use them
        fields = {FVAE: fvae.decode_flow(fvae.encode(target), source).numpy()}
        fields.update({name: flow[rows] for name, flow in flows.items()})
        for name, average in averages.items():
            fields[name] = np.stack([
                average.coords(s, t) if f"{s}->{t}" in average.counts else identity + math.nan
                for s, t in zip(pairs.source_expression[rows], pairs.target_expression[rows])])
        fields[NO_MOTION] = np.broadcast_to(identity, (len(source), *identity.shape))
        outputs = {name: baselines.warp(source, np.nan_to_num(field, nan=0.0))
                   for name, field in fields.items()}
        for name, vae in models.vaes.items():
            outputs[name] = vae.generate(source, vae.encode(target)).numpy()
        for i in range(len(source)):
            for name, output in outputs.items():
                if name in fields and not np.all(np.isfinite(fields[name][i])):
                    continue  # no training pair of these expressions: no average flow
                values = image_scores(output[i], target[i])
                if truth and name in fields:
                    values.update(flow_scores(fields[name][i], pairs.gt_coords[rows][i],
                                              pairs.gt_visibility[rows][i], faces[i]))
                table.add(name, values)
        if models.mask is not None:
            batch = {"source": tf.constant(source), "target": tf.constant(target)}
            if pairs.source_frame is not None:
                batch.update(source_frame=tf.constant(pairs.source_frame[rows]),
                             target_frame=tf.constant(pairs.target_frame[rows]))
            _, confidence, label, _ = models.mask.compute_loss_and_outputs(batch, training=False)
            if truth:
                auc_parts["mask"].append(1.0 - confidence.numpy()[..., 0])
                auc_parts["label"].append(1.0 - label.numpy()[..., 0])
                auc_parts["hidden"].append(pairs.gt_visibility[rows] < 0.5)
                auc_parts["face"].append(np.stack(faces))
        for name, output in outputs.items():
            examples[name].extend(output[:max(0, num_examples - len(examples[name]))])
        if progress is not None:
            progress(rows.stop, len(pairs))

    notes = []
    if models.mask is not None:
        sources_per_target = _confidence_rows(models, pairs, split_pairs, table, examples,
                                              num_examples)
        if max(sources_per_target) == 1:
            notes.append(f"Every target has one other image of its person here, so "
                         f"'{FVAE_CONFIDENCE}' blends a single warp: its row coincides with "
                         f"'{FVAE}'.")
        else:
            notes.append(f"'{FVAE_CONFIDENCE}': each pair scores the blend of every source "
                         f"of its target, {min(sources_per_target)}-{max(sources_per_target)} "
                         f"sources (mean {np.mean(sources_per_target):.1f}).")
    else:
        notes.append(f"No trained confidence mask (FVAE_DIR/mask): no '{FVAE_CONFIDENCE}' row.")
    results = {"table1": table.summary(), "notes": notes}
    if auc_parts["mask"]:
        results["confidence"] = {
            "auc_mask": _auc(auc_parts["mask"], auc_parts["hidden"]),
            "auc_label": _auc(auc_parts["label"], auc_parts["hidden"]),
            "hidden_share": float(np.mean(np.concatenate(
                [h.ravel() for h in auc_parts["hidden"]]))),
        }
        inside = [face.ravel() for face in auc_parts["face"]]
        for name in ("mask", "label"):
            results["confidence"][f"auc_{name}_face"] = _auc(
                [s.ravel()[f] for s, f in zip(auc_parts[name], inside)],
                [h.ravel()[f] for h, f in zip(auc_parts["hidden"], inside)])
    return results, {name: np.stack(images) for name, images in examples.items()}


def _confidence_rows(models: Models, pairs: Pairs, split_pairs: Pairs, table: Scores,
                     examples: dict, num_examples: int) -> list[int]:
    """Adds the "FVAE with confidence" scores; returns the sources blended per target.

    Each pair scores the blend of every source of its target (computed once per
    target), so the row averages over the same pairs, with the same weights,
    as the single-source rows.
    """
    by_target = collections.defaultdict(list)
    for i, target_id in enumerate(split_pairs.target_id):
        by_target[target_id].append(i)
    blends = {}
    for row, target_id in enumerate(pairs.target_id):
        if target_id not in blends:
            others = by_target[target_id]
            z = models.fvae.encode(pairs.target[row][None])
            frames = (None if split_pairs.source_frame is None
                      else split_pairs.source_frame[others])
            blended = editing.blend(models.fvae, models.mask, split_pairs.source[others], z,
                                    source_frames=frames)
            blends[target_id] = (blended.images.numpy()[0],
                                 image_scores(blended.images.numpy()[0], pairs.target[row]))
        table.add(FVAE_CONFIDENCE, blends[target_id][1])
    examples[FVAE_CONFIDENCE] = [blends[t][0] for t in pairs.target_id[:num_examples]]
    return [len(by_target[t]) for t in blends]


def run_upsampling(models: Models, pairs: Pairs, batch_size: int) -> tuple[dict, dict]:
    """Flow- against pixel-domain upsampling of the FVAE's warp (true target latent).

    Args:
      pairs: read with_hr.

    Returns:
      ({method: {"sharpness", "psnr", "n"}}, examples method -> first outputs):
      sharpness and PSNR against the high-resolution target crop.
    """
    fvae, scores, examples = models.fvae, Scores(), {}
    size = tuple(pairs.target_hr.shape[1:3])
    for rows in _batches(len(pairs), batch_size):
        source = tf.constant(pairs.source[rows])
        coords = fvae.decode_flow(fvae.encode(tf.constant(pairs.target[rows])), source)
        low = flow_upsampling.warp(source, coords)  # the 64 px output
        outputs = {
            "flow upsampling": flow_upsampling.warp(pairs.source_hr[rows], coords).numpy(),
            "pixel upsampling (bilinear)": upsampling.resize_pixels(low, size).numpy(),
            "pixel upsampling (bicubic)": upsampling.resize_pixels(
                low, size, tf.image.ResizeMethod.BICUBIC).numpy(),
        }
        for name, output in outputs.items():
            examples.setdefault(name, output[:2])
            for image, truth in zip(output, pairs.target_hr[rows]):
                scores.add(name, {"sharpness": metrics.sharpness_ratio(image, truth),
                                  "psnr": metrics.psnr(image, truth)})
    return scores.summary(), examples
