"""Editing (Algorithm 1), interpolation (Algorithm 2), confidence blending, photos,
paste-back, flow- vs pixel-domain upsampling."""
