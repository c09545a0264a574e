"""The model: config and presets, networks E / D / M, FVAE / VAE / confidence model, losses (eq. 1-8)."""
