"""ARNIQA group "brightness_change": brighten, darken, meanshift.

All ops: ``x (B,3,H,W)`` float32 in [0,1], ``param (B,)`` -> ``(B,3,H,W)`` float32.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._curves import parabola_curve_clamped
from ._lab import f_to_rgb_, rgb_to_f

__all__ = ["brighten", "darken", "mean_shift"]


def _column(param: Tensor, x: Tensor) -> Tensor:
    return param.to(device=x.device, dtype=x.dtype)


def brighten(x: Tensor, amount: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``(2*curve(RGB) + RGB(Lab with curve(L/100)*100)) / 3`` with the curve through (0.5, 0.5 + a/2).

    The Lab half runs on the R/B-swapped image, as in the official code (the swap changes L's weights). A new L
    with a and b kept shifts ``fx, fy, fz`` by the same amount (see :mod:`._lab`), so no Lab image is built.
    """
    mid = 0.5 + _column(amount, x) / 2
    f = rgb_to_f(x, swap_rb=True)
    fy = f[:, 1:2]
    lum = parabola_curve_clamped((fy * 116.0 - 16.0) / 100.0, mid) * 100.0
    f.add_(lum.add_(16.0).div_(116.0).sub_(fy))
    from_lab = f_to_rgb_(f, swap_rb=True)
    return parabola_curve_clamped(x, mid).mul_(2.0).add_(from_lab).div_(3.0)


def darken(x: Tensor, amount: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Tone curve through (0.5, 0.5 - a/2) on RGB (the official function computes Lab but never uses it)."""
    return parabola_curve_clamped(x, 0.5 - _column(amount, x) / 2)


def mean_shift(x: Tensor, amount: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``clamp(x + a, 0, 1)``; the level table alternates sign (0, +0.08, -0.08, +0.15, -0.15)."""
    return (x + _column(amount, x).view(-1, 1, 1, 1)).clamp(0, 1)
