"""Training: the loop and its step, evaluation and run state; run directories,
checkpoints and model loading; summaries; latent statistics."""
