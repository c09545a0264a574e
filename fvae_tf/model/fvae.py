"""The FVAE (paper section 3), its confidence-mask stage, and the VAE baseline.

Batches are dicts with "source" and "target", float32 [B, H, W, 3] in [-1, 1]
(the input pipeline's layout), and optionally "source_expression" and
"target_expression", int32 [B] expression ids (read with `analogy_share`).
"""

from typing import NamedTuple

import keras
import tensorflow as tf

from fvae_tf.expressions import EXPRESSIONS
from fvae_tf.model import analogy, losses
from fvae_tf.warp import sampler
from fvae_tf.model.config import FVAEConfig
from fvae_tf.model.networks import Encoder, FlowDecoder, MaskNet, PixelDecoder


class FlowOutput(NamedTuple):
    """What one forward pass of the FVAE produces."""

    coords: tf.Tensor  # [B, H, W, 2], normalized (x, y) sampling coordinates in [-1, 1]
    warped: tf.Tensor  # [B, H, W, 3], x_hat = S(x_s, coords)
    mu: tf.Tensor  # [B, latent]
    log_var: tf.Tensor  # [B, latent]
    global_motion: tf.Tensor | None = None  # [B, H, W, 2], the global part of coords


class _PairAutoencoder(keras.Model):
    """Shared machinery: encode the target, decode with the source, train on eq. 1.

    Subclasses define `decode(z, source) -> (output image, coords or None,
    global motion or None)`
    and may add loss terms (`extra_losses`). Training steps live in
    `fvae_tf.train.step`.
    """

    def __init__(self, config: FVAEConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.encoder = Encoder(config)
        self.noise_seed = keras.random.SeedGenerator(config.seed)

    def build_for_inference(self) -> None:
        """Creates every variable by one pass on zeros (needed before restoring)."""
        zeros = tf.zeros([1, self.config.image_size, self.config.image_size, 3])
        self.compute_losses({"source": zeros, "target": zeros}, training=False)

    def encode(self, images: tf.Tensor) -> tf.Tensor:
        """The deterministic latent `mu` of E(images), [B, latent]."""
        return self.encoder(images, training=False)[0]

    def sample_latent(self, mu: tf.Tensor, log_var: tf.Tensor, training: bool) -> tf.Tensor:
        """Eq. 2's reparameterisation in training; `mu` otherwise."""
        if not training:
            return mu
        eps = keras.random.normal(keras.ops.shape(mu), seed=self.noise_seed)
        return mu + keras.ops.exp(0.5 * log_var) * eps

    def forward(self, source, target, training: bool, expressions=None) -> FlowOutput:
        """Encodes the target and decodes with the source.

        In training with `config.analogy_share` and `expressions` (source and
        target expression ids, int32 [B] each), that share of the pairs decodes
        Algorithm 1's latent of the source instead (`analogy.substitute`).
        """
        mu, log_var = self.encoder(target, training=training)
        z = self.sample_latent(mu, log_var, training)
        if training and self.config.analogy_share > 0 and expressions is not None:
            mu_source = self.encoder(source, training=training)[0]
            z = analogy.substitute(z, mu_source, mu, *expressions, len(EXPRESSIONS),
                                   self.config.analogy_share)
        output, coords, motion = self.decode(z, source, training=training)
        return FlowOutput(coords, output, mu, log_var, motion)

    def call(self, inputs, training=False):
        source, target = inputs
        return self.forward(source, target, training)

    def compute_losses(self, batch, training: bool) -> tuple[dict, FlowOutput]:
        expressions = ((batch["source_expression"], batch["target_expression"])
                       if "source_expression" in batch else None)
        out = self.forward(batch["source"], batch["target"], training, expressions)
        terms = {"rec": self.reconstruction_loss(batch, out),
                 "kl": losses.kl_divergence(out.mu, out.log_var)}
        terms.update(self.extra_losses(batch, out))
        terms["loss"] = losses.total_loss(terms["rec"], terms["kl"], terms.get("flow", 0.0),
                                          self.config.beta, self.config.flow_weight)
        if "supervision" in terms:
            terms["loss"] += self.config.flow_supervision * terms["supervision"]
        if "landmarks" in terms:
            terms["loss"] += self.config.landmark_supervision * terms["landmarks"]
        return terms, out

    def reconstruction_loss(self, batch, out: FlowOutput) -> tf.Tensor:
        """The paper's L1 L_rec. Decoded pixels keep it whatever `config.photometric`
        says: census and SSIM are blind to brightness and colour, which a warp
        copies from the source but a pixel decoder must produce."""
        return losses.reconstruction_l1(batch["target"], out.warped)

    def extra_losses(self, batch, out: FlowOutput) -> dict:
        return {}


class FVAE(_PairAutoencoder):
    """Flow VAE: `x_hat = S(x_s, D(z, x_s))`, z from E(x_t); loss eq. 1."""

    def __init__(self, config: FVAEConfig, **kwargs):
        super().__init__(config, **kwargs)
        self.decoder = FlowDecoder(config)

    def decode(self, z, source, training=False):
        coords, motion = self.decoder((z, source), training=training, with_global=True)
        return sampler.bilinear_sample(source, coords), coords, motion

    def reconstruction_loss(self, batch, out: FlowOutput) -> tf.Tensor:
        """L_rec of the warp, on `config.multiscale_levels` pyramid levels."""
        return losses.warp_reconstruction(batch["target"], batch["source"], out.coords,
                                          self.config.photometric, self.config.multiscale_levels,
                                          self.config.ssim_alpha, self.config.photometric_trim,
                                          self.config.census_softness,
                                          self.config.census_contrast)

    def extra_losses(self, batch, out: FlowOutput) -> dict:
        """L_flow (eq. 6) and, opted in, two non-paper terms: with
        `config.flow_supervision`, "supervision" (`losses.flow_supervision`)
        against the batch's flow labels: "gt_coords" and "gt_visibility"
        (synthetic data), else "teacher_coords" and "teacher_visibility" (a
        dataset with a teacher flow); with `config.landmark_supervision`,
        "landmarks" (`losses.landmark_supervision`) at the batch's
        "target_landmarks" and "source_landmarks".

        With `config.global_affine` or `global_lattice`, L_flow sees the field
        without its global motion: first differences of a scaling are not zero,
        so eq. 6 would pull every scaling between the two crops towards none
        (README, "global motion under the flow")."""
        field = out.coords if out.global_motion is None else out.coords - out.global_motion
        terms = {"flow": losses.flow_coherence(field, batch["target"],
                                               self.config.coherence_sigma,
                                               self.config.coherence_window,
                                               order=self.config.coherence_order)}
        labels = [prefix for prefix in ("gt", "teacher") if f"{prefix}_coords" in batch]
        if self.config.flow_supervision > 0 and labels:
            terms["supervision"] = losses.flow_supervision(
                out.coords, batch[f"{labels[0]}_coords"], batch[f"{labels[0]}_visibility"])
        if self.config.landmark_supervision > 0 and "target_landmarks" in batch:
            terms["landmarks"] = losses.landmark_supervision(
                out.coords, batch["target_landmarks"], batch["source_landmarks"])
        return terms

    def decode_flow(self, z: tf.Tensor, source: tf.Tensor) -> tf.Tensor:
        """Inference: D(z, x_s), [B, H, W, 2] normalized sampling coordinates."""
        return self.decoder((z, source), training=False)

    def warp(self, source: tf.Tensor, z: tf.Tensor) -> tf.Tensor:
        """Inference: S(x_s, D(z, x_s)), [B, H, W, 3]."""
        return sampler.bilinear_sample(source, self.decode_flow(z, source))


class VAE(_PairAutoencoder):
    """The VAE baseline: same encoder, the decoder predicts RGB.

    `config.vae_decoder` "z_only" is the paper's (the output depends on z
    alone, the source is ignored); "source_unet" also sees the source.
    """

    def __init__(self, config: FVAEConfig, **kwargs):
        super().__init__(config, **kwargs)
        self.decoder = PixelDecoder(config)

    def decode(self, z, source, training=False):
        return self.decoder((z, source), training=training), None, None

    def generate(self, source: tf.Tensor, z: tf.Tensor) -> tf.Tensor:
        """Inference: the decoded image for latent z, [B, H, W, 3]."""
        return self.decoder((z, source), training=False)


def shown_in_frame(coords: tf.Tensor, source_frame: tf.Tensor, target_frame: tf.Tensor
                   ) -> tf.Tensor:
    """Where both photos show the scene at a warp's two ends: [B, H, W, 1] in [0, 1].

    A crop that reaches past its photo's edge replicates the edge there
    (`alignment.photo_coverage` is 0), and so does the warp past the crop's
    own edge. A target pixel there is no content at all; a source read there
    shows nothing of the target. So the factor is the target's frame times
    the source's frame read at `coords` with zeros outside the crop.

    Args:
      coords: [B, H, W, 2] target-to-source sampling coordinates.
      source_frame, target_frame: [B, H, W, 1] photo coverage of each crop.
    """
    inside = sampler.bilinear_sample(source_frame, coords, border=sampler.Border.ZEROS)
    return tf.cast(target_frame, inside.dtype) * inside


class ConfidenceModel(keras.Model):
    """Stage two (paper 3.2): trains M on eq. 7's labels with E and D frozen."""

    def __init__(self, fvae: FVAE, **kwargs):
        super().__init__(**kwargs)
        self.fvae = fvae
        self.fvae.trainable = False
        self.mask_net = MaskNet(fvae.config)

    def build_for_inference(self) -> None:
        """Creates every variable by one pass on zeros (needed before restoring)."""
        zeros = tf.zeros([1, self.fvae.config.image_size, self.fvae.config.image_size, 3])
        self.compute_loss_and_outputs({"source": zeros, "target": zeros}, training=False)

    def confidence(self, source: tf.Tensor, z: tf.Tensor) -> tf.Tensor:
        """Inference: M(x_s, z), [B, H, W, 1] in (0, 1); see `frame_factor`."""
        return self.mask_net((source, z), training=False)

    def frame_factor(self, coords: tf.Tensor, source_frame: tf.Tensor,
                     target_frame: tf.Tensor | None = None) -> tf.Tensor:
        """What M is multiplied by for a warp `coords`: [B, H, W, 1].

        With the config's `mask_frame`, `shown_in_frame` of the photo frames
        [B, H, W, 1] (`alignment.photo_coverage`); at inference there is no
        target photo, and None counts its frame as 1. Without it, 1.
        """
        source_frame = tf.convert_to_tensor(source_frame, coords.dtype)
        if not self.fvae.config.mask_frame:
            return tf.ones_like(source_frame)
        if target_frame is None:
            target_frame = tf.ones_like(source_frame)
        return shown_in_frame(coords, source_frame, target_frame)

    def label(self, target: tf.Tensor, warped: tf.Tensor) -> tf.Tensor:
        """Eq. 7's labels of a warp, with the run's label settings, [B, H, W, 1]."""
        config = self.fvae.config
        return losses.mask_label(target, warped, config.mask_label_norm,
                                 config.mask_label_quantile, config.mask_label_distance)

    def compute_loss_and_outputs(self, batch, training: bool):
        """Returns (eq. 8 loss, confidence, eq. 7 label, warped).

        The loss is eq. 8 as the paper has it. With the config's `mask_frame`
        and a batch that carries "source_frame" and "target_frame"
        (`input_pipeline.make_dataset` of a dataset whose manifest
        `has_frame`), the confidence and the label returned are both
        multiplied by `shown_in_frame`: geometry, not something to learn.
        """
        z = self.fvae.encode(batch["target"])
        coords = self.fvae.decode_flow(z, batch["source"])
        warped = sampler.bilinear_sample(batch["source"], coords)
        label = self.label(batch["target"], warped)
        confidence = self.mask_net((batch["source"], z), training=training)
        loss = losses.mask_loss(confidence, label)
        if "source_frame" in batch:
            frame = self.frame_factor(coords, batch["source_frame"], batch["target_frame"])
            confidence, label = confidence * frame, label * frame
        return loss, confidence, label, warped
