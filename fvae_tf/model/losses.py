"""FVAE losses (paper eq. 1-8).

Every loss sums over its per-example terms (pixels, latent dimensions,
neighbour pairs) as the equations write them, and averages over the batch.
"""

import enum

import tensorflow as tf

from fvae_tf.warp import sampler

# Keeps log() finite in the cross-entropy.
_LOG_EPS = 1e-7


def _safe_norm(vectors: tf.Tensor) -> tf.Tensor:
    """Euclidean norm over the last axis, with gradient 0 (not NaN) at 0."""
    squared = tf.reduce_sum(tf.square(vectors), axis=-1)
    nonzero = squared > 0
    root = tf.sqrt(tf.where(nonzero, squared, tf.ones_like(squared)))
    return tf.where(nonzero, root, tf.zeros_like(root))


def _pixel_distance(a: tf.Tensor, b: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """||a - b|| in pixels of a height x width image, for normalized (x, y) points [..., 2].

    x spans W/2 pixels per normalized unit and y H/2; `b` is cast to `a`'s dtype.
    """
    scale = tf.constant([width / 2.0, height / 2.0], a.dtype)
    return _safe_norm((a - tf.cast(b, a.dtype)) * scale)


def reconstruction_l1(target: tf.Tensor, output: tf.Tensor) -> tf.Tensor:
    """L_rec: L1 distance between `x_t` and `x_hat`, [B, H, W, C] each."""
    return tf.reduce_mean(tf.reduce_sum(tf.abs(target - output), axis=[1, 2, 3]))


# SSIM constants (Wang et al. 2004) for images in [-1, 1] (data range 2).
_SSIM_C1 = (0.01 * 2.0) ** 2
_SSIM_C2 = (0.03 * 2.0) ** 2
# Ternary census (Meister et al. 2018, UnFlow): the distance scale, and the contrast at
# which the soft sign reaches 1/sqrt(2), for images in [-1, 1]. UnFlow's images are grey
# levels 0-255 with a soft-sign constant 0.81, so its contrast is 0.9 grey levels:
# UNFLOW_CENSUS_SOFTNESS here. CENSUS_SOFTNESS, the presets', is UnFlow's constant without
# that rescaling: nearly linear over a face's local contrasts (README: values the paper lost).
_CENSUS_DIST = 0.1
_CENSUS_WINDOW = 7  # L_rec's census neighbourhood, and that of its contrast weight
CENSUS_SOFTNESS = 0.9
UNFLOW_CENSUS_SOFTNESS = 0.9 * 2.0 / 255.0


def _box_mean(images: tf.Tensor, window: int) -> tf.Tensor:
    """Mean over `window` x `window` neighbourhoods, [B, H, W, C] -> same shape.

    Borders are mirrored with the edge pixel repeated (numpy/scipy 'symmetric',
    which is scipy.ndimage's and skimage's 'reflect').
    """
    r = window // 2
    padded = tf.pad(images, [[0, 0], [r, r], [r, r], [0, 0]], mode="SYMMETRIC")
    return tf.nn.avg_pool2d(padded, window, 1, "VALID")


def ssim_map(a: tf.Tensor, b: tf.Tensor, window: int = 3) -> tf.Tensor:
    """Per-pixel, per-channel SSIM with uniform `window` x `window` windows.

    Population (1/N) variances and covariance, C1 = (0.01 L)^2, C2 = (0.03 L)^2
    with L = 2 for images in [-1, 1]: skimage's `structural_similarity(...,
    win_size=window, use_sample_covariance=False, data_range=2, full=True)`.

    Args:
      a, b: [B, H, W, C] images in [-1, 1].

    Returns:
      [B, H, W, C], 1 where the images agree.
    """
    mu_a, mu_b = _box_mean(a, window), _box_mean(b, window)
    var_a = _box_mean(a * a, window) - mu_a**2
    var_b = _box_mean(b * b, window) - mu_b**2
    cov = _box_mean(a * b, window) - mu_a * mu_b
    return ((2 * mu_a * mu_b + _SSIM_C1) * (2 * cov + _SSIM_C2)) / (
        (mu_a**2 + mu_b**2 + _SSIM_C1) * (var_a + var_b + _SSIM_C2))


def census_distance(a: tf.Tensor, b: tf.Tensor, window: int = _CENSUS_WINDOW,
                    softness: float = CENSUS_SOFTNESS) -> tf.Tensor:
    """Soft ternary census distance per pixel (UnFlow), [B, H, W, 3] -> [B, H, W, 1].

    Each image becomes grey g = mean of RGB; each neighbour q of p in the
    `window` x `window` patch gives t(q) = d / sqrt(softness^2 + d^2) with
    d = g(q) - g(p) (a soft sign of the local contrast, blind to a gain or an
    offset of the lighting where |d| is well above `softness`); the distance
    sums (t_a - t_b)^2 / (0.1 + (t_a - t_b)^2) over the neighbours. Borders
    are mirrored as in `_box_mean`. `softness` is in the images' [-1, 1]
    units: UnFlow's is `UNFLOW_CENSUS_SOFTNESS`.
    """
    r = window // 2

    def transform(images):
        grey = tf.reduce_mean(images, axis=-1, keepdims=True)
        padded = tf.pad(grey, [[0, 0], [r, r], [r, r], [0, 0]], mode="SYMMETRIC")
        patches = tf.image.extract_patches(padded, [1, window, window, 1], [1, 1, 1, 1],
                                           [1, 1, 1, 1], "VALID")
        d = patches - grey
        return d / tf.sqrt(softness**2 + tf.square(d))

    diff = tf.square(transform(a) - transform(b))
    return tf.reduce_sum(diff / (_CENSUS_DIST + diff), axis=-1, keepdims=True)


def contrast_weight(images: tf.Tensor, window: int, floor: float) -> tf.Tensor:
    """v / (v + floor^2) per pixel, [B, H, W, 3] -> [B, H, W, 1]; v the grey variance.

    Not in the paper. v is the population variance of the grey level (mean of
    RGB) over the `window` x `window` neighbourhood (borders as `_box_mean`),
    so the weight is near 1 where the local contrast (its standard deviation)
    is well above `floor` and near 0 on flat skin or background. The idea:
    census reads shading a few grey levels deep as full texture, and where the
    surface deforms that shading does not move with it; weighted, such pixels
    would take their flow from L_flow and the global motion. On the demo it
    left the flat pixels' flow error where it was (README), so it is opt-in.
    """
    grey = tf.reduce_mean(images, axis=-1, keepdims=True)
    variance = tf.maximum(_box_mean(grey * grey, window) - tf.square(_box_mean(grey, window)), 0.0)
    return variance / (variance + floor**2)


class Photometric(str, enum.Enum):
    """Per-pixel image distances for L_rec."""

    L1 = "l1"  # the paper: |x_t - x_hat| summed over RGB
    SSIM_L1 = "ssim_l1"  # alpha (1 - SSIM) / 2 + (1 - alpha) |x_t - x_hat|, per channel
    CENSUS = "census"  # soft ternary census, 7 x 7 (`census_distance`)


def photometric_map(target: tf.Tensor, output: tf.Tensor, kind: Photometric | str,
                    ssim_alpha: float = 0.85, census_softness: float = CENSUS_SOFTNESS,
                    census_contrast: float = 0.0) -> tf.Tensor:
    """Per-pixel distance [B, H, W, 1] between `x_t` and `x_hat` ([B, H, W, 3] in [-1, 1]).

    Summed over channels, so L1's map is ||x_t(p) - x_hat(p)||_1 as in eq. 7.
    SSIM_L1 is the usual unsupervised-flow term (Godard et al. 2017) with 3 x 3
    windows, each channel's (1 - SSIM) / 2 clipped to [0, 1]. CENSUS is
    `census_distance` with `census_softness`, times the target's
    `contrast_weight` over the census window with floor `census_contrast`
    when that is above 0.
    """
    kind = Photometric(kind)
    if kind is Photometric.CENSUS:
        distance = census_distance(target, output, softness=census_softness)
        if census_contrast > 0:
            distance *= contrast_weight(target, _CENSUS_WINDOW, census_contrast)
        return distance
    l1 = tf.abs(target - output)
    if kind is Photometric.SSIM_L1:
        dissimilarity = tf.clip_by_value((1.0 - ssim_map(target, output)) / 2.0, 0.0, 1.0)
        l1 = ssim_alpha * dissimilarity + (1.0 - ssim_alpha) * l1
    return tf.reduce_sum(l1, axis=-1, keepdims=True)


def _per_image_quantile(distances: tf.Tensor, quantile: float) -> tf.Tensor:
    """Each image's `quantile` of its per-pixel `distances` [B, H, W, 1], as [B, 1, 1, 1].

    The value at rank int(quantile * N) of the N sorted pixels (the largest when 1).
    """
    flat = tf.sort(tf.reshape(distances, [tf.shape(distances)[0], -1]), axis=-1)
    count = flat.shape[-1]
    return flat[:, min(count - 1, int(quantile * count))][:, None, None, None]


def trim_gradient(distances: tf.Tensor, quantile: float) -> tf.Tensor:
    """`distances` [B, H, W, 1] unchanged in value, without gradient above each image's quantile.

    Not in the paper: the pixels a warp cannot reproduce (teeth or eye whites
    the source does not show) have the largest photometric distances, and
    their gradient pulls the flow toward whatever looks alike elsewhere. With
    the top (1 - quantile) of each image's pixels cut off, the flow follows the
    pixels the source does show. 0 keeps every gradient.
    """
    if quantile <= 0:
        return distances
    threshold = tf.stop_gradient(_per_image_quantile(distances, quantile))
    return tf.where(distances > threshold, tf.stop_gradient(distances), distances)


def _pool(images: tf.Tensor, factor: int) -> tf.Tensor:
    return tf.nn.avg_pool2d(images, factor, factor, "VALID") if factor > 1 else images


def image_reconstruction(target: tf.Tensor, output: tf.Tensor,
                         kind: Photometric | str = Photometric.L1,
                         ssim_alpha: float = 0.85, trim: float = 0.0,
                         census_softness: float = CENSUS_SOFTNESS,
                         census_contrast: float = 0.0) -> tf.Tensor:
    """L_rec of an output image: `photometric_map` summed over pixels, batch mean.

    With `kind=L1` and no `trim` it is the paper's L_rec (`reconstruction_l1`);
    `trim` is `trim_gradient`'s quantile.
    """
    distances = trim_gradient(
        photometric_map(target, output, kind, ssim_alpha, census_softness, census_contrast),
        trim)
    return tf.reduce_mean(tf.reduce_sum(distances, axis=[1, 2, 3]))


def warp_reconstruction(target: tf.Tensor, source: tf.Tensor, coords: tf.Tensor,
                        kind: Photometric | str = Photometric.L1, levels: int = 1,
                        ssim_alpha: float = 0.85, trim: float = 0.0,
                        census_softness: float = CENSUS_SOFTNESS,
                        census_contrast: float = 0.0) -> tf.Tensor:
    """L_rec of the warp S(x_s, coords) against x_t, optionally on an image pyramid.

    At level l (0 to `levels` - 1), x_s and x_t are 2^l x 2^l box-averaged,
    the coordinates likewise (the normalized convention is resolution-free),
    and the coarse source is sampled at the coarse coordinates. A coarse pixel
    spans 2^l fine ones, so bilinear sampling there gives the flow a gradient
    from 2^l pixels away: a flow that starts at the identity sees a mouth
    corner several pixels off. Level l's `image_reconstruction` is weighted
    4^l, so every level counts as much as the full image. `levels=1` is the
    warp compared at full size only, as in the paper.

    Args:
      target, source: [B, H, W, 3] in [-1, 1]; H and W divisible by 2^(levels-1).
      coords: [B, H, W, 2] normalized sampling coordinates (target to source).
      trim: `trim_gradient`'s quantile, per level.
    """
    total = 0.0
    for level in range(levels):
        factor = 2**level
        warped = sampler.bilinear_sample(_pool(source, factor), _pool(coords, factor))
        total += float(factor * factor) * image_reconstruction(
            _pool(target, factor), warped, kind, ssim_alpha, trim, census_softness,
            census_contrast)
    return total


def flow_supervision(coords: tf.Tensor, gt_coords: tf.Tensor,
                     visibility: tf.Tensor) -> tf.Tensor:
    """Not in the paper: end-point error against ground-truth coordinates, in pixels.

    sum over visible pixels of ||coords - gt_coords|| (pixel units, x by W/2
    and y by H/2), batch mean. For synthetic training data only.

    Args:
      coords, gt_coords: [B, H, W, 2] normalized (x, y).
      visibility: [B, H, W, 1], 1 where the target pixel is seen in the source.
    """
    error = _pixel_distance(coords, gt_coords, coords.shape[1], coords.shape[2])
    return tf.reduce_mean(tf.reduce_sum(error * visibility[..., 0], axis=[1, 2]))


def landmark_supervision(coords: tf.Tensor, target_landmarks: tf.Tensor,
                         source_landmarks: tf.Tensor) -> tf.Tensor:
    """Not in the paper: the flow's error at the target's landmarks, in pixels.

    The field read at each target landmark (bilinearly) should be the same
    landmark of the source, since coords map target pixels to source
    positions: sum over the landmarks of ||coords(t_k) - s_k|| (pixel units,
    x by W/2 and y by H/2), batch mean. Sparse labels that every photo with
    dlib landmarks carries (e.g. the London set's 68 points).

    Args:
      coords: [B, H, W, 2] normalized (x, y) sampling coordinates.
      target_landmarks, source_landmarks: [B, K, 2] normalized (x, y).
    """
    at_target = sampler.bilinear_sample(coords, tf.cast(target_landmarks, coords.dtype)[:, :, None])
    error = _pixel_distance(at_target[:, :, 0], source_landmarks, coords.shape[1], coords.shape[2])
    return tf.reduce_mean(tf.reduce_sum(error, axis=1))


def kl_divergence(mu: tf.Tensor, log_var: tf.Tensor) -> tf.Tensor:
    """L_KL (eq. 3): KL(N(mu, exp(log_var)) || N(0, I)), [B, latent] each."""
    terms = 1.0 + log_var - tf.square(mu) - tf.exp(log_var)
    return tf.reduce_mean(-0.5 * tf.reduce_sum(terms, axis=-1))


def flow_coherence(
    coords: tf.Tensor,
    target: tf.Tensor,
    sigma: float,
    window: int = 5,
    align_corners: bool = False,
    order: int = 1,
) -> tf.Tensor:
    """L_flow (eq. 6): edge-aware flow coherence.

    order 1 (the paper's): sum_p sum_{q in N(p)} w(p, q) * ||f(p) - f(q)||, with
    w(p, q) = exp(-||c_t(p) - c_t(q)||^2 / (2 sigma^2)) from the target's RGB
    and N(p) the `window` x `window` neighbourhood centred at p (pairs that
    leave the image are not counted). The flow vector f is the displacement
    `coords - identity`, so the identity warp and any constant shift cost 0;
    the flow may change across the target's colour edges and nowhere else.

    order 2 (not the paper's; UnFlow's second-order smoothness, Meister et al.
    2018, over the same window): sum_p sum_{d} w(p, p+d) w(p, p-d) *
    ||f(p+d) - 2 f(p) + f(p-d)||, d over half of N(p) (d and -d once each).
    Every affine flow costs 0: a small rotation or scaling between two crops
    reaches into flat background instead of being pulled towards a constant.

    Args:
      coords: [B, H, W, 2] normalized sampling coordinates.
      target: [B, H, W, C] target image `x_t`.
      sigma: colour scale, in the images' units.
      window: odd neighbourhood size.
      order: 1 (first differences) or 2 (second differences).

    Returns:
      Scalar, mean over the batch.
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order}")
    height, width = coords.shape[1], coords.shape[2]
    coords = tf.convert_to_tensor(coords)
    flow = coords - tf.cast(sampler.identity_grid(height, width, align_corners), coords.dtype)
    target = tf.cast(target, coords.dtype)
    radius = window // 2

    def shifted(images, dy, dx, reach):
        """images at p + (dy, dx) for every p whose +-reach neighbours lie inside."""
        return images[:, reach[0] + dy:height - reach[0] + dy,
                      reach[1] + dx:width - reach[1] + dx]

    def edge_weight(a, b):
        """w(p, q) from the target's colours at p (in a) and q (in b)."""
        return tf.exp(-tf.reduce_sum(tf.square(a - b), axis=-1) / (2.0 * sigma**2))

    total = 0.0
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if (dy, dx) == (0, 0) or (order == 2 and (dy, dx) < (0, 0)):
                continue  # order 2: d and -d are one term
            if order == 1:
                # p ranges over pixels whose neighbour p + (dy, dx) is inside.
                p = (slice(None), slice(max(0, -dy), height - max(0, dy)),
                     slice(max(0, -dx), width - max(0, dx)))
                q = (slice(None), slice(max(0, dy), height - max(0, -dy)),
                     slice(max(0, dx), width - max(0, -dx)))
                w = edge_weight(target[p], target[q])
                distance = _safe_norm(flow[p] - flow[q])
            else:
                reach = (abs(dy), abs(dx))
                if 2 * reach[0] >= height or 2 * reach[1] >= width:
                    continue  # no pixel has both neighbours inside
                centre = shifted(target, 0, 0, reach)
                w = (edge_weight(centre, shifted(target, dy, dx, reach))
                     * edge_weight(centre, shifted(target, -dy, -dx, reach)))
                distance = _safe_norm(shifted(flow, dy, dx, reach) + shifted(flow, -dy, -dx, reach)
                                      - 2.0 * shifted(flow, 0, 0, reach))
            total += tf.reduce_sum(w * distance, axis=[1, 2])
    return tf.reduce_mean(total)


def mask_label(target: tf.Tensor, warped: tf.Tensor, norm: float,
               quantile: float = 0.0, distance: str = "l1") -> tf.Tensor:
    """Eq. 7: y(p) = 1 - ||x_t(p) - x_hat(p)||_1 / Z, clipped to [0, 1].

    Args:
      target, warped: [B, H, W, 3] in [-1, 1].
      norm: Z; with images in [-1, 1] and 3 channels, 6 is the largest
        possible L1 distance, so y never leaves [0, 1].
      quantile: not in the paper: when in (0, 1], Z is instead, per image,
        this quantile of the distances (the largest when 1; at least 1e-3), so
        the worst-warped pixels get labels near 0 whatever the image's error
        scale. 0 keeps the fixed `norm`.
      distance: the per-pixel distance, a `Photometric` value; "l1" is
        eq. 7's. Not in the paper: "census" is blind to the lighting
        differences that make up most of a good warp's L1 error, so its
        labels single out the content the source lacks (teeth, eye whites);
        its largest value is 48 (7 x 7 neighbours), so it needs a quantile or
        a matching `norm`. Several, joined by "*" ("l1*census"): the product
        of their labels, low where any distance is high.

    Returns:
      [B, H, W, 1] labels (no gradient: they come from the frozen E and D).
    """
    if "*" in distance:
        label = 1.0
        for part in distance.split("*"):
            label *= mask_label(target, warped, norm, quantile, part)
        return label
    distance = photometric_map(target, warped, distance)
    if quantile > 0:
        norm = tf.maximum(_per_image_quantile(distance, quantile), 1e-3)
    return tf.stop_gradient(tf.clip_by_value(1.0 - distance / norm, 0.0, 1.0))


def mask_loss(confidence: tf.Tensor, label: tf.Tensor) -> tf.Tensor:
    """Eq. 8: per-pixel binary cross-entropy, summed over pixels.

    Args:
      confidence: [B, H, W, 1], M's output in (0, 1).
      label: [B, H, W, 1], eq. 7's soft labels in [0, 1].
    """
    c = tf.clip_by_value(confidence, _LOG_EPS, 1.0 - _LOG_EPS)
    bce = -(label * tf.math.log(c) + (1.0 - label) * tf.math.log(1.0 - c))
    return tf.reduce_mean(tf.reduce_sum(bce, axis=[1, 2, 3]))


def total_loss(rec: tf.Tensor, kl: tf.Tensor, flow: tf.Tensor, beta: float,
               flow_weight: float) -> tf.Tensor:
    """Eq. 1: L = L_rec + beta * L_KL + lambda * L_flow."""
    return rec + beta * kl + flow_weight * flow
