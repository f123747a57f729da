"""Helpers shared by the Re-IQA ops (``reiqa_*.py``): the uint8 grid, per-item parameters, scipy/NumPy filters."""

from __future__ import annotations

import torch
from torch import Tensor

from ._lab import lab_to_rgb, rgb_to_lab


# ------------------------------------------------------------------------------------------------ helpers
def _u8(x: Tensor) -> Tensor:
    """Grey levels of a [0,1] image as the PIL image holds them: ``round(clip(x)*255)`` (float)."""
    return torch.round(x.clamp(0, 1) * 255.0)


def _trunc(y255: Tensor) -> Tensor:
    """``np.uint8(clip(y, 0, 255))`` of a 0..255-scaled result, back to [0,1]."""
    return torch.floor(y255.clamp(0, 255) + 1e-4) / 255.0


def _col(param: Tensor, x: Tensor) -> Tensor:
    return param.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def _gaussian_taps(sigma: float, truncate: float = 4.0) -> Tensor:
    """``scipy.ndimage.gaussian_filter`` taps (radius ``int(truncate*sigma + 0.5)``), float32, sum 1."""
    r = int(truncate * sigma + 0.5)
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).float()


def _np_gradient(v: Tensor, dim: int) -> Tensor:
    """``np.gradient`` along ``dim``: central differences inside, one-sided at the two ends."""
    n = v.shape[dim]
    if n < 2:
        return torch.zeros_like(v)
    inner = (v.narrow(dim, 2, n - 2) - v.narrow(dim, 0, n - 2)) / 2
    first = v.narrow(dim, 1, 1) - v.narrow(dim, 0, 1)
    last = v.narrow(dim, n - 1, 1) - v.narrow(dim, n - 2, 1)
    return torch.cat([first, inner, last], dim=dim)


def _lab(x: Tensor) -> Tensor:
    """RGB `(B, 3, H, W)` in [0, 1] -> CIELAB (L in [0, 100]), kornia's formulas."""
    return rgb_to_lab(x)


def _rgb(lab: Tensor) -> Tensor:
    """CIELAB -> RGB in [0, 1] (clipped), kornia's formulas."""
    return lab_to_rgb(lab, clip=True)
