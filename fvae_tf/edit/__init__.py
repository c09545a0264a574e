"""Editing (Algorithm 1), interpolation (Algorithm 2), confidence blending, paste-back."""
