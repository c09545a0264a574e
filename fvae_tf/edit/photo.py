"""Photos in, pictures out: Algorithm 1 and Algorithm 2 on the faces of photos.

The photo path runs one way: read the photo and find its face (data
preparation's dlib detector, `FaceDetection`), align it once onto the
template at the model's resolution and at `hr_size` (`load_aligned`), run
the algorithm on the crops, then paste each edited crop back into the photo
at its own resolution (`edit_aligned`) or flow-upsample the frames to the
high-resolution crop (`interpolate_photos`), and write PNGs and GIFs
atomically. Images are uint8 RGB unless said; the crops' coordinates are
normalized, align_corners=False.
"""

import dataclasses
import os
import pathlib
from collections.abc import Iterator, Sequence

import cv2
import numpy as np
import tensorflow as tf

from fvae_tf import errors, viz
from fvae_tf.data import alignment
from fvae_tf.data.image_io import IMAGE_SUFFIXES
from fvae_tf.edit import editing, interpolation, paste_back, upsampling
from fvae_tf.model.fvae import FVAE, ConfidenceModel
from fvae_tf.warp import flow_upsampling

FRAME_HEIGHT = 256  # rows of a face in an edit's strip and GIF
FPS = 6  # frames per second of the GIFs
# What to do about a photo the detector refused, naming the `FaceDetection` setting to change.
_INPUT_HINTS = {
    alignment.NoFaceError: ("use a photo with a frontal face of about 80 px or more, or set "
                            "{upsample} 1", ["upsample"]),
    alignment.MultipleFacesError: ("crop the photo to one face, or set {multiple_faces}=largest",
                                   ["multiple_faces"]),
    alignment.ImageReadError: ("check that the file is a readable photo", []),
}


class PhotoError(errors.ActionableError):
    """A photo, or a set of photos, that cannot be edited; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class FaceDetection:
    """How faces are found in a photo."""

    upsample: int = 0  # times the detector doubles the photo first: finds faces half as small
    multiple_faces: alignment.MultipleFaces = alignment.MultipleFaces.ERROR  # several faces


def photo_paths(inputs: Sequence[str | os.PathLike]) -> list[pathlib.Path]:
    """Files as given, folders expanded to their photos (sorted, not recursive).

    Raises:
      PhotoError: no photo at all, or two photos with the same name (stem), whose
        outputs would overwrite each other.
    """
    paths = []
    for name in inputs:
        path = pathlib.Path(name)
        if path.is_dir():
            paths += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            paths.append(path)
    if not paths:
        raise PhotoError(f"{', '.join(map(str, inputs))}: no photos found; pass image files or "
                         f"folders holding {', '.join(IMAGE_SUFFIXES)} files")
    stems = [p.stem for p in paths]
    clashes = sorted({s for s in stems if stems.count(s) > 1})
    if clashes:
        raise PhotoError(f"several inputs are named {', '.join(clashes)}; their outputs would "
                         "overwrite each other: edit them in separate calls")
    return paths


def load_aligned(path: str | os.PathLike, detection: FaceDetection, size: int,
                 hr_size: int) -> tuple[np.ndarray, alignment.AlignedFace]:
    """Reads a photo, finds its face and aligns it once.

    Args:
      path: the photo.
      detection: how to find the face.
      size: side of the crop the model reads.
      hr_size: side of the high-resolution crop.

    Returns:
      (uint8 [H, W, 3] photo, upright; its face aligned at `size` and `hr_size`).

    Raises:
      PhotoError: an unreadable file, no face, or several faces (unless
        `detection.multiple_faces` is LARGEST).
    """
    try:
        photo = alignment.load_image(path)
        face = alignment.select_face(alignment.detect_faces(photo, detection.upsample),
                                     detection.multiple_faces, path)
    except alignment.InputError as e:
        hint, settings = next((hint for kind, hint in _INPUT_HINTS.items()
                               if isinstance(e, kind)), ("check the photo", []))
        raise PhotoError(f"{e}; {hint}", settings) from None
    return photo, alignment.align_face(photo, face.landmarks, size, hr_size)


@dataclasses.dataclass(frozen=True)
class PhotoEdit:
    """Algorithm 1 on one photo's face, pasted back at the photo's resolution.

    Attributes:
      factors: float32 [K].
      photo: uint8 [H, W, 3], the photo edited with the last factor.
      frames: uint8 [K, h, w, 3], `region` of the photo edited with each factor.
      region: the photo pixels any edit can change.
      face: the alignment of the face that was edited.
      coords: float32 [K, S, S, 2], the decoded fields at the model's resolution.
      crops_hr: float32 [K, S', S', 3] in [-1, 1], the aligned high-resolution
        crop warped by each flow-upsampled field.
      upsampling: the last factor's flow- vs pixel-domain comparison.
    """

    factors: np.ndarray
    photo: np.ndarray
    frames: np.ndarray
    region: paste_back.Region
    face: alignment.AlignedFace
    coords: np.ndarray
    crops_hr: np.ndarray
    upsampling: upsampling.UpsamplingComparison


def edit_aligned(fvae: FVAE, photo: np.ndarray, face: alignment.AlignedFace,
                 direction: np.ndarray, factors: Sequence[float],
                 rule: editing.EditRule = editing.EditRule()) -> PhotoEdit:
    """Edits an aligned face with Algorithm 1 and pastes each step back into its photo.

    Args:
      fvae: a trained FVAE.
      photo: uint8 [H, W, 3] RGB.
      face: the photo's face aligned at the model's resolution; its
        high-resolution crop makes the flow-upsampling pictures and the blend mask.
      direction: [latent].
      factors: K scalars; the last one makes `photo`.
      rule: `editing.EditRule` (default: the paper's).

    Returns:
      The edited photo, the frames of every step and the pictures' material.
    """
    source = editing.to_float(face.crop)[None]
    source_hr = editing.to_float(face.crop_hr)[None]
    result = editing.edit(fvae, source, direction, factors, rule)
    coords = result.coords[:, 0]
    mask = paste_back.face_mask(face.landmarks_aligned, face.crop_hr.shape[0])
    region = paste_back.face_region(face.transform, mask, photo.shape)
    frames = []
    for field in coords.numpy():
        edited = paste_back.paste_flow(photo, face.transform, field, mask)
        frames.append(edited[region.slices])
    crops_hr = flow_upsampling.warp(tf.tile(source_hr, [coords.shape[0], 1, 1, 1]), coords)
    return PhotoEdit(
        factors=result.factors,
        photo=edited,
        frames=np.stack(frames),
        region=region,
        face=face,
        coords=coords.numpy(),
        crops_hr=crops_hr.numpy(),
        upsampling=upsampling.compare(source, source_hr, coords[-1:]),
    )


def frame(image: np.ndarray, height: int = FRAME_HEIGHT) -> np.ndarray:
    """Resizes to `height` rows, keeping the aspect ratio."""
    rows, cols = image.shape[:2]
    interpolation_flag = cv2.INTER_AREA if rows > height else cv2.INTER_LINEAR
    return cv2.resize(image, (max(1, round(cols * height / rows)), height),
                      interpolation=interpolation_flag)


def write_edit(result: PhotoEdit, stem: str | os.PathLike, label: str) -> None:
    """Writes an edit's pictures: `stem` + ".png", "_steps.png", ".gif", "_flow.png",
    "_upsampling.png".

    Args:
      result: `edit_aligned`'s edit.
      stem: path of the outputs without their ending.
      label: the target expression, written under the pictures.
    """
    frames = [frame(f) for f in result.frames]
    viz.save_png(f"{stem}.png", result.photo)
    viz.save_png(f"{stem}_steps.png", viz.image_grid(
        [frames], labels=[f"{label} x{f:.2f}" for f in result.factors]))
    viz.save_gif(f"{stem}.gif", frames, fps=FPS, bounce=True)
    source_hr = result.face.crop_hr
    edited_hr = viz.to_uint8(result.crops_hr[-1])
    viz.save_png(f"{stem}_flow.png", viz.image_grid(
        [[source_hr, edited_hr, viz.flow_to_color(result.coords[-1]),
          viz.color_wheel(source_hr.shape[0])]],
        labels=["source", f"{label} x{result.factors[-1]:.2f}", "flow", "flow colours"]))
    up = result.upsampling
    viz.save_png(f"{stem}_upsampling.png", viz.image_grid(
        [[source_hr, viz.to_uint8(up.pixel[0]), viz.to_uint8(up.flow[0])]],
        labels=["source", f"pixel upsampling {up.pixel_sharpness:.2f}",
                f"flow upsampling {up.flow_sharpness:.2f}"]))


@dataclasses.dataclass(frozen=True)
class EditedPhoto:
    """What became of one photo of `edit_photos`: its outputs' stem and edit, or its error."""

    path: pathlib.Path
    stem: pathlib.Path | None = None
    edit: PhotoEdit | None = None
    error: PhotoError | None = None


def edit_photos(fvae: FVAE, direction: np.ndarray, target: str, paths: Sequence[pathlib.Path],
                factors: Sequence[float], output_dir: str | os.PathLike, hr_size: int = 256,
                detection: FaceDetection = FaceDetection(),
                rule: editing.EditRule = editing.EditRule()) -> Iterator[EditedPhoto]:
    """Edits each photo along `direction`; writes `write_edit`'s pictures.

    A photo that fails (unreadable, no face, several faces) is reported and
    skipped. Outputs are `output_dir/<photo stem>_<target>...`.

    Args:
      fvae: a trained FVAE.
      direction: [latent], e.g. `LatentStats.direction(source, target)`.
      target: the target expression's name, in the outputs' names and labels.
      paths: the photos (`photo_paths`).
      factors: Algorithm 1's factors (`editing.edit_factors`).
      output_dir: where the pictures go.
      hr_size: side of the aligned high-resolution crop (flow pictures, blend mask).
      detection: how faces are found.
      rule: `editing.EditRule` (default: the paper's).

    Yields:
      One `EditedPhoto` per path, in order, once its pictures are written.
    """
    for path in paths:
        try:
            photo, face = load_aligned(path, detection, fvae.config.image_size, hr_size)
        except PhotoError as e:
            yield EditedPhoto(path, error=e)
            continue
        result = edit_aligned(fvae, photo, face, direction, factors, rule)
        stem = pathlib.Path(output_dir) / f"{path.stem}_{target}"
        write_edit(result, stem, target)
        yield EditedPhoto(path, stem, result)


def interpolate_photos(fvae: FVAE, mask_model: ConfidenceModel | None,
                       paths: Sequence[str | os.PathLike], steps: int,
                       output_dir: str | os.PathLike,
                       weighting: interpolation.SourceWeighting = (
                           interpolation.SourceWeighting.LATENT_SHARE),
                       hr_size: int = 256, detection: FaceDetection = FaceDetection()
                       ) -> list[pathlib.Path]:
    """Algorithm 2 between the faces of two photos; writes GIFs and a grid of the frames.

    Frames are at the high-resolution crop's size (flow upsampling). Outputs in `output_dir`:
      interpolation_no_confidence.gif  the frames as a cross-fade of the two warps
      interpolation.gif                with `mask_model`: the frames blended by confidence
      interpolation.png                one row per step: face 1 warped, face 2 warped,
                                       cross-fade and, with `mask_model`, the confidence
                                       blend and face 1's weight over it (jet: 0 blue, 1 red)

    Args:
      fvae: a trained FVAE.
      mask_model: its confidence model, or None for the cross-fade alone.
      paths: the two photos.
      steps: frames, both faces' own latents included (at least 2).
      output_dir: where the pictures go.
      weighting: the sources' prior weights in the confidence blend.
      hr_size: side of the frames.
      detection: how faces are found.

    Returns:
      The files written, GIFs first.

    Raises:
      PhotoError: not two photos, or a photo without exactly one face.
    """
    if len(paths) != 2:
        raise PhotoError(f"got {len(paths)} photo(s) ({', '.join(map(str, paths))}); "
                         "interpolation takes exactly two")
    faces = [load_aligned(path, detection, fvae.config.image_size, hr_size)[1]
             for path in paths]
    sources = editing.to_float(np.stack([f.crop for f in faces]))
    sources_hr = editing.to_float(np.stack([f.crop_hr for f in faces]))
    alphas = interpolation.interpolation_alphas(steps)
    plain = interpolation.interpolate(fvae, sources, alphas, sources_hr=sources_hr).blend
    rows = [list(viz.to_uint8(plain.warped[:, 0].numpy())),
            list(viz.to_uint8(plain.warped[:, 1].numpy())),
            list(viz.to_uint8(plain.images.numpy()))]
    output_dir = pathlib.Path(output_dir)
    gifs = {output_dir / "interpolation_no_confidence.gif": rows[2]}
    if mask_model is not None:
        frames = np.stack([f.frame for f in faces])[..., None]
        blended = interpolation.interpolate(fvae, sources, alphas, mask_model, weighting,
                                            sources_hr, frames).blend
        rows.append(list(viz.to_uint8(blended.images.numpy())))
        rows.append(list(viz.overlay_mask(rows[-1], blended.weights[:, 0].numpy())))
        gifs[output_dir / "interpolation.gif"] = rows[3]
    for path, frames in gifs.items():
        viz.save_gif(path, frames, fps=FPS, bounce=True)
    grid = viz.image_grid([list(column) for column in zip(*rows)],
                          labels=["face 1", "face 2", "cross-fade", "confidence", "weight 1"]
                          [:len(rows)])
    viz.save_png(output_dir / "interpolation.png", grid)
    return [*gifs, output_dir / "interpolation.png"]
