"""Tests for fvae_tf.data.jitter against closed forms: a pair moved by one similarity."""

import numpy as np
import tensorflow as tf

from fvae_tf.data import input_pipeline, jitter

SIZE = 32
SEED = tf.constant([7, 3], tf.int64)


def _grid(size: int = SIZE) -> np.ndarray:
    centres = (2 * np.arange(size) + 1) / size - 1
    xs, ys = np.meshgrid(centres, centres)
    return np.stack([xs, ys], axis=-1)


def _smooth(points: np.ndarray) -> np.ndarray:
    """A smooth colour field of normalized points [..., 2] -> [..., 3]."""
    x, y = points[..., 0], points[..., 1]
    return np.stack([np.sin(1.3 * x + 0.4 * y), np.cos(0.7 * y - 0.5 * x), 0.3 * x * y], -1)


def _numpy_matrix(amount: float) -> np.ndarray:
    return jitter.random_similarity(amount, SEED).numpy().astype(np.float64)


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def test_random_similarity_is_a_bounded_similarity():
    matrix = _numpy_matrix(0.05)
    linear = matrix[:, :2]
    scale = np.sqrt(np.linalg.det(linear))
    np.testing.assert_allclose(linear @ linear.T, scale**2 * np.eye(2), atol=1e-6)
    assert np.exp(-0.05) - 1e-6 <= scale <= np.exp(0.05) + 1e-6
    assert np.all(np.abs(matrix[:, 2]) <= 0.05)
    assert not np.allclose(matrix, np.eye(2, 3))  # it moves
    other = jitter.random_similarity(0.05, tf.constant([8, 3], tf.int64)).numpy()
    assert not np.allclose(matrix, other)


def test_images_and_landmarks_move_by_the_similarity():
    # Jittered image at q must be the original field at A^-1(q) (away from the
    # clamped border); landmarks must be A(l).
    matrix = _numpy_matrix(0.1)
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    landmarks = np.random.default_rng(0).uniform(-0.8, 0.8, (68, 2))
    example = {"source": tf.constant(_smooth(_grid()), tf.float32),
               "target": tf.constant(_smooth(_grid()) * 0.5, tf.float32),
               "source_landmarks": tf.constant(landmarks, tf.float32),
               "identity": tf.constant("x")}
    got = jitter.jitter_pair(example, 0.1, SEED)
    back = _apply(inverse, _grid())
    inside = np.all(np.abs(back) < 1 - 2.0 / SIZE, axis=-1)
    want = _smooth(back)
    np.testing.assert_allclose(got["source"].numpy()[inside], want[inside], atol=0.01)
    np.testing.assert_allclose(got["target"].numpy()[inside], 0.5 * want[inside], atol=0.01)
    np.testing.assert_allclose(got["source_landmarks"].numpy(), _apply(matrix, landmarks),
                               atol=1e-5)
    assert got["identity"].numpy() == b"x"
    assert inside.mean() > 0.7


def test_jittered_ground_truth_still_maps_target_to_source():
    # target(p) = source(c(p)) with c a fixed affine map; after the jitter the
    # new field must read the new source where the new target has its content.
    flow = np.array([[0.95, 0.05, 0.04], [-0.03, 1.02, -0.06]])
    source = _smooth(_grid())
    coords = _apply(flow, _grid())
    target = _smooth(coords)
    visibility = np.ones((SIZE, SIZE, 1))
    visibility[:4] = 0.0
    example = {k: tf.constant(v, tf.float32) for k, v in dict(
        source=source, target=target, gt_coords=coords, gt_visibility=visibility).items()}
    got = {k: v.numpy() for k, v in jitter.jitter_pair(example, 0.1, SEED).items()}
    matrix = _numpy_matrix(0.1)
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    want = _apply(matrix, _apply(flow, _apply(inverse, _grid())))
    back = _apply(inverse, _grid())
    inside = np.all(np.abs(back) < 1 - 2.0 / SIZE, axis=-1)
    np.testing.assert_allclose(got["gt_coords"][inside], want[inside], atol=1e-4)
    # The new target equals the true field of the new source at the new coordinates.
    new_source_at = _smooth(_apply(inverse, got["gt_coords"]))
    np.testing.assert_allclose(got["target"][inside], new_source_at[inside], atol=0.01)
    # Visibility: the rows that were hidden move with the image; outside the crop is hidden.
    hidden_rows = back[..., 1] < -1 + 2 * 4 / SIZE - 2.0 / SIZE
    assert np.all(got["gt_visibility"][..., 0][hidden_rows] == 0)
    outside = np.any(np.abs(back) > 1, axis=-1)
    assert np.all(got["gt_visibility"][..., 0][outside] == 0)
    assert got["gt_visibility"].mean() > 0.6


def test_photo_frames_move_with_the_images_and_end_at_the_crop():
    # A frame that is 1 on the left half: after the jitter it must be that
    # half moved by the similarity, and 0 wherever A^-1(q) leaves the crop,
    # since the clamped images only replicate the crop's edge there.
    frame = (_grid()[..., :1] < 0).astype(np.float32)
    seed = tf.constant([2, 3], tf.int64)  # a similarity that takes 15 % of the crop outside
    example = {"source_frame": tf.constant(frame), "target_frame": tf.constant(np.ones_like(frame)),
               "source": tf.constant(_smooth(_grid()), tf.float32)}
    got = {k: v.numpy()[..., 0] for k, v in jitter.jitter_pair(example, 0.1, seed).items()
           if k.endswith("frame")}
    matrix = jitter.random_similarity(0.1, seed).numpy().astype(np.float64)
    back = _apply(np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2], _grid())
    outside = np.any(np.abs(back) > 1, axis=-1)
    assert outside.any() and not outside.all()
    np.testing.assert_array_equal(got["target_frame"], (~outside).astype(np.float32))
    clear = ~outside & (np.abs(back[..., 0]) > 2.0 / SIZE)  # a pixel away from the half's edge
    np.testing.assert_array_equal(got["source_frame"][clear], (back[..., 0] < 0)[clear])
    assert np.all(got["source_frame"][outside] == 0)


def test_zero_amount_leaves_the_pair_alone():
    example = {"source": tf.random.uniform([8, 8, 3])}
    assert jitter.jitter_pair(example, 0.0, SEED) is example


def test_make_dataset_jitters_each_pair_the_same_way_for_a_seed(tiny_dataset):
    dataset_dir, _ = tiny_dataset

    def first_batch(amount, seed=0):
        data = input_pipeline.make_dataset(dataset_dir, "train", 4, seed=seed, jitter=amount)
        return next(iter(data))

    plain, moved, again = first_batch(0.0), first_batch(0.1), first_batch(0.1)
    np.testing.assert_array_equal(moved["source"].numpy(), again["source"].numpy())
    np.testing.assert_array_equal(moved["identity"].numpy(), plain["identity"].numpy())
    assert np.abs(moved["source"].numpy() - plain["source"].numpy()).mean() > 0.01
    assert not np.allclose(first_batch(0.1, seed=1)["source"].numpy(), moved["source"].numpy())
