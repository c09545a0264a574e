"""Everything before tf.data: image loading, alignment, colour transfer, readers, dataset building, shards, input pipeline."""
