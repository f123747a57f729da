"""ARNIQA group "blur": gaublur, lensblur, motionblur (MATLAB fspecial kernels, replicate padding).

All ops: ``x (B,3,H,W)`` float32 in [0,1], ``param (B,)`` -> ``(B,3,H,W)`` float32 (not yet clipped).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._kernels import disk_kernel, gaussian_kernel1d, motion_kernel_table
from ._utils import conv2d_per_sample, conv2d_shared, conv_separable, per_level, randint

__all__ = ["gaussian_blur", "lens_blur", "motion_blur"]


def _gaussian_shared(x: Tensor, sigma: float) -> Tensor:
    k = gaussian_kernel1d(sigma)
    if int((k != 0).sum()) == 1:  # sigma < 0.2: fspecial gives a delta, the official blur is the identity
        return x.clone()
    return conv_separable(x, k.to(x.device))


def gaussian_blur(x: Tensor, sigma: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Gaussian blur, ``fspecial('gaussian', 2*ceil(2s)+1, s)`` applied separably; ``sigma (B,)``."""
    return per_level(x, sigma, _gaussian_shared)


def lens_blur(x: Tensor, radius: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Pill-box blur ``fspecial('disk', r)`` (size 2r+1); ``radius (B,)`` integer-valued."""
    return per_level(x, radius, lambda xs, r: conv2d_shared(xs, disk_kernel(r).to(xs.device)))


def motion_blur(x: Tensor, length: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Linear motion blur ``fspecial('motion', len, theta)`` with theta drawn per sample.

    As in the official code (``random.randint(0, 180)``) theta is an integer in 0..180 degrees, 180 == 0.
    """

    def _one_length(xs: Tensor, value: float) -> Tensor:
        angles = randint(181, (xs.shape[0],), generator, xs.device) % 180
        if int(round(value)) <= 1:  # length 1: a delta (its 2.2e-16 side taps are below float32 resolution)
            return xs.clone()
        table = motion_kernel_table(int(round(value))).to(xs.device)
        return conv2d_per_sample(xs, table.index_select(0, angles))

    return per_level(x, length, _one_length)
