"""The warp: bilinear sampler S, coordinate conventions, flow upsampling (numpy and TensorFlow only)."""
