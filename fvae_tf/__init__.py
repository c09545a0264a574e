"""fvae_tf: Flow Variational Autoencoder (Yeh et al., arXiv 1611.09961) in TensorFlow 2 / Keras 3."""
