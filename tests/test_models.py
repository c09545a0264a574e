"""Network tests: shapes, ranges, batch-norm placement, init, pinned sizes, checkpoints."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from fvae_tf.model import config as config_lib
from fvae_tf.model import fvae, losses, networks
from fvae_tf.train import step
from fvae_tf.warp import sampler

TINY = config_lib.get_config("tiny")


def _images(n=2, size=64, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 3)).astype(np.float32)


def test_every_preset_is_valid_and_documented():
    source = open(config_lib.__file__).read()
    for field in dataclasses.fields(config_lib.FVAEConfig):
        line = next(l for l in source.splitlines() if l.strip().startswith(f"{field.name}:"))
        assert "#" in line, f"config field {field.name} has no comment"
    for name in config_lib.preset_names():
        assert config_lib.get_config(name).num_levels >= 1
    with pytest.raises(ValueError, match="known presets"):
        config_lib.get_config("nope")
    with pytest.raises(ValueError, match="unknown config fields"):
        config_lib.get_config("tiny", learning_rat=1.0)
    with pytest.raises(ValueError, match="power of two"):
        config_lib.get_config("tiny", image_size=48)
    with pytest.raises(ValueError, match="geometric_jitter must be at least 0"):
        config_lib.get_config("tiny", geometric_jitter=-0.1)
    with pytest.raises(ValueError, match="census_softness must be above 0"):
        config_lib.get_config("tiny", census_softness=0.0)
    assert config_lib.get_config("tiny", mask_label_distance="l1*census")
    with pytest.raises(ValueError, match="photometric_trim must be in"):
        config_lib.get_config("tiny", photometric_trim=1.0)
    with pytest.raises(ValueError, match="mask_label_distance must be one of"):
        config_lib.get_config("tiny", mask_label_distance="l1*cenus")


def test_shapes_and_value_ranges():
    x = _images()
    z = np.random.default_rng(1).normal(size=(2, TINY.latent_dim)).astype(np.float32)
    mu, log_var = networks.Encoder(TINY)(x)
    assert mu.shape == log_var.shape == (2, TINY.latent_dim)
    coords = networks.FlowDecoder(TINY)((z, x)).numpy()
    assert coords.shape == (2, 64, 64, 2) and np.all(np.abs(coords) < 1)
    mask = networks.MaskNet(TINY)((x, z)).numpy()
    assert mask.shape == (2, 64, 64, 1) and np.all((mask > 0) & (mask < 1))
    rgb = networks.PixelDecoder(TINY)((z, x)).numpy()
    assert rgb.shape == (2, 64, 64, 3) and np.all(np.abs(rgb) <= 1)


def test_flow_decoder_starts_at_the_identity_warp():
    x = _images()
    z = np.zeros((2, TINY.latent_dim), np.float32)
    coords = networks.FlowDecoder(TINY)((z, x)).numpy()
    identity = sampler.identity_grid(64, 64).numpy()
    assert np.max(np.abs(coords - identity)) < 0.05


def test_residual_flow_head_starts_at_the_identity_with_uniform_gain():
    config = config_lib.get_config("tiny", flow_head="residual", flow_head_scale=0.25)
    decoder = networks.FlowDecoder(config)
    x = _images()
    z = np.zeros((2, TINY.latent_dim), np.float32)
    identity = sampler.identity_grid(64, 64).numpy()
    assert np.max(np.abs(decoder((z, x)).numpy() - identity)) < 0.05
    # identity + s * tanh(logits): the same logits move a border pixel as far as
    # the centre one; the paper's head (tanh(logits + atanh(identity))) barely moves it.
    logits = np.full((1, 64, 64, 2), 0.1, np.float32)
    residual = identity + 0.25 * np.tanh(logits)
    atanh = np.tanh(logits + np.arctanh(identity))
    decoder.body = lambda inputs, training=False: tf.constant(logits)
    np.testing.assert_allclose(decoder((z[:1], x[:1])).numpy(), residual, atol=1e-6)
    paper = networks.FlowDecoder(TINY)
    paper.body = decoder.body
    np.testing.assert_allclose(paper((z[:1], x[:1])).numpy(), atanh, atol=1e-6)
    border, centre = (0, 0, 0, 0), (0, 32, 32, 0)
    assert (atanh - identity)[border] < 0.1 * (atanh - identity)[centre]


def _affine_map(bias, size=64):
    """Closed form of the global head's affine map for a head bias b [6]: A x + t over
    the identity grid, A = R tanh(G b[:4]) (row-major 2 x 2), t = R tanh(G b[4:])."""
    theta = networks.GLOBAL_RANGE * np.tanh(networks.GLOBAL_GAIN * bias)
    return sampler.identity_grid(size, size).numpy() @ theta[:4].reshape(2, 2).T + theta[4:]


def test_global_affine_head_adds_a_bounded_affine_map_of_the_grid():
    config = config_lib.get_config("tiny", flow_head="residual", global_affine=True)
    decoder = networks.FlowDecoder(config)
    x = _images()
    z = np.random.default_rng(5).normal(size=(2, config.latent_dim)).astype(np.float32)
    start = decoder((z, x)).numpy()  # the affine head is zero at initialisation
    identity = sampler.identity_grid(64, 64).numpy()
    assert np.max(np.abs(start - identity)) < 0.05
    # A known bias: coords = identity + A identity + t + the unchanged residual.
    bias = np.array([20.0, -10.0, 5.0, -30.0, 40.0, 15.0], np.float32)
    decoder.body.global_head.layers[-1].bias.assign(bias)
    np.testing.assert_allclose(decoder((z, x)).numpy(), start + _affine_map(bias), atol=1e-5)
    # Bounded: however large the bias, no entry leaves +-GLOBAL_RANGE.
    decoder.body.global_head.layers[-1].bias.assign(np.full(6, 1e6, np.float32))
    reach = decoder((z, x)).numpy() - start
    assert np.max(np.abs(reach)) <= 3 * networks.GLOBAL_RANGE + 1e-5
    with pytest.raises(ValueError, match="need flow_head='residual'"):
        config_lib.get_config("tiny", global_affine=True)


def test_global_lattice_interpolates_its_control_points_bilinearly():
    config = config_lib.get_config("tiny", flow_head="residual", global_lattice=3)
    decoder = networks.FlowDecoder(config)
    x = _images()
    z = np.random.default_rng(6).normal(size=(2, config.latent_dim)).astype(np.float32)
    start = decoder((z, x)).numpy()  # zero at initialisation: only the residual
    bias = np.random.default_rng(7).uniform(-200, 200, 18).astype(np.float32)
    decoder.body.global_head.layers[-1].bias.assign(bias)
    points = (networks.GLOBAL_RANGE * np.tanh(networks.GLOBAL_GAIN * bias)).reshape(3, 3, 2)
    # Oracle: np.interp along x on each lattice row, then along y, at the pixel centres.
    centres, knots = (2 * np.arange(64) + 1) / 64 - 1, np.linspace(-1, 1, 3)
    rows = np.array([[np.interp(centres, knots, points[i, :, c]) for c in range(2)]
                     for i in range(3)])  # [lattice row, component, x]
    want = np.array([[[np.interp(y, knots, rows[:, c, j]) for c in range(2)]
                      for j in range(64)] for y in centres])  # [y, x, component]
    np.testing.assert_allclose(decoder((z, x)).numpy() - start,
                               np.broadcast_to(want, start.shape), atol=1e-5)
    with pytest.raises(ValueError, match="global_lattice must be 0"):
        config_lib.get_config("tiny", flow_head="residual", global_lattice=1)
    with pytest.raises(ValueError, match="need flow_head='residual'"):
        config_lib.get_config("tiny", global_lattice=4)


def test_flow_coherence_leaves_out_the_global_affine_map():
    config = config_lib.get_config("tiny", flow_head="residual", global_affine=True)
    model = fvae.FVAE(config)
    model.build_for_inference()
    bias = np.array([40.0, -10.0, 5.0, 30.0, 20.0, -15.0], np.float32)
    model.decoder.body.global_head.layers[-1].bias.assign(bias)
    affine = _affine_map(bias)
    batch = {"source": _images(2, seed=1), "target": _images(2, seed=2)}
    terms, out = model.compute_losses(batch, training=False)
    np.testing.assert_allclose(out.global_motion.numpy(),
                               np.broadcast_to(affine, out.global_motion.shape), atol=1e-6)

    def coherence(field):
        return float(losses.flow_coherence(field, batch["target"], config.coherence_sigma,
                                           config.coherence_window))

    np.testing.assert_allclose(float(terms["flow"]), coherence(out.coords - affine), rtol=1e-5)
    # The scaling the map holds would cost under eq. 6 on the whole field.
    assert coherence(out.coords) > 2 * float(terms["flow"])


def test_unknown_modes_are_refused():
    with pytest.raises(ValueError, match="photometric"):
        config_lib.get_config("tiny", photometric="l2")
    with pytest.raises(ValueError, match="flow_head"):
        config_lib.get_config("tiny", flow_head="linear")
    with pytest.raises(ValueError, match="multiscale_levels"):
        config_lib.get_config("tiny", multiscale_levels=0)
    with pytest.raises(ValueError, match="coherence_order must be 1"):
        config_lib.get_config("tiny", coherence_order=3)


def test_batch_norm_everywhere_but_the_last_two_layers():
    encoder = networks.Encoder(TINY)
    decoder = networks.FlowDecoder(TINY)
    encoder(_images(1))
    decoder((np.zeros((1, TINY.latent_dim), np.float32), _images(1)))
    down = [block.norm is not None for block in encoder.down.blocks]
    assert down == [True] * TINY.num_levels + [False]  # last conv before the dense heads
    up = [block.norm is not None for block in decoder.body.up_blocks]
    assert up == [True] * (TINY.num_levels - 1) + [False]  # last conv before the output conv
    assert all(b.norm is not None for b in decoder.body.source_path.blocks)
    # The output layers themselves are plain convolutions / dense layers.
    assert isinstance(decoder.body.output_conv, keras.layers.Conv2D)
    n_bn = sum(isinstance(l, keras.layers.BatchNormalization) for l in decoder._flatten_layers())
    assert n_bn == (TINY.num_levels + 1) + 1 + (TINY.num_levels - 1)


def test_truncated_normal_init_stddev():
    cfg = config_lib.get_config("tiny", base_channels=32)
    encoder = networks.Encoder(cfg)
    encoder(_images(1))
    kernel = encoder.down.blocks[-1].conv.kernel.numpy().ravel()  # 5x5x128x256 values
    # A normal truncated at 2 stddev has stddev 0.8796 * stddev.
    assert np.std(kernel) == pytest.approx(0.8796 * cfg.init_stddev, rel=0.03)
    assert np.max(np.abs(kernel)) <= 2 * cfg.init_stddev + 1e-7


def test_paper_preset_parameter_counts_are_pinned():
    model = fvae.FVAE(config_lib.get_config("paper"))
    model.build_for_inference()
    assert model.encoder.count_params() == 12_745_408
    assert model.decoder.count_params() == 17_269_794


def test_checkpoint_round_trip_model_and_optimizer(tmp_path):
    batch = {"source": _images(4, seed=2), "target": _images(4, seed=3)}

    def make():
        model = fvae.FVAE(TINY)
        model.build_for_inference()
        optimizer = keras.optimizers.Adam(1e-3, beta_1=0.5, clipvalue=1.0)
        optimizer.build(model.trainable_variables)
        return model, optimizer

    model, optimizer = make()
    step.make_train_step(tf.distribute.get_strategy(), model, optimizer)(batch)
    path = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "ckpt"))

    restored, restored_optimizer = make()
    tf.train.Checkpoint(model=restored, optimizer=restored_optimizer).restore(path).assert_consumed()
    assert int(restored_optimizer.iterations) == 1
    z = model.encode(batch["target"])
    np.testing.assert_array_equal(restored.encode(batch["target"]).numpy(), z.numpy())
    np.testing.assert_array_equal(restored.warp(batch["source"], z).numpy(),
                                  model.warp(batch["source"], z).numpy())
    for a, b in zip(optimizer.variables, restored_optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
