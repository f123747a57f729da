"""Batched ops of the Re-IQA bank (official ``datasets/iqa_distortions.py``; the Re-IQA paper and code).

All ops: ``op(x (B,3,H,W) float32 in [0,1], param (B,), generator) -> (B,3,H,W)`` float32. The official
functions take a PIL (uint8) image and return uint8, almost always by *truncation*; the ops read ``x`` as
``round(x*255)`` where the official code starts from the PIL image and floor their result to 1/255 steps where it
truncates, so outputs sit on the same uint8 grid. Pillow filters are emulated bit-exactly (:mod:`._pil`).

The ops live in four modules along the bank's families; this module gathers them under one name
(``from iqa_bench.distortions.functional import reiqa as R``):

* :mod:`.reiqa_filters`: blur (Gaussian, lens, motion) and sharpening;
* :mod:`.reiqa_color`: colour diffusion/shift/saturation, brightness and contrast;
* :mod:`.reiqa_noise`: noise, denoising and JPEG;
* :mod:`.reiqa_spatial`: colour blocks, pixelation, non-eccentricity, jitter and resize round trips;
* :mod:`._reiqa_common`: the uint8-grid helpers they share.
"""

from __future__ import annotations

from .reiqa_color import (
    brighten,
    color_diffuse,
    color_saturate_hsv,
    color_shift_flat_roll,
    contrast_cubic,
    darken,
    mean_shift,
    saturate_lab,
)
from .reiqa_filters import blur_gauss_pil, blur_lens, blur_motion_line, sharpen_hi, sharpen_hi_official
from .reiqa_noise import (
    compress_jpeg_pil,
    denoise,
    noise_colormap,
    noise_gauss,
    noise_impulse,
    noise_multiplicative,
)
from .reiqa_spatial import (
    COLORBLOCK_PATCH,
    JITTER_ITERATIONS,
    NONECC_PATCH,
    NONECC_RADIUS,
    color_block_u8,
    jitter_cubic,
    non_eccentricity,
    pixelate_pil,
    resize_bicubic,
    resize_bilinear,
    resize_lanczos,
    resize_nearest,
)

__all__ = [
    "COLORBLOCK_PATCH",
    "JITTER_ITERATIONS",
    "NONECC_PATCH",
    "NONECC_RADIUS",
    "blur_gauss_pil",
    "blur_lens",
    "blur_motion_line",
    "brighten",
    "color_block_u8",
    "color_diffuse",
    "color_saturate_hsv",
    "color_shift_flat_roll",
    "compress_jpeg_pil",
    "contrast_cubic",
    "darken",
    "denoise",
    "jitter_cubic",
    "mean_shift",
    "noise_colormap",
    "noise_gauss",
    "noise_impulse",
    "noise_multiplicative",
    "non_eccentricity",
    "pixelate_pil",
    "resize_bicubic",
    "resize_bilinear",
    "resize_lanczos",
    "resize_nearest",
    "saturate_lab",
    "sharpen_hi",
    "sharpen_hi_official",
]
