"""Editing real faces against the person's own photo of the expression (London set).

Each test person's neutral face is edited toward "smile" with Algorithm 1
(factor 1, no target latent) and compared with that person's real smile:
  * PSNR of the aligned 64 px crops;
  * dlib's 68 landmarks, found on the high-resolution crops (the edit is
    flow-upsampled to them; a VAE's 64 px image is resized bicubically), say
    whether the face now smiles like that person: mouth width and the mouth
    corners' lift above the lip centre, each per inter-ocular distance, and
    their errors against the real smile; the share of the neutral-to-real
    distance of the 20 mouth landmarks that the edit closes, after a
    similarity fit on eyes and nose (1: the real smile's mouth, 0: no
    change, < 0: further away), as the mean of each person's share and
    pooled (1 - mean distance after / mean distance before: people whose
    real smile hardly moves the mouth, 1 px or so, make single shares
    swing by +-1 and dominate the mean); lip thickness per inter-ocular
    distance (a warp that only swells the lips is not a smile); how far the
    lower lip drops below the neutral face's, per inter-ocular distance (a
    smile that bares the teeth drops it; a warp of a closed mouth may not);
  * identity: the Euclidean distance between dlib face embeddings
    (`dlib_face_recognition_resnet_model_v1` of face-recognition-models) of
    the edit and the source (dlib calls < 0.6 the same person), its mean and
    90th percentile over the people.
Methods: FVAE (Algorithm 1, the paper's reading); FVAE with a fitted
direction (not in the paper: the direction refined on the training pairs'
landmarks, `fvae_tf.edit.direction_fit`; the one `experiments.fit_direction`
saved with the run when it matches the run's weights, so the row measures
what users edit with, else fitted here; applied as the change it makes to
the source's own field and averaged with the mirrored source's; README:
values the paper lost); the FVAE given the person's own smile latent (Table
1's protocol: not an edit, but what the decoder draws when it knows this
smile, a reference for how far a direction could go); the average-flow
edit, each VAE's edit, no motion, the real smile itself (its own measures,
for reference) and "mean landmark motion":
the source's landmarks moved by the training people's mean neutral-to-smile
landmark displacement (landmarks only, no image).

Landmarks here are pixels of the high-resolution crop, (x, y), dlib order.
"""

import functools
import importlib.util
import math
import pathlib

import dlib
import numpy as np
import tensorflow as tf

from fvae_tf import metrics, viz
from fvae_tf.data import alignment
from fvae_tf.edit import direction_fit, editing, fitted_directions, upsampling
from fvae_tf.eval import baselines, bootstrap, table1
from fvae_tf.eval.data import Pairs
from fvae_tf.eval.models import Models
from fvae_tf.eval.scores import Scores
from fvae_tf.warp import flow_upsampling

MOUTH = list(range(48, 68))
LOWER_LIP = [56, 57, 58]
FVAE_FITTED = "FVAE, fitted direction"
FVAE_TRUE_LATENT = "FVAE, true smile latent (not an edit)"
REAL_SMILE = "real smile"
MEAN_LANDMARK_MOTION = "mean landmark motion (training people)"


@functools.cache
def _recognizer() -> "dlib.face_recognition_model_v1":
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("face-recognition-models is not installed")
    models = pathlib.Path(spec.submodule_search_locations[0]) / "models"
    return dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))


def read_face(image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The largest face's landmarks [68, 2] and embedding [128]; None when dlib finds no face.

    Args:
      image: uint8 [H, W, 3] RGB.
    """
    faces = alignment.detect_faces(image)
    if not faces:
        return None
    face = faces[0]
    shape = dlib.full_object_detection(dlib.rectangle(*face.box),
                                       [dlib.point(round(x), round(y)) for x, y in face.landmarks])
    return face.landmarks, np.asarray(_recognizer().compute_face_descriptor(image, shape))


def interocular(landmarks: np.ndarray) -> float:
    """Distance between the two eye centres (mean of points 36-41 and 42-47)."""
    return float(np.linalg.norm(landmarks[36:42].mean(0) - landmarks[42:48].mean(0)))


def mouth_measures(landmarks: np.ndarray) -> dict[str, float]:
    """Mouth width (48-54), corner lift and lip thickness, each per inter-ocular distance.

    Corner lift: how far the corners (48, 54) sit above the centre of the lips
    (51, 57, 62, 66); image y points down, so a smile's lift is positive.
    Lip thickness: upper (51-62) plus lower (66-57) lip height.
    """
    eyes = interocular(landmarks)
    centre_y = landmarks[[51, 57, 62, 66], 1].mean()
    return {
        "mouth_width": float(np.linalg.norm(landmarks[54] - landmarks[48])) / eyes,
        "corner_lift": float(centre_y - landmarks[[48, 54], 1].mean()) / eyes,
        "lip_thickness": float(np.linalg.norm(landmarks[62] - landmarks[51])
                               + np.linalg.norm(landmarks[57] - landmarks[66])) / eyes,
    }


def mouth_distances(neutral: np.ndarray, edited: np.ndarray, real: np.ndarray
                    ) -> tuple[float, float]:
    """Mean distance of the 20 mouth landmarks to the real smile's, before and after the edit.

    Each face is first mapped onto the real smile's landmarks by a similarity
    fitted on the eyes and nose, so head motion does not count.

    Returns:
      (neutral's distance, the edit's distance), pixels of `real`'s image.
    """
    def distance(face):
        return np.linalg.norm(alignment.onto_eyes_and_nose(face, real)[MOUTH] - real[MOUTH],
                              axis=1).mean()

    return float(distance(neutral)), float(distance(edited))


def lower_lip_drop(neutral: np.ndarray, landmarks: np.ndarray) -> float:
    """How far the lower lip's outer edge (56-58) sits below the neutral face's, per IOD.

    After the same similarity fit on eyes and nose; image y points down, so a
    lip that drops (a mouth that opens) is positive. A warp cannot show the
    teeth a smile bares, so this says whether an edit opens the mouth at all.
    """
    moved = alignment.onto_eyes_and_nose(landmarks, neutral)
    return float((moved[LOWER_LIP, 1] - neutral[LOWER_LIP, 1]).mean()) / interocular(neutral)


def _mean_landmark_motion(train: Pairs | None) -> np.ndarray | None:
    """Mean neutral-to-smile displacement of the stored landmarks, normalized crop units."""
    if train is None:
        return None
    train = _smiles(train)
    if not len(train):
        return None
    return (train.target_landmarks - train.source_landmarks).mean(axis=0)


def _smiles(pairs: Pairs) -> Pairs:
    return pairs.subset((pairs.source_expression == "neutral")
                        & (pairs.target_expression == "smile"))


def fitted_direction(models: Models, train: Pairs | None
                     ) -> tuple[np.ndarray | None, str | None]:
    """The neutral -> smile direction of the row "FVAE, fitted direction", and where it is from.

    The one saved with the run for its current weights when there is one (what
    `experiments.edit --direction=fitted` and the browser editor use), else one
    fitted here on the training neutral -> smile pairs; (None, None) without either.
    """
    saved = models.fvae_fitted.get(("neutral", "smile"))
    if saved is not None:
        return saved, f"the one saved with the run ({fitted_directions.FILENAME})"
    if models.fvae_stats is None or train is None:
        return None, None
    train = _smiles(train)
    if not len(train):
        return None, None
    direction = direction_fit.fit_on_pairs(
        models.fvae, train.source, train.source_landmarks, train.target_landmarks,
        models.fvae_stats.direction("neutral", "smile"), "neutral", "smile")
    return direction, (f"fitted here on {len(train)} training pairs (the run has none saved "
                       f"for its current weights)")


def _edits(models: Models, pairs: Pairs, average: baselines.AverageFlow | None,
           fitted: np.ndarray | None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every method's edit of the sources: (64 px outputs, high-resolution outputs)."""
    low, high = {}, {}
    size = tuple(pairs.source_hr.shape[1:3])
    source, source_hr = pairs.source, pairs.source_hr
    fvae_edits = {}
    if models.fvae_stats is not None:
        fvae_edits[table1.FVAE] = (models.fvae_stats.direction("neutral", "smile"),
                                   editing.EditRule())
    if fitted is not None:
        fvae_edits[FVAE_FITTED] = (fitted, direction_fit.FITTED_RULE)
    for name, (direction, rule) in fvae_edits.items():
        edit = editing.edit(models.fvae, source, direction, [1.0], rule)
        low[name] = edit.warped.numpy()[0]
        high[name] = flow_upsampling.warp(source_hr, edit.coords[0]).numpy()
    coords = models.fvae.decode_flow(models.fvae.encode(tf.constant(pairs.target)),
                                     tf.constant(source))
    low[FVAE_TRUE_LATENT] = baselines.warp(source, coords)
    high[FVAE_TRUE_LATENT] = flow_upsampling.warp(source_hr, coords).numpy()
    if average is not None and "neutral->smile" in average.counts:
        coords = np.repeat(average.coords("neutral", "smile")[None], len(source), axis=0)
        low[table1.AVERAGE_FLOW] = baselines.warp(source, coords)
        high[table1.AVERAGE_FLOW] = flow_upsampling.warp(source_hr, coords).numpy()
    for name, vae in models.vaes.items():
        if name in models.vae_stats:
            direction = models.vae_stats[name].direction("neutral", "smile")
            z = editing.edit_latents(vae.encode(source), direction, [1.0])[0]
            low[name] = vae.generate(tf.constant(source), z).numpy()
            high[name] = upsampling.resize_pixels(low[name], size,
                                                  tf.image.ResizeMethod.BICUBIC).numpy()
    low[table1.NO_MOTION], high[table1.NO_MOTION] = source, source_hr
    low[REAL_SMILE], high[REAL_SMILE] = pairs.target, pairs.target_hr
    return low, high


def run_real_editing(models: Models, pairs: Pairs, train: Pairs | None,
                     average: baselines.AverageFlow | None,
                     progress: table1.Progress | None = None) -> tuple[dict, dict]:
    """The real-face editing block on the split's neutral -> smile pairs.

    Args:
      pairs: the split's pairs, read with_hr.
      train: training pairs (their stored landmarks give the mean landmark motion).
      progress: called as progress(done, total) after each person.

    Returns:
      ({"rows": method -> means, "faces_found": method -> share, "people": n,
      "fitted_direction": where the fitted row's direction is from},
      examples method -> the first high-resolution outputs).
    """
    pairs = _smiles(pairs)
    if not len(pairs):
        return {"rows": {}, "faces_found": {}, "people": 0}, {}
    fitted, fitted_from = fitted_direction(models, train)
    low, high = _edits(models, pairs, average, fitted)
    motion = _mean_landmark_motion(train)
    scale = pairs.source_hr.shape[1] / 2.0  # normalized crop units -> high-resolution pixels
    table, found = Scores(), {name: 0 for name in high}
    # Per person: (mouth distance before, after); NaN where dlib missed a face.
    distances = {name: np.full((len(pairs), 2), np.nan)
                 for name in [*high, MEAN_LANDMARK_MOTION] if name != REAL_SMILE}
    for i in range(len(pairs)):
        source_face = read_face(viz.to_uint8(pairs.source_hr[i]))
        real_face = read_face(viz.to_uint8(pairs.target_hr[i]))
        for name in high:
            values = {} if name == REAL_SMILE else {"psnr": metrics.psnr(low[name][i],
                                                                         pairs.target[i])}
            face = read_face(viz.to_uint8(high[name][i]))
            found[name] += face is not None
            if face is not None and source_face is not None and real_face is not None:
                values.update(_landmark_scores(face[0], source_face[0], real_face[0]))
                if name in distances:
                    distances[name][i] = values["mouth_before"], values["mouth_after"]
                values["identity_distance"] = float(np.linalg.norm(face[1] - source_face[1]))
            table.add(name, values)
        if motion is not None and source_face is not None and real_face is not None:
            moved = source_face[0] + motion * scale
            values = _landmark_scores(moved, source_face[0], real_face[0])
            distances[MEAN_LANDMARK_MOTION][i] = values["mouth_before"], values["mouth_after"]
            table.add(MEAN_LANDMARK_MOTION, values)
        if progress is not None:
            progress(i + 1, len(pairs))
    examples = {name: images[:4] for name, images in high.items()}
    rows = table.summary()
    for name in high:
        rows[name]["identity_distance_p90"] = table.percentile(name, "identity_distance", 90)
    for row in rows.values():
        if "mouth_before" in row:
            row["closed_share_pooled"] = 1.0 - row["mouth_after"] / row["mouth_before"]
    for name, intervals in pooled_intervals(distances).items():
        rows[name].update(intervals)
    return ({"rows": rows, "people": len(pairs), "fitted_direction": fitted_from,
             "faces_found": {name: count / len(pairs) for name, count in found.items()}},
            examples)


def pooled_intervals(distances: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Bootstrap intervals of each method's pooled share, and of its gain over the mean motion.

    Args:
      distances: method -> [people, 2] mouth distances (before, after) to the
        real smile, NaN for a person whose face dlib missed; the same people
        in the same order for every method, `MEAN_LANDMARK_MOTION` among them.

    Returns:
      method -> "closed_share_pooled_low"/"_high" (95 %, over the people the
      method has) and, for every other method, "gain_over_mean_motion" (its
      pooled share minus the mean landmark motion's, on the people both
      have) with "gain_over_mean_motion_low"/"_high" (paired).
    """
    reference = distances.get(MEAN_LANDMARK_MOTION)
    out = {}
    for name, values in distances.items():
        have = np.isfinite(values).all(axis=1)
        if not have.any():
            continue
        low, high = bootstrap.percentile_interval(bootstrap.pooled_share, values[have].T)
        out[name] = {"closed_share_pooled_low": low, "closed_share_pooled_high": high}
        if reference is None or name == MEAN_LANDMARK_MOTION:
            continue
        both = have & np.isfinite(reference).all(axis=1)
        if both.any():
            columns = (values[both, 0], values[both, 1], reference[both, 1])
            low, high = bootstrap.percentile_interval(bootstrap.pooled_share_gain, columns)
            out[name].update(gain_over_mean_motion=float(bootstrap.pooled_share_gain(*columns)),
                             gain_over_mean_motion_low=low, gain_over_mean_motion_high=high)
    return out


def _landmark_scores(landmarks: np.ndarray, neutral: np.ndarray, real: np.ndarray
                     ) -> dict[str, float]:
    values = mouth_measures(landmarks)
    target = mouth_measures(real)
    values["width_error"] = abs(values["mouth_width"] - target["mouth_width"])
    values["lift_error"] = abs(values["corner_lift"] - target["corner_lift"])
    values["lower_lip_drop"] = lower_lip_drop(neutral, landmarks)
    values["mouth_before"], values["mouth_after"] = mouth_distances(neutral, landmarks, real)
    values["closed_share"] = (1.0 - values["mouth_after"] / values["mouth_before"]
                              if values["mouth_before"] > 0 else math.nan)
    return values
