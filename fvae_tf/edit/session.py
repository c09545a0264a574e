"""An interactive editing session: one photo aligned and encoded once, many edits.

A slider editor moves the latent many times a second, so the work is split:
`Editor.open_photo` reads the photo, detects and aligns its face and encodes
it once (`z_s = mu(E(x_s))`); `PhotoSession.edit` then only decodes the
moved latent, upsamples the flow and pastes it back into the photo
(`paste_back.paste_flow`), at the photo's own resolution.

Several expressions move the latent together (Algorithm 1 with one term per
slider): `z = z_s + sum_e f_e * (mean z(e) - mean z(source))`, the means
from the run's latent statistics. One non-zero factor is exactly
`photo.edit_aligned`'s edit; all factors 0 give the photo's own
reconstruction. With `fitted=True` (not in the paper) each slider moves
along the direction `experiments.fit_direction` saved with the run where
there is one (Algorithm 1's otherwise), and the field follows
`direction_fit.FITTED_RULE`: the change the move makes to the face's own
field, averaged with the mirrored face's; all factors 0 give the photo
itself. The mirrored face is encoded once too, at the first such edit.
`interpolate` is Algorithm 2 between two sessions' faces, blended by
confidence when the run has a trained mask. The batch path for
photos (`fvae_tf.edit.photo`) computes the same edits, with pictures.

Photos are uint8 RGB [H, W, 3]; aligned faces are uint8 [S', S', 3] at the
editor's `hr_size`. Every problem a person can fix (unreadable file, no face,
several faces, a photo too large to decode) is a `PhotoError` (the photo
path's) whose message names the file and says what to do.
"""

import dataclasses
import functools
import os
import pathlib
from collections.abc import Callable, Mapping, Sequence

import cv2
import numpy as np
import tensorflow as tf

from fvae_tf import viz
from fvae_tf.data import alignment
from fvae_tf.edit import editing, fitted_directions, interpolation, paste_back
from fvae_tf.edit.photo import PhotoError
from fvae_tf.model.fvae import ConfidenceModel, FVAE
from fvae_tf.train import checkpoints
from fvae_tf.train.latent_stats import LatentStats
from fvae_tf.warp import flow_upsampling, sampler

# Photos with a longer side are downscaled to it before anything else: the
# paste-back of a 4096 px photo stays interactive, and the result is still
# far sharper than any crop.
MAX_SIDE = 4096


class SeveralFacesError(PhotoError):
    """The photo shows several faces; open it again with `face_index`.

    Attributes:
      faces: every face found, largest first (the order `face_index` counts in).
      photo: uint8 [H, W, 3], the photo they were found in (downscaled if it was
        too large), which their boxes refer to.
    """

    def __init__(self, name: str, faces: Sequence[alignment.Face], photo: np.ndarray):
        listing = "; ".join(f"face {i + 1}: {describe_face(face)}" for i, face in enumerate(faces))
        super().__init__(f"{name}: {len(faces)} faces found, choose the one to edit ({listing})")
        self.faces = list(faces)
        self.photo = photo


def describe_face(face: alignment.Face) -> str:
    """Where a face is, for a person choosing among several: "WxH px at x=.., y=.."."""
    left, top, right, bottom = face.box
    return f"{right - left + 1}x{bottom - top + 1} px at x={left}, y={top}"


@dataclasses.dataclass(frozen=True)
class EditResult:
    """One slider position applied to a photo.

    Attributes:
      photo: uint8 [H, W, 3], the whole photo edited, its own resolution.
      face_before: uint8 [S', S', 3], the aligned face as photographed.
      face_after: uint8 [S', S', 3], the aligned face edited (flow-upsampled).
      coords: float32 [S, S, 2], the decoded field D(z, x_s), normalized.
    """

    photo: np.ndarray
    face_before: np.ndarray
    face_after: np.ndarray
    coords: np.ndarray


@dataclasses.dataclass(frozen=True)
class InterpolationResult:
    """Algorithm 2 at one alpha, at the editor's `hr_size`.

    Attributes:
      image: uint8 [S', S', 3], the two warps blended.
      warped: uint8 [2, S', S', 3], each face warped toward the mixed latent.
      weight_first: float32 [S', S'], the first face's blend weight.
      confidence: whether the run's confidence mask weighed the blend.
    """

    image: np.ndarray
    warped: np.ndarray
    weight_first: np.ndarray
    confidence: bool


@dataclasses.dataclass(frozen=True)
class Editor:
    """A trained run, ready to open photos.

    Attributes:
      fvae: the run's best FVAE.
      stats: its latent means per expression (Algorithm 1).
      mask_model: its confidence model M, or None when the run has no mask.
      fitted: (source, target) -> [latent], the run's saved fitted directions
        for its current weights (`fitted_directions.current`).
      hr_size: side of the aligned faces shown, and of the paste-back mask.
      upsample: times the face detector doubles a photo first.
      max_side: photos with a longer side are downscaled to it.
    """

    fvae: FVAE
    stats: LatentStats
    mask_model: ConfidenceModel | None
    fitted: Mapping[tuple[str, str], np.ndarray] = dataclasses.field(default_factory=dict)
    hr_size: int = 256
    upsample: int = 0
    max_side: int = MAX_SIDE

    @classmethod
    def load(cls, run_dir: str | os.PathLike, **options) -> "Editor":
        """The run's best FVAE, latent statistics, fitted directions and confidence mask.

        Fitted directions of other weights than the run's best are left out; the
        mask is None when none was trained.

        Args:
          run_dir: an FVAE run directory (experiments.train --workdir).
          **options: `hr_size`, `upsample`, `max_side`.

        Raises:
          checkpoints.CheckpointError, editing.EditingError: see
            `editing.load_editing_model`.
        """
        model = editing.load_editing_model(run_dir)
        has_mask = (pathlib.Path(run_dir) / checkpoints.MASK_SUBDIR).is_dir()
        mask_model = checkpoints.load_confidence_model(run_dir) if has_mask else None
        return cls(model.fvae, model.stats, mask_model,
                   fitted_directions.current(run_dir, model.stats), **options)

    @functools.cached_property
    def decode_flow(self) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
        """`fvae.decode_flow` as one TensorFlow graph (traced once per input shape).

        On a CPU, eager Keras calls cost more than the small decoder's arithmetic:
        the graph is about 15x faster, with the same result.
        """
        return tf.function(self.fvae.decode_flow, reduce_retracing=True)

    @functools.cached_property
    def warp_face(self) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
        """`flow_upsampling.warp` as one TensorFlow graph."""
        return tf.function(flow_upsampling.warp, reduce_retracing=True)

    @property
    def expressions(self) -> tuple[str, ...]:
        """The labels the latent statistics have training images for."""
        return tuple(e for e, n in zip(self.stats.expressions, self.stats.counts) if n)

    def open_photo(self, path: str | os.PathLike, face_index: int | None = None,
                   name: str | None = None) -> "PhotoSession":
        """Reads a photo, finds its face, aligns and encodes it.

        Args:
          path: the photo file.
          face_index: which face of several to edit (0 = largest); None
            refuses a photo with several faces.
          name: how messages call the photo (default: the file name).

        Raises:
          PhotoError: unreadable or undecodable file, no face, `face_index`
            out of range.
          SeveralFacesError: several faces and no `face_index`.
        """
        name = name or pathlib.Path(path).name
        try:
            photo = alignment.load_image(path)
        except alignment.ImageReadError as e:
            raise PhotoError(f"{name}: {e.reason}; upload a JPEG or PNG photo") from None
        notice = None
        height, width = photo.shape[:2]
        if max(height, width) > self.max_side:
            scale = self.max_side / max(height, width)
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            photo = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
            notice = (f"{name} is {width}x{height} px; it is edited at {size[0]}x{size[1]} px "
                      f"(longest side {self.max_side} px)")
        faces = alignment.detect_faces(photo, self.upsample)
        if not faces:
            raise PhotoError(f"{name}: no face found; use a photo with a frontal face of about "
                             "80 px or more")
        if face_index is None and len(faces) > 1:
            raise SeveralFacesError(name, faces, photo)
        index = face_index or 0
        if not 0 <= index < len(faces):
            raise PhotoError(f"{name}: there is no face {index + 1}; the photo has "
                             f"{len(faces)} face(s)")
        return PhotoSession(self, photo, faces[index], name, notice)


class PhotoSession:
    """One photo's face, aligned and encoded once; `edit` per slider move.

    Attributes:
      editor: the run it edits with.
      photo: uint8 [H, W, 3], the photo (downscaled if it was too large).
      face: its alignment (crops at the model's size and at `hr_size`).
      name: the photo's name in messages.
      notice: what was done to the photo on the way in (downscaling), or None.
    """

    def __init__(self, editor: Editor, photo: np.ndarray, face: alignment.Face, name: str,
                 notice: str | None = None):
        self.editor = editor
        self.photo = photo
        self.name = name
        self.notice = notice
        self.face = alignment.align_face(photo, face.landmarks, editor.fvae.config.image_size,
                                         editor.hr_size)
        self.source = editing.to_float(self.face.crop)[None]  # [1, S, S, 3]
        self.source_hr = editing.to_float(self.face.crop_hr)[None]  # [1, S', S', 3]
        self.latent = editor.fvae.encode(self.source)  # [1, latent], z_s = mu(E(x_s))
        self.mask = paste_back.face_mask(self.face.landmarks_aligned, editor.hr_size)

    def latent_for(self, factors: Mapping[str, float], source: str,
                   fitted: bool = False) -> tf.Tensor:
        """`z_s + sum_e f_e * d_e`, [1, latent].

        `d_e` is `mean z(e) - mean z(source)`, or with `fitted` the run's fitted
        `source`->`e` direction where it has one.

        Raises:
          PhotoError: an expression the run's statistics do not know.
        """
        stats, saved = self.editor.stats, self.editor.fitted if fitted else {}
        try:
            step = sum((float(f) * (saved[source, e] if (source, e) in saved
                                    else stats.direction(source, e))
                        for e, f in factors.items() if f), np.zeros_like(stats.means[0]))
        except ValueError as e:
            raise PhotoError(str(e)) from None
        return self.latent + tf.constant(step, tf.float32)[None]

    @functools.cached_property
    def _both_orientations(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """The face and its mirror image: sources [2, S, S, 3], latents [2, latent]
        and each one's own field minus the identity [2, S, S, 2]."""
        sources = tf.concat([self.source, self.source[:, :, ::-1]], 0)
        latents = tf.concat([self.latent, self.editor.fvae.encode(sources[1:])], 0)
        identity = sampler.identity_grid(*sources.shape[1:3])
        return sources, latents, self.editor.decode_flow(latents, sources) - identity

    def field(self, factors: Mapping[str, float], source: str = "neutral",
              fitted: bool = False) -> tf.Tensor:
        """The sampling field of one slider position, [1, S, S, 2] normalized.

        `D(z, x_s)`; with `fitted`, `direction_fit.FITTED_RULE`'s residual,
        mirrored field, as `editing.edit_fields` makes it.
        """
        latent = self.latent_for(factors, source, fitted)
        if not fitted:
            return self.editor.decode_flow(latent, self.source)
        sources, latents, offsets = self._both_orientations
        moved = latents + (latent - self.latent)
        coords = self.editor.decode_flow(moved, sources) - offsets
        return 0.5 * (coords[:1] + editing.mirror_field(coords[1:]))

    def edit(self, factors: Mapping[str, float], source: str = "neutral",
             fitted: bool = False) -> EditResult:
        """Decodes the moved latent and pastes its flow back into the whole photo.

        Args:
          factors: expression -> factor; 0 (or absent) leaves that expression alone.
          source: the expression the photo shows.
          fitted: move along the run's fitted directions under their rule.

        Returns:
          The edited photo and the aligned face before and after.
        """
        coords = self.field(factors, source, fitted)
        photo = paste_back.paste_flow(self.photo, self.face.transform, coords[0].numpy(),
                                      self.mask)
        after = self.editor.warp_face(self.source_hr, coords)[0].numpy()
        return EditResult(photo, self.face.crop_hr, viz.to_uint8(after), coords[0].numpy())


def interpolate(first: PhotoSession, second: PhotoSession, alpha: float) -> InterpolationResult:
    """Algorithm 2 between two sessions' faces (same editor) at one alpha.

    `z = (1 - alpha) z_1 + alpha z_2`; each face is warped toward z (flow
    upsampled to `hr_size`) and the warps are blended by the confidence mask
    with `interpolation.SourceWeighting.LATENT_SHARE`, or cross-faded when
    the run has no mask. Alpha 0 and 1 give each face's own reconstruction.
    """
    editor = first.editor
    if second.editor is not editor:
        raise ValueError("both photos must be opened by the same editor")
    result = interpolation.interpolate(
        editor.fvae, tf.concat([first.source, second.source], 0), np.array([alpha], np.float32),
        editor.mask_model, sources_hr=tf.concat([first.source_hr, second.source_hr], 0),
        source_frames=np.stack([first.face.frame, second.face.frame])[..., None])
    blend = result.blend
    return InterpolationResult(
        image=viz.to_uint8(blend.images[0].numpy()),
        warped=viz.to_uint8(blend.warped[0].numpy()),
        weight_first=blend.weights[0, 0, :, :, 0].numpy(),
        confidence=editor.mask_model is not None)
