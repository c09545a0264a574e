"""The FVAE learns a known shift; the mask stage and the VAE baseline train
(with the training step of fvae_tf.train.step)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import SHIFT, shift_batch
from fvae_tf.model import config as config_lib
from fvae_tf.model import fvae, losses
from fvae_tf.train import step
from fvae_tf.warp import sampler


def _train_step(model, lr=2e-3):
    """The real training step with Adam(lr, beta_1=0.5, clipvalue=1.0): batch -> loss terms."""
    optimizer = keras.optimizers.Adam(lr, beta_1=0.5, clipvalue=1.0)
    return step.make_train_step(tf.distribute.get_strategy(), model, optimizer)


def _eval_terms(model, batch) -> dict:
    """Loss terms in inference mode (z = mu), as the validation reports them."""
    return step.forward(model, batch, training=False)[0]


@pytest.mark.slow
def test_fvae_learns_a_known_shift():
    keras.utils.set_random_seed(0)
    batch = shift_batch()
    model = fvae.FVAE(config_lib.get_config("tiny", flow_weight=0.1))
    before = _eval_terms(model, batch)["loss"].numpy()
    train_step = _train_step(model)
    for _ in range(150):
        train_step(batch)
    after = _eval_terms(model, batch)["loss"].numpy()
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
    model = fvae.FVAE(config_lib.get_config("tiny"))
    batch = shift_batch(4)
    reported = _eval_terms(model, batch)
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
    # The training step reports the same terms.
    assert set(_train_step(model)(batch)) == set(reported)


@pytest.mark.slow
def test_confidence_model_trains_only_the_mask():
    batch = shift_batch(4)
    flow_model = fvae.FVAE(config_lib.get_config("tiny"))
    flow_model.build_for_inference()
    frozen = [v.numpy().copy() for v in flow_model.weights]
    model = fvae.ConfidenceModel(flow_model)
    model.build_for_inference()
    train_step = _train_step(model, lr=1e-2)
    first = float(train_step(batch)["loss"])
    for _ in range(30):
        last = float(train_step(batch)["loss"])
    assert last < first
    for before, after in zip(frozen, flow_model.weights):
        np.testing.assert_array_equal(before, after.numpy())
    confidence = model.confidence(batch["source"], flow_model.encode(batch["target"])).numpy()
    assert confidence.shape == (4, 64, 64, 1)


def test_shown_in_frame_reads_the_source_frame_with_zeros_outside_the_crop():
    # Coordinates 2 px right of the identity on an 8 px crop: target column c
    # reads source column c + 2, and the last two columns read past the crop.
    size = 8
    source_frame = np.ones((1, size, size, 1), np.float32)
    source_frame[:, :, 5] = 0.0  # the photo's edge falls on column 5
    target_frame = np.ones_like(source_frame)
    target_frame[:, 0] = 0.25
    coords = sampler.identity_grid(size, size)[None] + [2 * 2.0 / size, 0.0]
    got = fvae.shown_in_frame(coords, tf.constant(source_frame), tf.constant(target_frame))
    want = np.ones((size, size))
    want[:, 3] = 0.0  # reads source column 5
    want[:, 6:] = 0.0  # reads past the crop: no replicated edge
    want[0] *= 0.25
    np.testing.assert_allclose(got.numpy()[0, ..., 0], want, atol=1e-6)


def test_mask_frame_multiplies_confidence_and_label_but_not_the_loss():
    batch = shift_batch(2)
    rng = np.random.default_rng(0)
    frames = {key: tf.constant(rng.uniform(0, 1, (2, 64, 64, 1)), tf.float32)
              for key in ("source_frame", "target_frame")}
    outputs, confidences = {}, {}
    for mask_frame in (False, True):
        keras.utils.set_random_seed(0)
        flow_model = fvae.FVAE(config_lib.get_config("tiny", mask_frame=mask_frame))
        flow_model.build_for_inference()
        model = fvae.ConfidenceModel(flow_model)
        model.build_for_inference()
        outputs[mask_frame] = model.compute_loss_and_outputs({**batch, **frames}, False)
        z = flow_model.encode(batch["target"])
        coords = flow_model.decode_flow(z, batch["source"])
        confidences[mask_frame] = (model.confidence(batch["source"], z)
                                   * model.frame_factor(coords, frames["source_frame"]))
    (loss, confidence, label, _), (loss_f, confidence_f, label_f, _) = outputs[False], outputs[True]
    factor = fvae.shown_in_frame(coords, frames["source_frame"], frames["target_frame"]).numpy()
    np.testing.assert_allclose(label_f.numpy(), label.numpy() * factor, atol=1e-6)
    np.testing.assert_allclose(confidence_f.numpy(), confidence.numpy() * factor, atol=1e-6)
    assert np.abs(label_f.numpy() - label.numpy()).max() > 0.1
    np.testing.assert_allclose(float(loss_f), float(loss), rtol=1e-6)  # eq. 8 as the paper's
    # Inference: the source's frame only (there is no target photo).
    source_factor = fvae.shown_in_frame(coords, frames["source_frame"],
                                        tf.ones_like(frames["source_frame"])).numpy()
    np.testing.assert_allclose(confidences[True].numpy(),
                               confidences[False].numpy() * source_factor, atol=1e-6)
    np.testing.assert_allclose(confidences[False].numpy(), confidence.numpy(), atol=1e-6)


@pytest.mark.slow
def test_vae_baseline_reconstructs_pixels():
    keras.utils.set_random_seed(1)
    batch = shift_batch(4)
    model = fvae.VAE(config_lib.get_config("tiny"))
    assert set(_eval_terms(model, batch)) == {"loss", "rec", "kl"}
    train_step = _train_step(model)
    first = float(train_step(batch)["rec"])
    for _ in range(60):
        last = float(train_step(batch)["rec"])
    assert last < 0.8 * first


def test_paper_reading_gives_the_old_numbers_on_a_fixed_batch():
    # Pinned from commit cfe719c (before the photometric, multi-scale and flow-head
    # options): the seeded tiny FVAE's losses on shift_batch(4). The flags below
    # are the paper's reading, the defaults of every FVAEConfig field.
    paper = dict(photometric="l1", multiscale_levels=1, flow_head="atanh",
                 flow_supervision=0.0, mask_label_quantile=0.0, mask_label_distance="l1",
                 photometric_trim=0.0, mask_frame=False)
    keras.utils.set_random_seed(0)
    model = fvae.FVAE(config_lib.get_config("tiny", **paper))
    terms, _ = model.compute_losses(shift_batch(4), training=False)
    terms = {name: float(value) for name, value in terms.items()}
    assert terms == pytest.approx({"rec": 1894.573, "kl": 0.0, "flow": 3.413337,
                                   "loss": 1897.9863}, rel=1e-5, abs=1e-5)
    assert config_lib.get_config("paper") == config_lib.FVAEConfig()
    assert all(getattr(config_lib.FVAEConfig(), k) == v for k, v in paper.items())


@pytest.mark.slow
@pytest.mark.parametrize("global_motion", [False, True])
def test_the_project_reading_learns_a_known_shift_too(global_motion):
    # Census photometric term, residual flow head, global affine map and 5 x 5
    # lattice (the demo's choices), and the same without the global motion. The
    # residual head's gain (0.25) makes the same 3 px take more steps than the
    # paper's head.
    keras.utils.set_random_seed(0)
    batch = shift_batch()
    model = fvae.FVAE(config_lib.get_config(
        "tiny", flow_weight=0.1, photometric="census", flow_head="residual",
        global_affine=global_motion, global_lattice=5 if global_motion else 0))
    model.build_for_inference()
    train_step = _train_step(model)
    for _ in range(400):
        train_step(batch)
    coords = model.decode_flow(model.encode(batch["target"]), batch["source"]).numpy()
    inner = (slice(None), slice(8, -8), slice(8, -8))
    dx = (coords - sampler.identity_grid(64, 64).numpy())[inner][..., 0]
    assert np.median(dx) == pytest.approx(-2 * SHIFT / 64, abs=0.5 * SHIFT / 64)


def test_flow_supervision_is_opt_in():
    batch = dict(shift_batch(2))
    batch["gt_coords"] = np.broadcast_to(sampler.identity_grid(64, 64).numpy(), (2, 64, 64, 2))
    batch["gt_visibility"] = np.ones((2, 64, 64, 1), np.float32)
    off = fvae.FVAE(config_lib.get_config("tiny"))
    assert "supervision" not in off.compute_losses(batch, training=False)[0]
    on = fvae.FVAE(config_lib.get_config("tiny", flow_supervision=2.0))
    terms = on.compute_losses(batch, training=False)[0]
    want = terms["rec"] + on.config.beta * terms["kl"] + on.config.flow_weight * terms["flow"]
    assert float(terms["loss"]) == pytest.approx(float(want + 2.0 * terms["supervision"]), rel=1e-5)


def test_landmark_supervision_is_opt_in():
    batch = dict(shift_batch(2))
    grid = np.linspace(-0.7, 0.7, 6, dtype=np.float32)
    batch["target_landmarks"] = np.stack(np.meshgrid(grid, grid), -1).reshape(1, 36, 2).repeat(2, 0)
    batch["source_landmarks"] = batch["target_landmarks"] + np.float32(0.1)
    off = fvae.FVAE(config_lib.get_config("tiny"))
    assert "landmarks" not in off.compute_losses(batch, training=False)[0]
    on = fvae.FVAE(config_lib.get_config("tiny", landmark_supervision=3.0))
    terms, out = on.compute_losses(batch, training=False)
    want = terms["rec"] + on.config.beta * terms["kl"] + on.config.flow_weight * terms["flow"]
    assert float(terms["loss"]) == pytest.approx(float(want + 3.0 * terms["landmarks"]), rel=1e-5)
    assert float(terms["landmarks"]) == pytest.approx(float(losses.landmark_supervision(
        out.coords, batch["target_landmarks"], batch["source_landmarks"])), rel=1e-6)
    with pytest.raises(ValueError, match="landmark_supervision must be at least 0"):
        config_lib.get_config("tiny", landmark_supervision=-1.0)


def test_census_softness_reaches_l_rec():
    batch = shift_batch(2)
    rec = []
    for softness in (0.9, losses.UNFLOW_CENSUS_SOFTNESS):
        model = fvae.FVAE(config_lib.get_config("tiny", photometric="census",
                                                census_softness=softness))
        terms, out = model.compute_losses(batch, training=False)
        want = losses.warp_reconstruction(batch["target"], batch["source"], out.coords,
                                          "census", census_softness=softness)
        assert float(terms["rec"]) == pytest.approx(float(want), rel=1e-5)
        rec.append(float(terms["rec"]))
    assert rec[1] > 2 * rec[0]  # nearer a sign, each differing contrast costs more


def test_census_contrast_reaches_l_rec():
    batch = shift_batch(2)
    model = fvae.FVAE(config_lib.get_config("tiny", photometric="census", census_contrast=0.2))
    terms, out = model.compute_losses(batch, training=False)
    want = losses.warp_reconstruction(batch["target"], batch["source"], out.coords, "census",
                                      census_contrast=0.2)
    plain = losses.warp_reconstruction(batch["target"], batch["source"], out.coords, "census")
    assert float(terms["rec"]) == pytest.approx(float(want), rel=1e-5)
    assert float(terms["rec"]) < 0.99 * float(plain)
    with pytest.raises(ValueError, match="census_contrast must be at least 0"):
        config_lib.get_config("tiny", census_contrast=-0.1)


def test_coherence_order_reaches_l_flow():
    batch = shift_batch(2)
    for order in (1, 2):
        model = fvae.FVAE(config_lib.get_config("tiny", coherence_order=order))
        terms, out = model.compute_losses(batch, training=False)
        want = losses.flow_coherence(out.coords, batch["target"], model.config.coherence_sigma,
                                     model.config.coherence_window, order=order)
        other = losses.flow_coherence(out.coords, batch["target"], model.config.coherence_sigma,
                                      model.config.coherence_window, order=3 - order)
        assert float(terms["flow"]) == pytest.approx(float(want), rel=1e-5)
        assert float(terms["flow"]) != pytest.approx(float(other), rel=1e-3)
