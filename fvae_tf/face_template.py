"""The canonical face: 68 landmarks in normalized crop coordinates, and their mirror order.

What alignment maps every face onto, what the synthetic faces are built
around and what the input pipeline's horizontal flip permutes, kept apart
from `fvae_tf.data.alignment` so that none of them needs dlib. Landmarks are
in dlib's 68-point order; coordinates are normalized (x, y) in [-1, 1] with
align_corners=False (`fvae_tf.warp.coordinates`).
"""

import numpy as np

NUM_LANDMARKS = 68

# Index of each landmark's mirror image under a horizontal flip (the person's
# left eye becomes their right eye): flip x, then reorder with this.
MIRROR_PERMUTATION = (
    tuple(range(16, -1, -1)) + tuple(range(26, 16, -1)) + (27, 28, 29, 30, 35, 34, 33, 32, 31)
    + (45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40)
    + (54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55) + (64, 63, 62, 61, 60, 67, 66, 65))

# The canonical template, normalized crop coordinates [68, 2]. Made once from
# the dlib landmarks of the 102 London neutral faces: generalized Procrustes
# mean (10 rounds of fitting every face onto the mean with
# `alignment.fit_similarity` on `alignment.STABLE_POINTS` and `STABLE_WEIGHTS`,
# starting from face 001, then averaging all 68 points), made left-right
# symmetric (averaged with its mirror image), then translated and scaled so
# that the midpoint of the eye centres (means of 36-41 and 42-47) sits at
# (0, -0.2), 40% of the crop height, and the chin (8) at y = 0.8, 90% of the
# height; rounded to 4 decimals. The face fills the width about 62% (jaw),
# with some forehead above the brows (29% of the height) and the chin inside
# the crop, as DCGAN-style Multi-PIE crops do. tests/test_alignment.py
# re-derives it.
_TEMPLATE = np.array([
    # jaw, 0-16
    [-0.6226, -0.1546], [-0.6095, 0.0092], [-0.5844, 0.1678], [-0.5565, 0.3270],
    [-0.5101, 0.4783], [-0.4261, 0.6066], [-0.3062, 0.7076], [-0.1634, 0.7786],
    [0.0000, 0.8000], [0.1634, 0.7786], [0.3062, 0.7076], [0.4261, 0.6066],
    [0.5101, 0.4783], [0.5565, 0.3270], [0.5844, 0.1678], [0.6095, 0.0092],
    [0.6226, -0.1546],
    # eyebrows, 17-26
    [-0.5181, -0.3022], [-0.4440, -0.3877], [-0.3307, -0.4211], [-0.2141, -0.4098],
    [-0.1018, -0.3689], [0.1018, -0.3689], [0.2141, -0.4098], [0.3307, -0.4211],
    [0.4440, -0.3877], [0.5181, -0.3022],
    # nose bridge and base, 27-35
    [0.0000, -0.2360], [0.0000, -0.1385], [0.0000, -0.0428], [0.0000, 0.0577],
    [-0.1115, 0.1555], [-0.0572, 0.1717], [0.0000, 0.1851], [0.0572, 0.1717],
    [0.1115, 0.1555],
    # eyes, 36-47
    [-0.3823, -0.1944], [-0.3167, -0.2429], [-0.2330, -0.2429], [-0.1607, -0.1877],
    [-0.2368, -0.1676], [-0.3205, -0.1646], [0.1607, -0.1877], [0.2330, -0.2429],
    [0.3167, -0.2429], [0.3823, -0.1944], [0.3205, -0.1646], [0.2368, -0.1676],
    # outer lips, 48-59
    [-0.2210, 0.3913], [-0.1374, 0.3362], [-0.0583, 0.3055], [0.0000, 0.3210],
    [0.0583, 0.3055], [0.1374, 0.3362], [0.2210, 0.3913], [0.1387, 0.4399],
    [0.0621, 0.4593], [0.0000, 0.4641], [-0.0621, 0.4593], [-0.1387, 0.4399],
    # inner lips, 60-67
    [-0.1809, 0.3901], [-0.0595, 0.3714], [0.0000, 0.3756], [0.0595, 0.3714],
    [0.1809, 0.3901], [0.0594, 0.3761], [0.0000, 0.3820], [-0.0594, 0.3761],
], dtype=np.float64)
_TEMPLATE.setflags(write=False)


def canonical_template() -> np.ndarray:
    """The canonical face, float64 [68, 2] in normalized crop coordinates (a copy)."""
    return _TEMPLATE.copy()
