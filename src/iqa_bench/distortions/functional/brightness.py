"""ARNIQA group "brightness_change": brighten, darken, meanshift.

All ops: ``x (B,3,H,W)`` float32 in [0,1], ``param (B,)`` -> ``(B,3,H,W)`` float32.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._curves import parabola_curve_clamped
from ._lab import lab_to_rgb, rgb_to_lab

__all__ = ["brighten", "darken", "mean_shift"]


def _column(param: Tensor, x: Tensor) -> Tensor:
    return param.to(device=x.device, dtype=x.dtype)


def brighten(x: Tensor, amount: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``(2*curve(RGB) + RGB(Lab with curve(L/100)*100)) / 3`` with the curve through (0.5, 0.5 + a/2).

    The Lab half runs on the R/B-swapped image, as in the official code (the swap changes L's weights).
    """
    mid = 0.5 + _column(amount, x) / 2
    lab = rgb_to_lab(x.flip(1))
    lum = parabola_curve_clamped(lab[:, :1] / 100.0, mid) * 100.0
    lab = torch.cat([lum, lab[:, 1:]], dim=1)
    from_lab = lab_to_rgb(lab).clamp(0, 1).flip(1)
    return (2 * parabola_curve_clamped(x, mid) + from_lab) / 3


def darken(x: Tensor, amount: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Tone curve through (0.5, 0.5 - a/2) on RGB (the official function computes Lab but never uses it)."""
    return parabola_curve_clamped(x, 0.5 - _column(amount, x) / 2)


def mean_shift(x: Tensor, amount: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``clamp(x + a, 0, 1)``; the level table alternates sign (0, +0.08, -0.08, +0.15, -0.15)."""
    return (x + _column(amount, x).view(-1, 1, 1, 1)).clamp(0, 1)
