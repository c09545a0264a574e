"""One training step (paper 5.4): Adam with gradient clipping by value, the
forward pass with its loss terms, and the `tf.distribute` strategies.

Several replicas: each replica's loss is divided by the replica count and
Keras sums the gradients. Keras clips each replica's gradient before that
sum, so with R replicas the clipped sum is bounded by R * clip_value.
"""

import enum

import keras
import tensorflow as tf

from fvae_tf.model.config import FVAEConfig
from fvae_tf.model.fvae import ConfidenceModel
from fvae_tf.train.weight_average import WeightAverage


class StrategyKind(str, enum.Enum):
    """`tf.distribute` strategies."""

    DEFAULT = "default"  # one device
    MIRRORED = "mirrored"  # the GPUs of one machine
    MULTI_WORKER = "multi_worker"  # several machines, from TF_CONFIG


def make_strategy(kind: StrategyKind | str, devices: list[str] | None = None
                  ) -> tf.distribute.Strategy:
    """Returns the strategy `kind`.

    Args:
      kind: which strategy.
      devices: MIRRORED only: its devices (default: all GPUs, else the CPU).
    """
    kind = StrategyKind(kind)
    if kind is StrategyKind.MIRRORED:
        return tf.distribute.MirroredStrategy(devices)
    if kind is StrategyKind.MULTI_WORKER:
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this worker writes the run directory (always, outside multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    cluster = resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster)


COSINE_FLOOR = 0.05  # the cosine schedule's last learning rate, as a share of the first


def make_optimizer(config: FVAEConfig, variables: list) -> keras.optimizers.Optimizer:
    """Adam with gradient clipping by value (paper 5.4), its slots built for `variables`.

    With `precision="mixed_float16"` Adam is wrapped in Keras' dynamic
    `LossScaleOptimizer`: the loss is scaled up before the backward pass (the
    training step calls `scale_loss`) so that float16 gradients do not
    underflow, and each gradient is scaled back before clipping; a step whose
    gradients overflow is skipped and the scale halved. bfloat16 has float32's
    range and needs no scaling.

    `lr_schedule="cosine"` decays the learning rate along half a cosine from
    `learning_rate` at step 0 to 1/20 of it at `num_steps` (the schedule reads
    the optimizer's step count, which checkpoints keep, so a resumed run
    continues on the curve). The slots must exist before a checkpoint restore
    can fill them.
    """
    learning_rate = config.learning_rate
    if config.lr_schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=config.num_steps, alpha=COSINE_FLOOR)
    optimizer = keras.optimizers.Adam(learning_rate, beta_1=config.adam_beta1,
                                      clipvalue=config.clip_value)
    if config.precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(variables)
    return optimizer


def forward(model: keras.Model, batch: dict, training: bool) -> tuple[dict, dict]:
    """Runs `model` on a batch of pairs.

    Args:
      model: an FVAE, a VAE or the mask stage's `ConfidenceModel`.
      batch: "source", "target" [B, H, W, 3] in [-1, 1].
      training: whether layers run in training mode (batch-norm, sampling noise).

    Returns:
      (loss terms, pictures). Terms: "loss" and, for the FVAE/VAE, the terms of
      `compute_losses`. Pictures: "output" [B, H, W, 3]; FVAE "coords"
      [B, H, W, 2]; mask stage "label" and "confidence" [B, H, W, 1].
    """
    if isinstance(model, ConfidenceModel):
        loss, confidence, label, warped = model.compute_loss_and_outputs(batch, training)
        return {"loss": loss}, {"output": warped, "label": label, "confidence": confidence}
    terms, out = model.compute_losses(batch, training)
    views = {"output": out.warped}
    if out.coords is not None:
        views["coords"] = out.coords
    return terms, views


def make_train_step(strategy: tf.distribute.Strategy, model: keras.Model,
                    optimizer: keras.optimizers.Optimizer,
                    average: WeightAverage | None = None):
    """A tf.function: distributed batch -> loss terms averaged over the replicas.

    It updates `model`'s trainable variables (for the mask stage, M's only)
    and then, if given, their moving `average`. With the model's
    `config.jit_compile` the step is compiled with XLA.
    """
    variables = model.trainable_variables
    config = model.fvae.config if isinstance(model, ConfidenceModel) else model.config

    def replica_step(batch):
        with tf.GradientTape() as tape:
            terms = forward(model, batch, training=True)[0]
            # scale_loss: the loss scale of mixed float16 (make_optimizer), else 1.
            scaled = optimizer.scale_loss(terms["loss"] / strategy.num_replicas_in_sync)
        optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return terms

    @tf.function(jit_compile=config.jit_compile)
    def train_step(batch):
        terms = strategy.run(replica_step, args=(batch,))
        if average is not None:
            average.update()
        return {name: strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
                for name, value in terms.items()}

    return train_step
