"""The FVAE learns a known shift; the mask stage and the VAE baseline train."""

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from fvae_tf.model import config as config_lib
from fvae_tf.model import fvae, losses
from fvae_tf.warp import sampler

SHIFT = 3  # pixels: the target is the source moved right by SHIFT


def _shift_batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    noise = rng.uniform(-1, 1, (n, 64 + 2 * SHIFT, 64 + 2 * SHIFT, 3)).astype(np.float32)
    smooth = np.stack([cv2.GaussianBlur(img, (0, 0), 2.0) for img in noise])
    smooth /= np.abs(smooth).max()
    source = smooth[:, SHIFT:-SHIFT, SHIFT:-SHIFT]
    target = smooth[:, SHIFT:-SHIFT, :-2 * SHIFT]
    return {"source": source, "target": target}


def _compiled(model, lr=2e-3):
    model.compile(optimizer=keras.optimizers.Adam(lr, beta_1=0.5, clipvalue=1.0))
    return model


@pytest.mark.slow
def test_fvae_learns_a_known_shift():
    keras.utils.set_random_seed(0)
    batch = _shift_batch()
    model = _compiled(fvae.FVAE(config_lib.get_config("tiny", flow_weight=0.1)))
    before = model.test_step(batch)["loss"].numpy()
    model.reset_metrics()
    step = tf.function(model.train_step)
    for _ in range(150):
        step(batch)
    model.reset_metrics()
    after = model.test_step(batch)["loss"].numpy()
    assert after < 0.7 * before

    z = model.encode(batch["target"])
    warped = model.warp(batch["source"], z).numpy()
    inner = (slice(None), slice(8, -8), slice(8, -8))  # away from the clamped border
    no_motion = np.abs(batch["source"] - batch["target"])[inner].mean()
    learned = np.abs(warped - batch["target"])[inner].mean()
    assert learned < 0.6 * no_motion
    # The flow points left by about SHIFT pixels: x displacement -2 * SHIFT / 64.
    coords = model.decode_flow(z, batch["source"]).numpy()
    dx = (coords - sampler.identity_grid(64, 64).numpy())[inner][..., 0]
    assert np.median(dx) == pytest.approx(-2 * SHIFT / 64, abs=0.5 * SHIFT / 64)


def test_train_step_reports_every_term_and_matches_losses():
    model = _compiled(fvae.FVAE(config_lib.get_config("tiny")))
    batch = _shift_batch(4)
    reported = model.test_step(batch)
    assert set(reported) == {"loss", "rec", "kl", "flow"}
    terms, out = model.compute_losses(batch, training=False)
    want = float(losses.reconstruction_l1(batch["target"], out.warped))
    assert float(reported["rec"]) == pytest.approx(want, rel=1e-5)
    cfg = model.config
    total = float(terms["rec"]) + cfg.beta * float(terms["kl"]) + cfg.flow_weight * float(terms["flow"])
    assert float(reported["loss"]) == pytest.approx(total, rel=1e-5)
    # Inference is deterministic (z = mu); training samples z.
    z = model.encode(batch["target"])
    np.testing.assert_array_equal(model.encode(batch["target"]), z)
    mu, log_var = model.encoder(batch["target"])
    assert not np.allclose(model.sample_latent(mu, log_var, training=True), mu)


@pytest.mark.slow
def test_confidence_model_trains_only_the_mask():
    batch = _shift_batch(4)
    flow_model = fvae.FVAE(config_lib.get_config("tiny"))
    flow_model.build_for_inference()
    frozen = [v.numpy().copy() for v in flow_model.weights]
    model = _compiled(fvae.ConfidenceModel(flow_model), lr=1e-2)
    model.build_for_inference()
    first = float(model.train_step(batch)["loss"])
    for _ in range(30):
        model.reset_metrics()
        last = float(model.train_step(batch)["loss"])
    assert last < first
    for before, after in zip(frozen, flow_model.weights):
        np.testing.assert_array_equal(before, after.numpy())
    confidence = model.confidence(batch["source"], flow_model.encode(batch["target"])).numpy()
    assert confidence.shape == (4, 64, 64, 1)


@pytest.mark.slow
def test_vae_baseline_reconstructs_pixels():
    keras.utils.set_random_seed(1)
    batch = _shift_batch(4)
    model = _compiled(fvae.VAE(config_lib.get_config("tiny")))
    assert set(model.test_step(batch)) == {"loss", "rec", "kl"}
    model.reset_metrics()
    first = float(model.train_step(batch)["rec"])
    step = tf.function(model.train_step)
    for _ in range(60):
        model.reset_metrics()
        last = float(step(batch)["rec"])
    assert last < 0.8 * first
