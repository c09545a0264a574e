"""Flags that experiments.edit and experiments.interpolate share (not a binary).

`detection()` turns them into the library's `photo.FaceDetection`; errors of
the library name these settings, which the binaries show as flags.
"""

from absl import flags

from fvae_tf.data import alignment
from fvae_tf.edit import photo

CHECKPOINT_DIR = flags.DEFINE_string("checkpoint_dir", None, "An FVAE run directory "
                                     "(experiments.train --workdir); the confidence mask is "
                                     "read from its mask/ subfolder.", required=True)
OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where the pictures go.", required=True)
HR_SIZE = flags.DEFINE_integer("hr_size", 256, "Side of the aligned high-resolution crop: the "
                               "flow pictures and interpolation frames.", lower_bound=16)
UPSAMPLE = flags.DEFINE_integer("upsample", 0, "Times the face detector doubles each photo "
                                "first (finds faces half as small, 4x slower).", lower_bound=0)
MULTIPLE_FACES = flags.DEFINE_enum_class(
    "multiple_faces", alignment.MultipleFaces.ERROR, alignment.MultipleFaces,
    "Photos with several faces: error, skip, or use the largest.", case_sensitive=False)


def detection() -> photo.FaceDetection:
    """The face detection the flags ask for."""
    return photo.FaceDetection(UPSAMPLE.value, MULTIPLE_FACES.value)
