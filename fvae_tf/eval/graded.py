"""Editing (Algorithm 1) and interpolation (Algorithm 2, 6.2) against the synthetic truth.

Both use held-out people's graded series (`data.GradedSeries`): the neutral
face and one expression rendered at intensities p = 25, 50, 75, 100 %, with
the true neutral-to-frame correspondence.

Editing: from the neutral face alone (no target latent), factor = p:
  * FVAE: `S(x, D(z_x + p d, x))`, d = mean z(expression) - mean z(neutral)
    over the training images (`editing.edit`);
  * average flow: p times the mean neutral->expression displacement (of
    SparseToDense flows; and of the true flows, an oracle);
  * each VAE: its decoder's image for `z_x + p d` (its own statistics);
  * no motion.
Scores against the true rendering at p: PSNR, SSIM, sharpness, and for the
fields the end-point error over moving pixels (true displacement > 1 px).

Interpolation: the neutral face and the 100 % frame are the two inputs; the
25/50/75 % renderings are the truth at alpha = p: cross-fade, landmark mesh
morphing, optical-flow interpolation (SparseToDense from the neutral face to
the full expression), each VAE's latent walk (decoded with the neutral face
as its source), FVAE (the two warps cross-faded) and FVAE with confidence
(`interpolation.interpolate`). PSNR, SSIM, sharpness per step.
"""

import numpy as np
import tensorflow as tf

from fvae_tf import viz
from fvae_tf.edit import editing, interpolation
from fvae_tf.eval import baselines, optical_flow, table1
from fvae_tf.eval.data import GradedSeries
from fvae_tf.eval.models import Models
from fvae_tf.eval.scores import Scores, face_region, flow_scores, image_scores

CROSS_FADE = "cross-fade"
MESH_MORPH = "landmark mesh morphing"
FLOW_INTERPOLATION = "optical-flow interpolation"


def _step_key(value: float) -> str:
    return f"{round(100 * value)}%"


def _by_step(steps: dict[str, Scores]) -> dict[str, dict]:
    """Summaries in increasing order of the step."""
    return {k: steps[k].summary() for k in sorted(steps, key=lambda k: float(k[:-1]))}


def run_editing(models: Models, series: list[GradedSeries],
                averages: dict[str, baselines.AverageFlow],
                progress: table1.Progress | None = None) -> tuple[dict, dict]:
    """Algorithm 1 from each series' neutral face, scored at every intensity.

    `progress(done, total)` is called after each series.

    Returns:
      ({"overall": method -> means, "by_intensity": "p%" -> method -> means},
      examples method -> [K, S, S, 3] of the first series).
    """
    overall, steps, examples = Scores(), {}, {}
    fvae = models.fvae
    for number, item in enumerate(series):
        factors = item.intensities.astype(np.float32)
        count = len(factors)
        neutral = np.repeat(item.neutral[None], count, axis=0)
        fields = {}
        if models.fvae_stats is not None:
            direction = models.fvae_stats.direction("neutral", item.expression)
            fields[table1.FVAE] = editing.edit(fvae, item.neutral[None], direction,
                                               factors).coords.numpy()[:, 0]
        key = f"neutral->{item.expression}"
        for name, average in averages.items():
            if key in average.counts:
                fields[name] = np.stack(
                    [average.coords("neutral", item.expression, f) for f in factors])
        fields[table1.NO_MOTION] = np.broadcast_to(
            baselines.identity_coords(*item.neutral.shape[:2]), (count, *item.coords.shape[1:]))
        outputs = {name: baselines.warp(neutral, field) for name, field in fields.items()}
        for name, vae in models.vaes.items():
            if name in models.vae_stats:
                direction = models.vae_stats[name].direction("neutral", item.expression)
                latents = editing.edit_latents(vae.encode(item.neutral[None]), direction,
                                               factors)[:, 0]
                outputs[name] = vae.generate(tf.constant(neutral), latents).numpy()
        for k, intensity in enumerate(item.intensities):
            face = face_region(item.landmarks[k], item.coords.shape[1])
            for name, output in outputs.items():
                values = image_scores(output[k], item.frames[k])
                if name in fields:
                    epe = flow_scores(fields[name][k], item.coords[k], item.visibility[k], face)
                    values.update({m: epe[m] for m in ("epe_moving", "epe_moving_face")})
                overall.add(name, values)
                steps.setdefault(_step_key(intensity), Scores()).add(name, values)
        if number == 0:
            examples = {"truth": item.frames, **outputs}
        if progress is not None:
            progress(number + 1, len(series))
    return ({"overall": overall.summary(),
             "by_intensity": _by_step(steps)}, examples)


def run_interpolation(models: Models, series: list[GradedSeries], num_workers: int,
                      progress: table1.Progress | None = None) -> tuple[dict, dict]:
    """Algorithm 2 and the baselines between each series' neutral and full expression.

    `progress(done, total)` is called after each series.

    Returns:
      ({"by_step": "p%" -> method -> means, "overall": method -> means},
      examples method -> [K, S, S, 3] of the first usable series).
    """
    usable = [s for s in series if np.any(np.isclose(s.intensities, 1.0))
              and np.any(s.intensities < 1.0)]
    full = [int(np.flatnonzero(np.isclose(s.intensities, 1.0))[0]) for s in usable]
    flows = optical_flow.flows_in_processes(
        [(optical_flow.FlowMethod.SPARSE_TO_DENSE.value, viz.to_uint8(s.neutral),
          viz.to_uint8(s.frames[f])) for s, f in zip(usable, full)], num_workers)
    overall, steps, examples = Scores(), {}, {}
    for number, (item, last, coords_12) in enumerate(zip(usable, full, flows)):
        inner = np.flatnonzero(item.intensities < 1.0)
        alphas = item.intensities[inner].astype(np.float32)
        first, second = item.neutral, item.frames[last]
        outputs = {
            CROSS_FADE: [baselines.cross_fade(first, second, a) for a in alphas],
            MESH_MORPH: [baselines.mesh_morph(first, second, item.neutral_landmarks,
                                              item.landmarks[last], a) for a in alphas],
            FLOW_INTERPOLATION: [baselines.flow_interpolation(first, second, coords_12, a)
                                 for a in alphas],
        }
        for name, vae in models.vaes.items():
            z = vae.encode(tf.constant(np.stack([first, second])))
            latents = interpolation.interpolate_latents(z[0], z[1], alphas)
            sources = tf.constant(np.repeat(first[None], len(alphas), axis=0))
            outputs[name] = list(vae.generate(sources, latents).numpy())
        pair = tf.constant(np.stack([first, second]))
        outputs[table1.FVAE] = list(
            interpolation.interpolate(models.fvae, pair, alphas).blend.images.numpy())
        if models.mask is not None:
            frames = np.stack([item.neutral_photo_frame, item.photo_frames[last]])
            outputs[table1.FVAE_CONFIDENCE] = list(interpolation.interpolate(
                models.fvae, pair, alphas, models.mask,
                source_frames=frames).blend.images.numpy())
        for k, alpha in enumerate(alphas):
            for name, frames in outputs.items():
                values = image_scores(frames[k], item.frames[inner[k]])
                overall.add(name, values)
                steps.setdefault(_step_key(alpha), Scores()).add(name, values)
        if number == 0:
            examples = {"truth": item.frames[inner],
                        **{name: np.stack(frames) for name, frames in outputs.items()}}
        if progress is not None:
            progress(number + 1, len(usable))
    return ({"overall": overall.summary(),
             "by_step": _by_step(steps)}, examples)
