"""FVAE hyper-parameters: one frozen dataclass and named presets.

Values the paper lost are the project's documented defaults (README table);
every field is a flag of the training binaries.
"""

import dataclasses

PHOTOMETRIC = ("l1", "ssim_l1", "census")  # `fvae_tf.model.losses.Photometric` values
FLOW_HEADS = ("atanh", "residual")
VAE_DECODERS = ("z_only", "source_unet")  # `vae_decoder` values
LR_SCHEDULES = ("constant", "cosine")  # `lr_schedule` values
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")  # Keras dtype policies


@dataclasses.dataclass(frozen=True)
class FVAEConfig:
    """Model, loss and training settings. Presets: `get_config(name)`."""

    # --- model (paper 5.3) ---
    image_size: int = 64  # training resolution; a power of two, >= 2 * bottleneck_size
    bottleneck_size: int = 4  # spatial size of the deepest feature map
    base_channels: int = 32  # channels at full resolution; doubled at each halving
    latent_dim: int = 512  # size of z (paper value lost)
    kernel_size: int = 5  # filter size of inner convolutions (paper value lost)
    edge_kernel_size: int = 3  # filter size of the first and last convolutions
    activation: str = "leaky_relu"  # ReLU family; leaky keeps units alive under 0.01 init
    init_stddev: float = 0.01  # truncated-normal weight init (paper 5.3)
    source_skips: bool = True  # decoder also sees source features at every scale
    vae_decoder: str = "z_only"  # VAE baseline: "z_only" (paper: z alone) | "source_unet" (+ x_s)
    # --- losses (eq. 1-8) ---
    beta: float = 1.0  # KL weight (eq. 1)
    flow_weight: float = 1.0  # lambda, flow-coherence weight (eq. 1)
    coherence_sigma: float = 0.1  # colour scale of the edge-aware weight (eq. 6), images in [-1, 1]
    coherence_window: int = 5  # neighbourhood N(p) is window x window (eq. 6)
    mask_label_norm: float = 6.0  # Z of eq. 7: the largest RGB L1 distance in [-1, 1]
    # --- departures from the paper (README table); the defaults are the paper's reading ---
    photometric: str = "l1"  # L_rec's per-pixel distance: "l1" | "ssim_l1" | "census"
    ssim_alpha: float = 0.85  # "ssim_l1": weight of (1 - SSIM) / 2 against L1
    census_softness: float = 0.9  # "census" L_rec's soft-sign contrast (losses.CENSUS_SOFTNESS)
    census_contrast: float = 0.0  # "census" L_rec x v / (v + this^2), v local grey variance; 0: off
    coherence_order: int = 1  # L_flow on first (eq. 6) or second differences (losses.py)
    multiscale_levels: int = 1  # L_rec also on the warp at 1/2, 1/4, ... (1: full size only)
    photometric_trim: float = 0.0  # L_rec: no gradient above this per-image quantile; 0: all
    flow_head: str = "atanh"  # "atanh": tanh(conv + atanh(id)) | "residual": id + s tanh(conv)
    flow_head_scale: float = 0.25  # s of the "residual" head, normalized units (0.25: 1/8 image)
    global_affine: bool = False  # "residual" head on a per-image affine map (networks.py)
    global_lattice: int = 0  # "residual" head on an N x N lattice's smooth field; 0: none
    flow_supervision: float = 0.0  # weight of EPE on the flow labels (truth or teacher); 0: off
    landmark_supervision: float = 0.0  # weight of the flow's error at the landmarks; 0: off
    analogy_share: float = 0.0  # share of each batch decoded from Algorithm 1's latent (analogy.py)
    mask_label_quantile: float = 0.0  # eq. 7's Z per image: this quantile of the error; 0: fixed Z
    mask_label_distance: str = "l1"  # eq. 7's distance: "l1" (paper), "census", "l1*census"...
    mask_frame: bool = False  # M (and eq. 7's label) x the share of the warp inside both photos
    jit_compile: bool = False  # compile the training step with XLA
    precision: str = "float32"  # training: hidden layers' Keras dtype policy (networks.py)
    geometric_jitter: float = 0.0  # one random similarity per training pair (data/jitter.py)
    # --- training (5.4) ---
    learning_rate: float = 2e-4  # Adam (paper value lost)
    adam_beta1: float = 0.5  # Adam beta1 (paper value lost)
    lr_schedule: str = "constant"  # "constant" | "cosine": decay to 1/20 over num_steps
    weight_averaging: float = 0.0  # momentum of the weights' moving average, kept; 0: off
    batch_size: int = 64  # mini-batch (paper value lost)
    clip_value: float = 1.0  # gradient clipping by value (paper value lost)
    num_steps: int = 100_000  # upper bound; early stopping usually ends sooner
    eval_every: int = 1000  # steps between validation passes and checkpoints
    patience: int = 10  # validation passes without improvement before stopping
    seed: int = 0  # weights, sampling noise and data order

    @property
    def num_levels(self) -> int:
        """Number of halvings from image_size down to bottleneck_size."""
        levels = (self.image_size // self.bottleneck_size).bit_length() - 1
        if self.bottleneck_size << levels != self.image_size or levels < 1:
            raise ValueError(
                f"image_size {self.image_size} must be bottleneck_size "
                f"{self.bottleneck_size} times a power of two")
        return levels


# The departures from the paper that the CPU presets use (README: values the paper lost).
_PROJECT_READING = dict(photometric="census", flow_head="residual", global_affine=True,
                        global_lattice=5, jit_compile=True, mask_label_quantile=0.95,
                        mask_label_distance="census", mask_frame=True)

_PRESETS = {
    # SPEC's values, for a GPU.
    "paper": FVAEConfig(),
    # Every test uses this: a tiny model that trains in seconds on a CPU.
    "tiny": FVAEConfig(base_channels=4, latent_dim=8, kernel_size=3, batch_size=8,
                       num_steps=20, eval_every=10, patience=2),
    # The `make demo` budget: a small model that learns the synthetic faces on 2 CPU cores
    # in minutes. With beta 1 the latent stays unused that long. Census photometric term
    # with UnFlow's soft sign (0.9 grey levels, losses.UNFLOW_CENSUS_SOFTNESS; it makes
    # L_rec about ten times larger, hence lambda 5), residual flow head on a global
    # affine map and 5 x 5 lattice, XLA, cosine learning rate: README's tables say why.
    "demo": FVAEConfig(base_channels=8, kernel_size=3, latent_dim=32, batch_size=16,
                       beta=0.1, flow_weight=5.0, census_softness=0.9 * 2.0 / 255.0,
                       learning_rate=5e-4, lr_schedule="cosine",
                       num_steps=2500, eval_every=250, patience=4, **_PROJECT_READING),
    # The London set's 72 training people on 2 CPU cores: the demo's architecture, so the
    # synthetic-trained demo FVAE can start it (--init_from), a lower learning rate for
    # that fine-tuning, and a random similarity per pair so the decoder cannot replay
    # memorised flows of the 144 training pairs (README: without it every run was best
    # at its first evaluation). Census keeps the soft sign 0.9 (FVAEConfig's default):
    # UnFlow's did worse on every London measure (README).
    "london": FVAEConfig(base_channels=8, kernel_size=3, latent_dim=32, batch_size=16,
                         beta=0.1, flow_weight=0.1, learning_rate=2e-4, lr_schedule="cosine",
                         geometric_jitter=0.1, num_steps=3000, eval_every=100, patience=10,
                         **_PROJECT_READING),
}


def preset_names() -> tuple[str, ...]:
    return tuple(_PRESETS)


def get_config(name: str, **overrides) -> FVAEConfig:
    """Returns preset `name` with `overrides` applied.

    Raises:
      ValueError: unknown preset (the message lists the known ones) or field.
    """
    if name not in _PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(_PRESETS)}")
    fields = {f.name for f in dataclasses.fields(FVAEConfig)}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f"unknown config fields: {', '.join(sorted(unknown))}")
    config = dataclasses.replace(_PRESETS[name], **overrides)
    config.num_levels  # validates the geometry early
    for field, allowed in (("photometric", PHOTOMETRIC), ("flow_head", FLOW_HEADS),
                           ("vae_decoder", VAE_DECODERS), ("lr_schedule", LR_SCHEDULES),
                           ("precision", PRECISIONS)):
        if getattr(config, field) not in allowed:
            raise ValueError(f"{field} must be one of {', '.join(allowed)}, "
                             f"got {getattr(config, field)!r}")
    if not set(config.mask_label_distance.split("*")) <= set(PHOTOMETRIC):
        raise ValueError(f"mask_label_distance must be one of {', '.join(PHOTOMETRIC)} or "
                         f"several joined by '*' (their labels' product), "
                         f"got {config.mask_label_distance!r}")
    if (config.global_affine or config.global_lattice) and config.flow_head != "residual":
        raise ValueError("global_affine and global_lattice need flow_head='residual' (the "
                         "residual is added to the global motion)")
    if config.global_lattice == 1 or config.global_lattice < 0:
        raise ValueError(f"global_lattice must be 0 (none) or at least 2 control points per "
                         f"side, got {config.global_lattice}")
    if config.coherence_order not in (1, 2):
        raise ValueError(f"coherence_order must be 1 (eq. 6) or 2 (second differences), "
                         f"got {config.coherence_order}")
    if config.image_size % 2 ** (config.multiscale_levels - 1) or config.multiscale_levels < 1:
        raise ValueError(f"multiscale_levels {config.multiscale_levels} must be at least 1 and "
                         f"2^(levels-1) must divide image_size {config.image_size}")
    if not 0 <= config.photometric_trim < 1:
        raise ValueError(f"photometric_trim must be in [0, 1) (0: every pixel's gradient), "
                         f"got {config.photometric_trim}")
    if not 0 <= config.analogy_share <= 1:
        raise ValueError(f"analogy_share must be in [0, 1] (0: off), got {config.analogy_share}")
    if config.census_softness <= 0:
        raise ValueError(f"census_softness must be above 0, got {config.census_softness}")
    if config.census_contrast < 0:
        raise ValueError(f"census_contrast must be at least 0 (0: off), "
                         f"got {config.census_contrast}")
    if not 0 <= config.weight_averaging < 1:
        raise ValueError(f"weight_averaging must be in [0, 1) (0: off), "
                         f"got {config.weight_averaging}")
    if config.landmark_supervision < 0:
        raise ValueError(f"landmark_supervision must be at least 0 (0: off), "
                         f"got {config.landmark_supervision}")
    if config.geometric_jitter < 0:
        raise ValueError(f"geometric_jitter must be at least 0 (0: none), "
                         f"got {config.geometric_jitter}")
    return config
