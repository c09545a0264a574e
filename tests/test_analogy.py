"""Algorithm 1's latent in training (`analogy_share`) against a loop over the batch."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import TINY_SIZE, random_models, shift_batch
from fvae_tf.data import input_pipeline
from fvae_tf.expressions import EXPRESSIONS
from fvae_tf.model import analogy
from fvae_tf.model import config as config_lib
from fvae_tf.model import fvae
from fvae_tf.train import evaluation, step

# Pairs (source label, target label): pair 3 is the only one with label 4 (no other
# image carries it: not valid); pair 4 has the same label at both ends.
SOURCE_LABELS = np.array([0, 1, 0, 4, 2, 1], np.int32)
TARGET_LABELS = np.array([1, 0, 2, 0, 2, 0], np.int32)


def _loop_direction(mu_source, mu_target, source_labels, target_labels):
    """The oracle: for each pair, list the other pairs' images by label and average."""
    directions, valid = [], []
    for i in range(len(mu_source)):
        images = [(mu, label) for j in range(len(mu_source)) if j != i
                  for mu, label in ((mu_source[j], source_labels[j]),
                                    (mu_target[j], target_labels[j]))]
        to = [mu for mu, label in images if label == target_labels[i]]
        start = [mu for mu, label in images if label == source_labels[i]]
        valid.append(bool(to) and bool(start))
        directions.append(np.mean(to, 0) - np.mean(start, 0) if valid[-1]
                          else np.zeros_like(mu_source[i]))
    return np.array(directions), np.array(valid)


def _latents(seed=0, latent=5):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(len(SOURCE_LABELS), latent)).astype(np.float32),
            rng.normal(size=(len(SOURCE_LABELS), latent)).astype(np.float32))


def test_direction_leaves_the_pairs_own_images_out():
    mu_source, mu_target = _latents()
    got, valid = analogy.leave_one_out_direction(mu_source, mu_target, SOURCE_LABELS,
                                                 TARGET_LABELS, len(EXPRESSIONS))
    want, want_valid = _loop_direction(mu_source, mu_target, SOURCE_LABELS, TARGET_LABELS)
    np.testing.assert_array_equal(valid.numpy(), want_valid)
    assert not want_valid[3] and want_valid.sum() == 5
    np.testing.assert_allclose(got.numpy(), want, atol=1e-6)
    assert np.allclose(got.numpy()[4], 0.0)  # same label at both ends: no motion


def test_substitute_replaces_the_first_share_of_valid_rows_and_trains_only_the_source():
    mu_source, mu_target = map(tf.constant, _latents())
    z = tf.constant(np.full((6, 5), 7.0, np.float32))
    want, valid = _loop_direction(mu_source.numpy(), mu_target.numpy(), SOURCE_LABELS,
                                  TARGET_LABELS)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([mu_source, mu_target])
        got = analogy.substitute(z, mu_source, mu_target, SOURCE_LABELS, TARGET_LABELS,
                                 len(EXPRESSIONS), share=0.67)  # round(4.02) = 4 rows
        total = tf.reduce_sum(got)
    for row in range(6):
        expected = (mu_source.numpy()[row] + want[row] if row < 4 and valid[row]
                    else z.numpy()[row])
        np.testing.assert_allclose(got.numpy()[row], expected, atol=1e-6)
    # The means carry no gradient; the substituted sources' latents do.
    assert tape.gradient(total, mu_target) is None
    np.testing.assert_array_equal(tape.gradient(total, mu_source).numpy()[:, 0],
                                  [1, 1, 1, 0, 0, 0])
    unchanged = analogy.substitute(z, mu_source, mu_target, SOURCE_LABELS, TARGET_LABELS,
                                   len(EXPRESSIONS), share=0.0)
    np.testing.assert_array_equal(unchanged.numpy(), z.numpy())


def _labelled_batch():
    batch = shift_batch(6)
    return {**batch, "source_expression": tf.constant(SOURCE_LABELS),
            "target_expression": tf.constant(TARGET_LABELS)}


def test_training_forward_decodes_algorithm_1s_latent():
    model = random_models()[0]
    model.config = config_lib.get_config("tiny", analogy_share=1.0)
    batch = _labelled_batch()
    out = model.forward(batch["source"], batch["target"], training=True,
                        expressions=(SOURCE_LABELS, TARGET_LABELS))
    mu_source = model.encoder(batch["source"], training=True)[0].numpy()
    mu_target = model.encoder(batch["target"], training=True)[0].numpy()
    direction, valid = _loop_direction(mu_source, mu_target, SOURCE_LABELS, TARGET_LABELS)
    rows = np.flatnonzero(valid)
    want = model.decoder((tf.constant(mu_source + direction), batch["source"]), training=True)
    np.testing.assert_allclose(out.coords.numpy()[rows], want.numpy()[rows], atol=1e-5)
    # Inference never substitutes: z is the target's mean latent.
    inference = model.forward(batch["source"], batch["target"], training=False,
                              expressions=(SOURCE_LABELS, TARGET_LABELS))
    np.testing.assert_allclose(
        inference.coords.numpy(),
        model.decode_flow(model.encode(batch["target"]), batch["source"]).numpy(), atol=1e-6)


def test_paper_reading_ignores_the_labels():
    """analogy_share 0 (every preset's default): the same loss terms with or without labels."""
    batch = _labelled_batch()
    plain = {"source": batch["source"], "target": batch["target"]}
    terms = []
    for inputs in (batch, plain):
        keras.utils.set_random_seed(0)  # the same weights; the config's seed: the same noise
        model = fvae.FVAE(config_lib.get_config("tiny"))
        terms.append(model.compute_losses(inputs, training=True)[0])
    for name in terms[0]:
        assert float(terms[0][name]) == float(terms[1][name]), name


def test_share_outside_0_1_is_refused():
    with pytest.raises(ValueError, match="analogy_share must be in"):
        config_lib.get_config("tiny", analogy_share=1.5)


def test_training_batches_carry_the_labels_to_the_model(tiny_dataset):
    """The training loop's `model_inputs` keeps the expression ids: with them the real
    training step's losses change with analogy_share, on the same weights and batch."""
    root, _ = tiny_dataset
    batch = next(iter(input_pipeline.make_dataset(root, "train", 6, shuffle=False, flip=False)))
    inputs = evaluation.model_inputs(batch)
    np.testing.assert_array_equal(inputs["source_expression"], batch["source_expression"])
    np.testing.assert_array_equal(inputs["target_expression"], batch["target_expression"])
    for key in ("source_landmarks", "target_landmarks"):  # for landmark_supervision
        np.testing.assert_array_equal(inputs[key], batch[key])
    rec = []
    for share in (0.0, 1.0):
        keras.utils.set_random_seed(0)
        model = fvae.FVAE(config_lib.get_config("tiny", image_size=TINY_SIZE,
                                                analogy_share=share))
        model.build_for_inference()
        optimizer = keras.optimizers.Adam(1e-3)
        rec.append(float(step.make_train_step(tf.distribute.get_strategy(), model,
                                              optimizer)(inputs)["rec"]))
    assert rec[0] != rec[1]
