"""Batched distortion ops, one module per ARNIQA group.

Each op: ``op(x, param, generator=None)`` with ``x (B,3,H,W)`` float32 in [0,1] and ``param (B,)`` the level's
parameter value per sample; returns ``(B,3,H,W)`` float32, *not* clipped (the bank clips). Use
:func:`iqa_bench.distortions.apply` for validated, clipped, dtype-preserving calls.
"""

from .blur import gaussian_blur, lens_blur, motion_blur
from .brightness import brighten, darken, mean_shift
from .color import color_diffusion, color_saturation1, color_saturation2, color_shift
from .compression import jpeg, jpeg2000
from .noise import impulse_noise, multiplicative_noise, white_noise, white_noise_cc
from .sharpness import high_sharpen, linear_contrast_change, non_linear_contrast_change
from .spatial import color_block, jitter, non_eccentricity_patch, pixelate, quantization

__all__ = [
    "brighten",
    "color_block",
    "color_diffusion",
    "color_saturation1",
    "color_saturation2",
    "color_shift",
    "darken",
    "gaussian_blur",
    "high_sharpen",
    "impulse_noise",
    "jitter",
    "jpeg",
    "jpeg2000",
    "lens_blur",
    "linear_contrast_change",
    "mean_shift",
    "motion_blur",
    "multiplicative_noise",
    "non_eccentricity_patch",
    "non_linear_contrast_change",
    "pixelate",
    "quantization",
    "white_noise",
    "white_noise_cc",
]
