"""ARNIQA group "sharpness_contrast": highsharpen, lincontrchange, nonlincontrchange.

All ops: ``x (B,3,H,W)`` float32 in [0,1], ``param (B,)`` -> ``(B,3,H,W)`` float32.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._curves import lincontr_coefficients, piecewise_cubic
from ._kernels import gaussian_kernel1d
from ._lab import f_to_rgb_, rgb_to_f
from ._utils import conv_separable

__all__ = ["high_sharpen", "linear_contrast_change", "non_linear_contrast_change"]

SHARPEN_RADIUS = 6  # official: radius=3 -> ceil(2*3) = 6 -> 13x13 support with sigma 6


def high_sharpen(x: Tensor, amount: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Unsharp mask on L of the R/B-swapped Lab image: ``L + a*(L - G*L)``, G 13x13 Gaussian, sigma 6.

    L is affine in ``fy`` (``L = 116 fy - 16``) and G sums to 1, so the new L shifts ``fx, fy, fz`` by
    ``a*(fy - G*fy)`` (see :mod:`._lab`); no Lab image is built.
    """
    f = rgb_to_f(x, swap_rb=True)
    fy = f[:, 1:2]
    g = gaussian_kernel1d(float(SHARPEN_RADIUS), 2 * SHARPEN_RADIUS + 1).to(x.device)
    a = amount.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
    f.add_((fy - conv_separable(fy, g)).mul_(a))
    return f_to_rgb_(f, swap_rb=True)


def linear_contrast_change(x: Tensor, amount: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Per-channel tone curve through (0.3, 0.25-a/4), (0.5,0.5), (0.7, 0.75+a/4); a=0 is a mild S-curve."""
    values, inverse = torch.unique(amount.detach().cpu(), return_inverse=True)
    table = torch.stack([lincontr_coefficients(float(v)) for v in values.tolist()])  # (U,4,4), U <= 5
    return piecewise_cubic(x, table[inverse].to(x.device))


def non_linear_contrast_change(x: Tensor, offset: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``y = 2o*x + 0.5 - o`` clipped to ``[0.5-o, 0.5+o]`` (linear despite the name)."""
    o = offset.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
    return torch.minimum(torch.maximum(2 * o * x.clamp(0, 1) + 0.5 - o, 0.5 - o), 0.5 + o)
