"""Sharpness of flow-domain vs pixel-domain upsampling (paper 6.4) on held-out pairs.

For every val pair of a dataset, the trained FVAE decodes D(E(x_t), x_s) at the
model's resolution (the ground-truth target latent, as in Table 1); the warp
is upsampled to the high-resolution crop in the flow domain and, for
comparison, in the pixel domain (bilinear and bicubic). Prints the mean
`metrics.sharpness_ratio` of each against the high-resolution source crop:

    python -m benchmarks.bench_flow_upsampling --checkpoint_dir runs/london \
        --dataset_dir data/london
"""

import numpy as np
import tensorflow as tf
from absl import app, flags

from fvae_tf.data import input_pipeline
from fvae_tf.train import loop
from fvae_tf.warp import flow_upsampling

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint_dir", None, "An FVAE run directory.", required=True)
flags.DEFINE_string("dataset_dir", None, "Its dataset (with high-resolution crops).",
                    required=True)
flags.DEFINE_integer("batch", 16, "Pairs per batch.")

_METHODS = (tf.image.ResizeMethod.BILINEAR, tf.image.ResizeMethod.BICUBIC)


def main(argv):
    del argv
    fvae = loop.load_model(FLAGS.checkpoint_dir)
    data = input_pipeline.make_dataset(FLAGS.dataset_dir, "val", FLAGS.batch, shuffle=False,
                                       flip=False, repeat=False, with_hr=True)
    ratios = {"flow": [], **{f"pixel {m}": [] for m in _METHODS}}
    for batch in data:
        coords = fvae.decode_flow(fvae.encode(batch["target"]), batch["source"])
        for image, image_hr, field in zip(batch["source"], batch["source_hr"], coords):
            for method in _METHODS:
                result = flow_upsampling.compare(image[None], image_hr[None], field[None], method)
                ratios[f"pixel {method}"].append(result.pixel_sharpness)
            ratios["flow"].append(result.flow_sharpness)
    size = batch["source_hr"].shape[1]
    print(f"{len(ratios['flow'])} val pairs, {fvae.config.image_size} -> {size} px; "
          "gradient energy relative to the high-resolution source (mean, min-max):")
    for name, values in ratios.items():
        print(f"  {name:16s} {np.mean(values):.3f} ({np.min(values):.3f}-{np.max(values):.3f})")


if __name__ == "__main__":
    app.run(main)
