"""Tests for flow upsampling (warp.flow_upsampling: identity exactness, a translation
oracle (cv2)) and its comparison with pixel upsampling (edit.upsampling: sharpness)."""

import cv2
import numpy as np
import skimage.data
import tensorflow as tf

from fvae_tf.edit import upsampling
from fvae_tf.warp import flow_upsampling, sampler


def _hr_image(size=256) -> np.ndarray:
    """float32 [1, size, size, 3] in [-1, 1]: a detailed real picture."""
    image = cv2.resize(skimage.data.astronaut()[:400, 60:460], (size, size),
                       interpolation=cv2.INTER_AREA)
    return (image.astype(np.float32) / 127.5 - 1.0)[None]


def test_identity_field_returns_the_high_resolution_crop_exactly():
    hr = _hr_image()
    identity = sampler.identity_grid(64, 64)[None]
    out = flow_upsampling.warp(hr, identity).numpy()
    assert np.array_equal(out, hr)


def test_upsampled_translation_matches_cv2():
    # A constant shift of dx normalized units is a shift of dx * S / 2 pixels
    # at every resolution; cv2.warpAffine computes it on the high-res image.
    hr = _hr_image()
    delta = np.array([0.04, -0.025], np.float32)
    coords = sampler.identity_grid(64, 64)[None] + delta
    out = flow_upsampling.warp(hr, coords).numpy()[0]
    shift = delta * 256 / 2
    oracle = cv2.warpAffine(hr[0], np.array([[1, 0, shift[0]], [0, 1, shift[1]]], np.float64),
                            (256, 256), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REPLICATE)
    # cv2 quantizes positions to 1/32 px; both read the same pixels.
    assert np.abs(out - oracle).max() < 0.05


def test_flow_upsampling_is_sharper_than_pixel_upsampling():
    hr = _hr_image()
    low = tf.image.resize(hr, (64, 64), antialias=True)
    rng = np.random.default_rng(0)
    smooth = cv2.GaussianBlur(rng.normal(0, 1, (64, 64, 2)).astype(np.float32), (0, 0), 6)
    coords = sampler.identity_grid(64, 64)[None] + 0.03 * smooth / np.abs(smooth).max()
    result = upsampling.compare(low, hr, coords)
    assert result.flow.shape == result.pixel.shape == hr.shape
    # The flow output keeps most of the crop's detail (bilinear reads between
    # pixels soften it a little: 0.75 here); the pixel output is a 4x blow-up.
    assert 0.6 < result.flow_sharpness < 1.0
    assert result.pixel_sharpness < 0.25
    # With the identity field the flow output is the source itself: ratio 1.
    identity = upsampling.compare(low, hr, sampler.identity_grid(64, 64)[None])
    assert identity.flow_sharpness == 1.0
