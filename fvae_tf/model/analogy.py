"""Algorithm 1's latent for training pairs (a departure from the paper: `analogy_share`).

Algorithm 1 edits a face by moving its latent along the mean difference of
two expressions, `E(x_s) + mean(E(x) | target label) - mean(E(x) | source
label)`. Eq. 1 trains the decoder only on `E(x_t)`, so the decoder never
sees the latents it is asked to draw at edit time. `substitute` hands it
some: for a share of the batch's pairs, z becomes the source's latent plus
that direction, with the means taken over the batch's other pairs (sources
and targets, the pair's own two images left out), and L_rec compares the
decoded warp with the real target as before. The means carry no gradient;
the source's latent does, so the encoder too learns latents whose
differences edit.
"""

import tensorflow as tf


def leave_one_out_direction(mu_source: tf.Tensor, mu_target: tf.Tensor,
                            source_labels: tf.Tensor, target_labels: tf.Tensor,
                            num_labels: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Per pair, mean latent of its target label minus that of its source label.

    Means over every image of the batch (each pair's source and target) with
    that label, except the pair's own two images.

    Args:
      mu_source, mu_target: [B, latent] latents of the pairs' images.
      source_labels, target_labels: int [B] expression ids in [0, num_labels).
      num_labels: number of expression ids.

    Returns:
      (direction [B, latent], valid bool [B]): valid where both labels have
      another image in the batch; direction is 0 where not valid.
    """
    mu = tf.stop_gradient(tf.concat([mu_source, mu_target], 0))
    labels = tf.concat([source_labels, target_labels], 0)
    sums = tf.math.unsorted_segment_sum(mu, labels, num_labels)
    counts = tf.math.unsorted_segment_sum(tf.ones_like(labels, mu.dtype), labels, num_labels)
    same = tf.cast(tf.equal(source_labels, target_labels), mu.dtype)[:, None]
    own_source, own_target = tf.split(mu, 2)

    def mean_without_own(label, own_labelled, own_other):
        total = tf.gather(sums, label) - own_labelled - same * own_other
        count = tf.gather(counts, label)[:, None] - 1.0 - same
        return total / tf.maximum(count, 1.0), count[:, 0] > 0

    target_mean, target_valid = mean_without_own(target_labels, own_target, own_source)
    source_mean, source_valid = mean_without_own(source_labels, own_source, own_target)
    valid = target_valid & source_valid
    return tf.where(valid[:, None], target_mean - source_mean, 0.0), valid


def substitute(z: tf.Tensor, mu_source: tf.Tensor, mu_target: tf.Tensor,
               source_labels: tf.Tensor, target_labels: tf.Tensor, num_labels: int,
               share: float) -> tf.Tensor:
    """z [B, latent] with its first `round(share * B)` rows replaced by Algorithm 1's latent.

    Row i becomes `mu_source[i] + leave_one_out_direction(...)[i]` where that
    direction is valid; other rows keep z.
    """
    direction, valid = leave_one_out_direction(mu_source, mu_target, source_labels,
                                               target_labels, num_labels)
    batch = tf.shape(z)[0]
    chosen = tf.range(batch) < tf.cast(tf.round(share * tf.cast(batch, tf.float32)), tf.int32)
    return tf.where((chosen & valid)[:, None], mu_source + tf.cast(direction, mu_source.dtype), z)
