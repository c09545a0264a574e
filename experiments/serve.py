r"""An expression editor in the browser: sliders on your own photo, at full resolution.

    python -m experiments.serve --checkpoint_dir runs/london [--port 7860] [--host 127.0.0.1]

Prints the local URL. The page (Gradio, working with no internet: analytics,
version checks, server-side rendering and share links are off, fonts are
bundled) has two tabs:
  Edit         upload a photo or pick an example; one slider per expression
               the run's latent statistics know (-1 to 2; all 0 is the
               photo's own reconstruction) and the expression the photo
               shows; the whole photo edited at its own resolution (PNG
               download on the image) and the aligned face before/after.
               When the run has fitted directions (experiments.fit_direction),
               a choice between Algorithm 1 (the paper, the default) and the
               fitted directions under their residual, mirrored rule (not in
               the paper; expressions without one keep Algorithm 1's direction).
  Interpolate  two photos and an alpha slider (Algorithm 2, blended by the
               confidence mask when the run has one).
A photo that cannot be used (unreadable, no face, several faces: pick one)
gets its message in the page. The server listens on localhost unless --host
says otherwise; uploads live in a temporary folder removed at exit. The logic
is in `fvae_tf.edit.session`.
"""

import atexit
import logging
import os
import pathlib
import shutil
import signal
import sys
import tempfile

# Uploads and results live here; it is removed at exit (SIGTERM included, see main).
_UPLOADS = pathlib.Path(tempfile.mkdtemp(prefix="fvae_serve_"))
atexit.register(shutil.rmtree, _UPLOADS, ignore_errors=True)
# The edited photos, one file per photo rewritten at each move; Gradio copies each
# version into its own cache under a new name (a file already in its cache would
# keep one URL, and the browser would show the first version).
_EDITS = _UPLOADS / "edits"
# Before Gradio is imported: it reads these when it loads.
os.environ.update(GRADIO_ANALYTICS_ENABLED="False", GRADIO_SSR_MODE="False",
                  GRADIO_TEMP_DIR=str(_UPLOADS / "gradio"), HF_HUB_OFFLINE="1",
                  HF_HUB_DISABLE_TELEMETRY="1")

import cv2  # noqa: E402
import gradio as gr  # noqa: E402
import matplotlib.cbook  # noqa: E402
import numpy as np  # noqa: E402
import skimage.data  # noqa: E402
from absl import app, flags  # noqa: E402
from PIL import Image  # noqa: E402

from fvae_tf import atomic_io, errors  # noqa: E402
from fvae_tf.edit import session  # noqa: E402

# London people the README shows (held out by runs/london's split): file names.
_LONDON_EXAMPLES = ("neutral/014_03.jpg", "neutral/022_03.jpg", "neutral/131_03.jpg",
                    "smiling/014_08.jpg")
_SLIDER_RANGE = (-1.0, 2.0, 0.05)  # minimum, maximum, step
# The direction choice, shown when the run has fitted directions: label -> `fitted`.
_DIRECTIONS = {"Algorithm 1 (the paper)": False,
               "fitted to the landmarks (not in the paper)": True}

CHECKPOINT_DIR = flags.DEFINE_string("checkpoint_dir", None, "An FVAE run directory "
                                     "(experiments.train --workdir).", required=True)
PORT = flags.DEFINE_integer("port", 7860, "Port to listen on.", lower_bound=1, upper_bound=65535)
HOST = flags.DEFINE_string("host", "127.0.0.1", "Address to listen on; 0.0.0.0 opens the "
                           "editor to the network.")
LONDON_DIR = flags.DEFINE_string(
    "london_dir", os.environ.get("FVAE_LONDON_DIR", str(pathlib.Path(__file__).resolve()
                                                        .parents[2] / "shared/data/london_set")),
    "The London set, for example photos (skipped when absent).")
HR_SIZE = flags.DEFINE_integer("hr_size", 256, "Side of the aligned faces shown.", lower_bound=64)
UPSAMPLE = flags.DEFINE_integer("upsample", 0, "Times the face detector doubles each photo "
                                "first (finds faces half as small, 4x slower).", lower_bound=0)
MAX_SIDE = flags.DEFINE_integer("max_side", session.MAX_SIDE, "Photos with a longer side are "
                                "downscaled to it.", lower_bound=64)


def _example_photos(folder: pathlib.Path, london_dir: pathlib.Path) -> dict[str, str]:
    """Name -> file of the example photos: London people if present, package photos."""
    examples = {f"London {name}": str(london_dir / name) for name in _LONDON_EXAMPLES
                if (london_dir / name).is_file()}
    astronaut = folder / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(astronaut)
    examples["astronaut (scikit-image)"] = str(astronaut)
    examples["Grace Hopper (matplotlib)"] = matplotlib.cbook.get_sample_data(
        "grace_hopper.jpg", asfileobj=False)
    return examples


def _fitted_pairs(editor: session.Editor) -> str:
    """The run's fitted directions as "neutral->smile, ..."; empty when it has none."""
    return ", ".join(f"{source}->{target}" for source, target in editor.fitted)


def _faces_picture(error: session.SeveralFacesError) -> np.ndarray:
    """The photo with each face's box and number, for choosing among several."""
    photo, faces = error.photo.copy(), error.faces
    thickness = max(2, round(max(photo.shape[:2]) / 300))
    for i, face in enumerate(faces):
        left, top, right, bottom = face.box
        cv2.rectangle(photo, (left, top), (right, bottom), (255, 40, 40), thickness)
        cv2.putText(photo, str(i + 1), (left, max(top - 2 * thickness, 20)),
                    cv2.FONT_HERSHEY_SIMPLEX, thickness / 2, (255, 40, 40), thickness)
    return photo


def _image(label: str, **options) -> gr.Image:
    """An output image, lossless, with download and full-screen buttons only."""
    return gr.Image(label=label, interactive=False, format="png",
                    buttons=["download", "fullscreen"], **options)


class EditorPage:
    """The Gradio page around one `session.Editor`."""

    def __init__(self, editor: session.Editor, examples: dict[str, str]):
        self.editor = editor
        self.examples = examples

    def open(self, path: str | None, face_index: int | None, num_shown: int):
        """(session, status, face chooser update, *shown images) for a picked photo.

        The first shown image gets the photo with numbered boxes when it has
        several faces; every shown image is cleared otherwise.
        """
        cleared = [None] * num_shown
        if not path:
            return None, "", gr.update(visible=False), *cleared
        try:
            opened = self.editor.open_photo(path, face_index)
        except session.SeveralFacesError as e:
            choices = [(f"face {i + 1}: {session.describe_face(f)}", i)
                       for i, f in enumerate(e.faces)]
            return (None, f"**{e}**", gr.update(choices=choices, value=None, visible=True),
                    _faces_picture(e), *cleared[1:])
        except session.PhotoError as e:
            return None, f"**{e}**", gr.update(visible=False), *cleared
        status = opened.notice or f"{opened.name}: face found and encoded"
        return opened, status, gr.update(visible=face_index is not None), *cleared

    def edit(self, opened: session.PhotoSession | None, source: str, direction: str,
             *factors: float):
        """(whole photo, face before, face after) for the sliders' values."""
        if opened is None:  # keeps what `open` showed (a message, or the faces to choose)
            return gr.skip(), gr.skip(), gr.skip()
        result = opened.edit(dict(zip(self.editor.expressions, factors)), source,
                             fitted=_DIRECTIONS[direction])
        # Gradio would encode the photo with Pillow's PNG, several times slower than OpenCV's.
        path = _EDITS / f"{id(opened)}.png"
        atomic_io.write_png(path, result.photo)
        return str(path), result.face_before, result.face_after

    def interpolate(self, first, second, alpha: float):
        """(blend, status) of Algorithm 2 between the two tabs' photos."""
        if first is None or second is None:
            return gr.skip(), "pick two photos"
        result = session.interpolate(first, second, alpha)
        how = "confidence blend" if result.confidence else "cross-fade (the run has no mask)"
        return result.image, f"alpha {alpha:.2f}, {how}"

    def _photo_picker(self, label: str, elem_id: str) -> tuple:
        """Upload + examples + face chooser + status; returns them and the session state."""
        with gr.Row():
            upload = gr.File(label=label, file_types=["image"], elem_id=elem_id)
            example = gr.Dropdown(list(self.examples), value=None, label="or an example")
        face = gr.Dropdown([], label="several faces: choose one", visible=False,
                           elem_id=f"{elem_id}-face")
        status = gr.Markdown(elem_id=f"{elem_id}-status")
        path, opened = gr.State(None), gr.State(None)
        return upload, example, face, status, path, opened

    def _wire_picker(self, parts: tuple, shown: list[gr.Image], after: dict) -> None:
        """Opens the photo on upload, example or face choice, then runs `after`."""
        upload, example, face, status, path, opened = parts

        def open_photo(photo_path, face_index):
            return self.open(photo_path, face_index, len(shown))

        outputs = [opened, status, face, *shown]
        no_face = gr.State(None)
        upload.upload(lambda f: f, [upload], [path]).then(
            open_photo, [path, no_face], outputs).then(**after)
        example.input(self.examples.get, [example], [path]).then(
            open_photo, [path, no_face], outputs).then(**after)
        face.input(open_photo, [path, face], outputs).then(**after)

    def build(self) -> gr.Blocks:
        expressions = self.editor.expressions
        # Every result is cached as a file; an hour-old one is deleted (checked every 10 min).
        with gr.Blocks(title="fvae expression editor", delete_cache=(600, 3600)) as page:
            gr.Markdown("# fvae expression editor\nMove a slider: the photo's face is warped "
                        "by the learned flow (Algorithm 1, or the fitted direction when the "
                        "run has one and it is chosen), at the photo's own resolution.")
            with gr.Tab("Edit"):
                picker = self._photo_picker("Photo", "photo")
                with gr.Row():
                    source = gr.Dropdown(list(expressions), value=expressions[0],
                                         label="the photo shows")
                    fitted = _fitted_pairs(self.editor)
                    direction = gr.Dropdown(list(_DIRECTIONS), value=next(iter(_DIRECTIONS)),
                                            label=f"direction (fitted: {fitted})",
                                            visible=bool(fitted), elem_id="direction")
                low, high, step = _SLIDER_RANGE
                sliders = [gr.Slider(low, high, 0.0, step=step, label=e, elem_id=f"slider-{e}")
                           for e in expressions]
                with gr.Row():
                    photo = _image("edited photo (full resolution)", elem_id="edited-photo",
                                   scale=2)
                    with gr.Column():
                        before = _image("aligned face")
                        after = _image("edited face", elem_id="edited-face")
                # One edit at a time (they share the photo's file).
                edit = dict(fn=self.edit, inputs=[picker[5], source, direction, *sliders],
                            outputs=[photo, before, after], concurrency_id="edit")
                self._wire_picker(picker, [photo, before, after], edit)
                for control in (source, direction, *sliders):
                    control.input(**edit, trigger_mode="always_last")
            with gr.Tab("Interpolate"):
                pickers = [self._photo_picker(f"Photo {i}", f"photo{i}") for i in (1, 2)]
                alpha = gr.Slider(0.0, 1.0, 0.5, step=0.05, label="alpha (0: photo 1, 1: photo 2)")
                blend = _image("interpolated face")
                note = gr.Markdown()
                interp = dict(fn=self.interpolate, inputs=[pickers[0][5], pickers[1][5], alpha],
                              outputs=[blend, note])
                for picker in pickers:
                    self._wire_picker(picker, [blend], interp)
                alpha.input(**interp, trigger_mode="always_last")
        return page


def main(argv: list[str]) -> None:
    del argv
    # SIGTERM ends the process through SystemExit, so atexit removes the uploads too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own startup probes
    try:
        editor = session.Editor.load(CHECKPOINT_DIR.value, hr_size=HR_SIZE.value,
                                     upsample=UPSAMPLE.value, max_side=MAX_SIDE.value)
    except errors.ActionableError as e:  # no run, no statistics, a broken fitted_directions.npz
        sys.exit(f"error: {e}")
    examples = _example_photos(_UPLOADS, pathlib.Path(LONDON_DIR.value))
    page = EditorPage(editor, examples).build()
    try:
        _, url, _ = page.launch(server_name=HOST.value, server_port=PORT.value, quiet=True,
                                prevent_thread_lock=True, ssr_mode=False, share=False,
                                mcp_server=False, pwa=False, footer_links=[],
                                allowed_paths=[*examples.values(), str(_EDITS)])
    except OSError as e:
        sys.exit(f"error: cannot listen on {HOST.value}:{PORT.value} ({e}); pass another --port")
    print(f"fvae editor on {url} ({len(examples)} examples, expressions "
          f"{', '.join(editor.expressions)}; fitted directions: "
          f"{_fitted_pairs(editor) or 'none'}); Ctrl+C stops it", flush=True)
    page.block_thread()


if __name__ == "__main__":
    app.run(main)
