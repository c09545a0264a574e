"""Training: the loop, run directories and checkpoints, model loading, summaries, latent statistics."""
