"""Mixed precision (`FVAEConfig.precision`): hidden layers compute in float16 or
bfloat16 while the output heads, the flow, the sampler and the losses stay
float32 and every variable is float32; float16 trains through a dynamic loss
scale; the tiny preset still learns a known shift; a mixed run loads in float32."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import SHIFT, random_faces, random_models, shift_batch
from fvae_tf.model import config as config_lib
from fvae_tf.model import fvae
from fvae_tf.train import checkpoints, step
from fvae_tf.warp import sampler

MIXED = ["mixed_float16", "mixed_bfloat16"]
# Relative rounding of one value: float16 keeps 11 significant bits, bfloat16 8.
UNIT_ROUNDOFF = {"mixed_float16": 2.0 ** -11, "mixed_bfloat16": 2.0 ** -8}


def _mixed_copy(model: fvae.FVAE, precision: str) -> fvae.FVAE:
    """An FVAE of `model`'s config in `precision`, holding `model`'s weights."""
    mixed = fvae.FVAE(config_lib.get_config("tiny", precision=precision))
    mixed.build_for_inference()
    mixed.set_weights(model.get_weights())
    return mixed


def _conv_layers(model: keras.Model) -> list:
    return [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.Conv2D)]


@pytest.mark.parametrize("precision", MIXED)
def test_hidden_layers_compute_in_the_policy_and_the_heads_in_float32(precision):
    model = fvae.FVAE(config_lib.get_config("tiny", precision=precision))
    model.build_for_inference()
    assert {v.dtype for v in model.weights} == {"float32"}
    heads = {id(model.decoder.body.output_conv)}
    hidden = [layer for layer in _conv_layers(model) if id(layer) not in heads]
    assert len(hidden) == len(_conv_layers(model)) - 1 > 0
    assert {layer.compute_dtype for layer in hidden} == {precision.removeprefix("mixed_")}
    assert model.decoder.body.output_conv.compute_dtype == "float32"
    assert model.encoder.mu.compute_dtype == model.encoder.log_var.compute_dtype == "float32"
    images = random_faces(2)
    mu, log_var = model.encoder(images)
    coords = model.decode_flow(mu, images)
    assert (mu.dtype, log_var.dtype, coords.dtype) == (tf.float32,) * 3


@pytest.mark.parametrize("precision", MIXED)
def test_mixed_precision_gives_the_float32_model_s_flow_and_losses(precision):
    """The same weights in float32 and in `precision`: flow and loss terms agree to
    within the rounding of the narrower format (and differ, so it is really used)."""
    reference, _ = random_models(seed=3)
    mixed = _mixed_copy(reference, precision)
    batch = {"source": random_faces(4, seed=1), "target": random_faces(4, seed=2)}
    want_terms, want = reference.compute_losses(batch, training=False)
    got_terms, got = mixed.compute_losses(batch, training=False)
    coords_error = np.abs(got.coords.numpy() - want.coords.numpy())
    displacement = np.abs(want.coords.numpy() - sampler.identity_grid(64, 64).numpy())
    assert 0 < coords_error.max() < 8 * UNIT_ROUNDOFF[precision] * displacement.max()
    for name in ("rec", "kl", "flow", "loss"):
        assert float(got_terms[name]) == pytest.approx(float(want_terms[name]),
                                                       rel=4 * UNIT_ROUNDOFF[precision]), name


def test_float16_wraps_adam_in_a_loss_scale_and_bfloat16_does_not():
    variables = [tf.Variable(1.0)]
    float16 = step.make_optimizer(config_lib.get_config("tiny", precision="mixed_float16"),
                                  variables)
    assert isinstance(float16, keras.optimizers.LossScaleOptimizer)
    assert float16.inner_optimizer.clipvalue == 1.0
    for precision in ("float32", "mixed_bfloat16"):
        optimizer = step.make_optimizer(config_lib.get_config("tiny", precision=precision),
                                        variables)
        assert type(optimizer) is keras.optimizers.Adam


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of float32, mixed_float16"):
        config_lib.get_config("tiny", precision="float16")


@pytest.mark.slow
@pytest.mark.parametrize("precision", MIXED)
def test_tiny_preset_learns_a_known_shift_in_mixed_precision(precision, tmp_path):
    """The real training step and optimizer in `precision`; then the run loads in
    float32 (`checkpoints.load_model`) and draws the same flow."""
    keras.utils.set_random_seed(0)
    batch = shift_batch()
    config = config_lib.get_config("tiny", flow_weight=0.1, learning_rate=2e-3,
                                   precision=precision, jit_compile=True)
    model = fvae.FVAE(config)
    model.build_for_inference()
    optimizer = step.make_optimizer(config, model.trainable_variables)
    train_step = step.make_train_step(tf.distribute.get_strategy(), model, optimizer)
    for _ in range(150):
        terms = train_step(batch)
    assert np.isfinite(float(terms["loss"]))
    if precision == "mixed_float16":
        # The scale fell from Keras' 2^15 to where the summed losses' gradients fit
        # float16; the steps that overflowed on the way were skipped.
        assert float(optimizer.dynamic_scale) < 2.0 ** 15
        assert 0 < int(optimizer.iterations) < 150
    z = model.encode(batch["target"])
    coords = model.decode_flow(z, batch["source"]).numpy()
    inner = (slice(None), slice(8, -8), slice(8, -8))
    dx = (coords - sampler.identity_grid(64, 64).numpy())[inner][..., 0]
    assert np.median(dx) == pytest.approx(-2 * SHIFT / 64, abs=0.5 * SHIFT / 64)

    tf.train.Checkpoint(model=model).save(str(tmp_path / "best" / "ckpt"))
    checkpoints.write_run_config(tmp_path, checkpoints.ModelKind.FVAE, config)
    loaded = checkpoints.load_model(tmp_path)
    assert loaded.config.precision == "float32"
    assert loaded.decoder.body.up_block_0.conv.compute_dtype == "float32"
    float32_coords = loaded.decode_flow(loaded.encode(batch["target"]), batch["source"]).numpy()
    displacement = np.abs(coords - sampler.identity_grid(64, 64).numpy()).max()
    np.testing.assert_allclose(float32_coords, coords,
                               atol=4 * UNIT_ROUNDOFF[precision] * displacement)
