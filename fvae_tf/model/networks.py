"""The FVAE networks (paper section 5.3): E, D, M and the VAE baseline's decoder.

DCGAN spirit: the encoder's stride-2 convolutions double the channels as the
spatial size halves; the decoders upsample with nearest neighbour and halve
the channels as the size doubles. Batch norm follows every convolution except
the last two layers before an output; weights start from a truncated normal
with stddev 0.01 (`config.init_stddev`).

Mixed precision (`config.precision`, a Keras dtype policy): every hidden
layer computes in its dtype, while the output heads (the encoder's `mu` and
`log_var`, each decoder's last convolution) stay float32, so the flow, the
sampler and the losses are float32 whatever the policy. Variables are float32
under every policy: one checkpoint serves all of them.

The decoders are conditioned on the source image `x_s` (SPEC): a convolutional
branch of their own extracts source features, concatenated with the projected
`z` at the bottleneck and, with `config.source_skips`, at every scale on the
way up. `z` carries the target expression; the source carries identity.
"""

import keras
import numpy as np
import tensorflow as tf

from fvae_tf.warp import sampler
from fvae_tf.model.config import FVAEConfig


def _initializer(config: FVAEConfig):
    return keras.initializers.TruncatedNormal(stddev=config.init_stddev, seed=None)


def _conv(config: FVAEConfig, filters: int, kernel: int, strides: int = 1, dtype=None):
    """A "same" convolution in `config.precision`, or in `dtype` (an output head's float32)."""
    return keras.layers.Conv2D(filters, kernel, strides=strides, padding="same",
                               kernel_initializer=_initializer(config),
                               dtype=dtype or config.precision)


class ConvBlock(keras.layers.Layer):
    """Convolution, optional batch norm, activation."""

    def __init__(self, config: FVAEConfig, filters: int, kernel: int, strides: int = 1,
                 batch_norm: bool = True, **kwargs):
        super().__init__(dtype=config.precision, **kwargs)
        self.conv = _conv(config, filters, kernel, strides)
        self.norm = keras.layers.BatchNormalization(dtype=config.precision) if batch_norm else None
        self.activation = keras.layers.Activation(config.activation, dtype=config.precision)

    def call(self, x, training=False):
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x, training=training)
        return self.activation(x)


def attach(owner: keras.layers.Layer, prefix: str, layers: list) -> int:
    """Attaches `layers` as attributes `prefix_0, prefix_1, ...`; returns their count.

    Keras 3 keeps a list attribute as a TrackedList that `tf.train.Checkpoint`
    does not see: batch-norm statistics of layers held in a list are silently
    left out of checkpoints. Attributes are tracked.
    """
    for i, layer in enumerate(layers):
        setattr(owner, f"{prefix}_{i}", layer)
    return len(layers)


def attached(owner: keras.layers.Layer, prefix: str, count: int) -> list:
    """The layers that `attach` stored, in order."""
    return [getattr(owner, f"{prefix}_{i}") for i in range(count)]


def level_channels(config: FVAEConfig, level: int) -> int:
    """Channels at `level` halvings below full resolution."""
    return config.base_channels * 2 ** level


class DownPath(keras.layers.Layer):
    """First convolution at full size, then one stride-2 block per level.

    Returns the feature map of every scale, full resolution first.
    """

    def __init__(self, config: FVAEConfig, last_batch_norm: bool = True, **kwargs):
        super().__init__(dtype=config.precision, **kwargs)
        levels = config.num_levels
        blocks = [ConvBlock(config, config.base_channels, config.edge_kernel_size)]
        for level in range(1, levels + 1):
            blocks.append(ConvBlock(
                config, level_channels(config, level), config.kernel_size, strides=2,
                batch_norm=last_batch_norm or level < levels))
        self.num_blocks = attach(self, "block", blocks)

    @property
    def blocks(self) -> list:
        return attached(self, "block", self.num_blocks)

    def call(self, x, training=False):
        features = []
        for block in self.blocks:
            x = block(x, training=training)
            features.append(x)
        return features


class Encoder(keras.Model):
    """`E(x) -> (mu, log_var)`, each [B, latent_dim] (eq. 2)."""

    def __init__(self, config: FVAEConfig, **kwargs):
        super().__init__(**kwargs)
        # The last convolution and the dense heads are the two layers before
        # the output: no batch norm there.
        self.down = DownPath(config, last_batch_norm=False)
        self.flatten = keras.layers.Flatten(dtype=config.precision)
        self.mu = keras.layers.Dense(config.latent_dim, kernel_initializer=_initializer(config),
                                     dtype="float32")
        self.log_var = keras.layers.Dense(config.latent_dim,
                                          kernel_initializer=_initializer(config), dtype="float32")

    def call(self, x, training=False):
        h = self.flatten(self.down(x, training=training)[-1])
        return self.mu(h), self.log_var(h)


class ConditionedDecoder(keras.Model):
    """`(z, x_s) -> [B, H, W, out_channels]`, before the output activation.

    With `use_source=False` the source is ignored: a decoder of `z` alone (the
    paper's VAE baseline).
    """

    def __init__(self, config: FVAEConfig, out_channels: int, use_source: bool = True,
                 global_outputs: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        levels = config.num_levels
        size = config.bottleneck_size
        top = level_channels(config, levels)
        self.source_path = DownPath(config) if use_source else None
        hidden = config.precision
        self.project = keras.layers.Dense(size * size * top,
                                          kernel_initializer=_initializer(config), dtype=hidden)
        self.reshape = keras.layers.Reshape((size, size, top), dtype=hidden)
        self.project_norm = keras.layers.BatchNormalization(dtype=hidden)
        self.project_activation = keras.layers.Activation(config.activation, dtype=hidden)
        self.upsample = keras.layers.UpSampling2D(2, interpolation="nearest", dtype=hidden)
        # Level 0 (full resolution) is the second-to-last layer: no batch norm.
        self.num_up_blocks = attach(self, "up_block", [
            ConvBlock(config, level_channels(config, level), config.kernel_size,
                      batch_norm=level > 0)
            for level in reversed(range(levels))
        ])
        self.output_conv = _conv(config, out_channels, config.edge_kernel_size, dtype="float32")
        # Optional per-image outputs read from the whole bottleneck, zero at initialisation.
        self.global_head = keras.Sequential([
            keras.layers.Flatten(dtype="float32"),
            keras.layers.Dense(global_outputs, kernel_initializer="zeros", dtype="float32"),
        ]) if global_outputs else None

    @property
    def up_blocks(self) -> list:
        return attached(self, "up_block", self.num_up_blocks)

    def call(self, inputs, training=False):
        z, source = inputs
        h = self.project_activation(self.project_norm(self.reshape(self.project(z)),
                                                      training=training))
        skips = [None] * self.num_up_blocks
        if self.source_path is not None:
            features = self.source_path(source, training=training)
            h = keras.ops.concatenate([h, features[-1]], axis=-1)
            if self.config.source_skips:
                skips = reversed(features[:-1])
        bottleneck = h
        for block, skip in zip(self.up_blocks, skips):
            h = block(self.upsample(h), training=training)
            if skip is not None:
                h = keras.ops.concatenate([h, skip], axis=-1)
        if self.global_head is None:
            return self.output_conv(h)
        return self.output_conv(h), self.global_head(keras.ops.cast(bottleneck, "float32"))


# The global motion (FlowDecoder): each of A's entries, t's and every lattice
# displacement within +-GLOBAL_RANGE (normalized units: 10 % of scale or rotation, 3.2 px
# of shift at 64 px), and its pre-activations scaled by GLOBAL_GAIN, since Adam moves
# each of the bottleneck's thousands of weights by about the learning rate per step, all
# towards one output.
GLOBAL_RANGE = 0.1
GLOBAL_GAIN = 0.01


def lattice_weights(size: int, points: int) -> np.ndarray:
    """[size, points]: bilinear (hat) weights of `points` control points spread evenly
    over [-1, 1], ends included, at the `size` pixel centres of one image axis
    (normalized coordinates). Rows sum to 1."""
    centres = (2 * np.arange(size) + 1) / size - 1
    knots = np.linspace(-1, 1, points)
    return np.maximum(0, 1 - np.abs(centres[:, None] - knots) * (points - 1) / 2).astype(
        np.float32)


class FlowDecoder(keras.Model):
    """`D(z, x_s) -> coords` [B, H, W, 2], absolute normalized sampling coordinates.

    `config.flow_head` "atanh" (the paper's reading): tanh of the last
    convolution plus a fixed per-pixel bias, atanh of the identity grid; at
    initialisation (tiny weights) the flow is the identity warp rather than
    "everything reads the centre pixel", and the output remains tanh-bounded
    absolute coordinates as the paper has it. Its gain, sech^2 of the bias, is
    about 0.03 at the border pixels. "residual": identity + s * tanh(conv),
    s = `config.flow_head_scale`; the same start, a uniform gain s.

    Global motion (not the paper's; "residual" head only), read from the whole
    bottleneck, zero at initialisation, and added to the residual:
    `config.global_affine`, a per-image affine map of the identity grid,
    x' = x + A x + t (A 2 x 2); `config.global_lattice` = N, a displacement
    on N x N control points spread over the crop, interpolated bilinearly. A
    small rotation or scaling between two crops, or the smooth sheet the mesh
    drags around the face, then moves every pixel at once, flat background
    included, instead of being learned pixel by pixel where the photometric
    loss sees little texture. L_flow regularises the field without this global
    part (`FVAE.extra_losses`).
    """

    def __init__(self, config: FVAEConfig, **kwargs):
        super().__init__(**kwargs)
        self.global_affine = config.global_affine
        self.lattice = config.global_lattice
        outputs = 6 * self.global_affine + 2 * self.lattice ** 2
        self.body = ConditionedDecoder(config, 2, global_outputs=outputs)
        self.residual = config.flow_head == "residual"
        self.scale = config.flow_head_scale
        grid = sampler.identity_grid(config.image_size, config.image_size).numpy()
        self.identity = tf.constant(grid, tf.float32)
        self.identity_logits = tf.constant(np.arctanh(grid), tf.float32)
        if self.lattice:
            self.lattice_weights = tf.constant(lattice_weights(config.image_size, self.lattice))

    def call(self, inputs, training=False, with_global=False):
        """coords [B, H, W, 2]; with `with_global`, (coords, the global motion
        inside them [B, H, W, 2], or None without `global_affine` and
        `global_lattice`)."""
        if self.global_affine or self.lattice:
            logits, head = self.body(inputs, training=training)
            motion = self._global_motion(GLOBAL_RANGE * keras.ops.tanh(GLOBAL_GAIN * head))
        else:
            logits, motion = self.body(inputs, training=training), None
        if not self.residual:
            coords = keras.ops.tanh(logits + self.identity_logits)
        else:
            coords = self.identity + self.scale * keras.ops.tanh(logits)
            if motion is not None:
                coords += motion
        return (coords, motion) if with_global else coords

    def _global_motion(self, theta):
        """[B, H, W, 2] from the bounded head [B, 6 + 2 N^2]: A x + t (A row-major,
        then t) over the identity grid, plus the lattice (row-major, (x, y) last)."""
        motion = 0.0
        if self.global_affine:
            matrix = keras.ops.reshape(theta[:, :4], (-1, 1, 1, 2, 2))
            motion = (keras.ops.sum(matrix * self.identity[:, :, None, :], axis=-1)
                      + theta[:, None, None, 4:6])
            theta = theta[:, 6:]
        if self.lattice:
            points = keras.ops.reshape(theta, (-1, self.lattice, self.lattice, 2))
            w = self.lattice_weights
            motion += keras.ops.einsum("yi,bijc,xj->byxc", w, points, w)
        return motion


class MaskNet(keras.Model):
    """`M(x_s, z) -> confidence` [B, H, W, 1] in (0, 1). It never sees the target."""

    def __init__(self, config: FVAEConfig, **kwargs):
        super().__init__(**kwargs)
        self.body = ConditionedDecoder(config, 1)

    def call(self, inputs, training=False):
        source, z = inputs
        return keras.ops.sigmoid(self.body((z, source), training=training))


class PixelDecoder(keras.Model):
    """The VAE baseline's decoder: same architecture, RGB out in [-1, 1].

    `config.vae_decoder` "z_only" (the paper's VAE): it decodes `z` alone and
    ignores the source; "source_unet": it also sees the source, at every scale
    with `config.source_skips`, a conditional U-Net that can copy source
    pixels (a stronger baseline than the paper's).
    """

    def __init__(self, config: FVAEConfig, **kwargs):
        super().__init__(**kwargs)
        self.body = ConditionedDecoder(config, 3, use_source=config.vae_decoder == "source_unet")

    def call(self, inputs, training=False):
        return keras.ops.tanh(self.body(inputs, training=training))
