"""Re-IQA ops that filter: Gaussian, lens and motion blur, sharpening (see :mod:`.reiqa` for the conventions)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from . import _pil
from ._reiqa_common import _col, _lab, _np_gradient, _rgb, _trunc, _u8
from ._utils import conv2d_shared, per_level, randint


# --------------------------------------------------------------------------------------------------- blur
def blur_gauss_pil(x: Tensor, sigma: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#1 ``PIL.ImageFilter.GaussianBlur(radius=sigma)``: three extended box blurs per axis (bit-exact)."""

    def _one(xs: Tensor, s: float) -> Tensor:
        y = _pil.box_blur_u8(_u8(xs).long(), _pil.gaussian_blur_radius(s, 3), 3)
        return y.to(xs.dtype) / 255.0

    return per_level(x, sigma, _one)


@lru_cache(maxsize=16)
def _disk_np(radius: int) -> np.ndarray:
    """``fspecial('disk', r)`` as the Re-IQA port computes it (NaN-guarded MATLAB rim terms)."""
    r = float(radius)
    crad = int(np.ceil(r - 0.5))
    ax = np.arange(-crad, crad + 1, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax, indexing="xy")
    mx, mn = np.maximum(abs(xx), abs(yy)), np.minimum(abs(xx), abs(yy))
    r2 = r * r
    with np.errstate(invalid="ignore"):
        m1 = (r2 < (mx + 0.5) ** 2 + (mn - 0.5) ** 2) * (mn - 0.5) + np.nan_to_num(
            (r2 >= (mx + 0.5) ** 2 + (mn - 0.5) ** 2) * np.sqrt(r2 - (mx + 0.5) ** 2), nan=0
        )
        m2 = (r2 > (mx - 0.5) ** 2 + (mn + 0.5) ** 2) * (mn + 0.5) + np.nan_to_num(
            (r2 <= (mx - 0.5) ** 2 + (mn + 0.5) ** 2) * np.sqrt(r2 - (mx - 0.5) ** 2), nan=0
        )
        a1, a2 = np.arcsin(m1 / r), np.arcsin(m2 / r)
        area = (
            r2 * (0.5 * (a2 - a1) + 0.25 * (np.sin(2 * a2) - np.sin(2 * a1)))
            - (mx - 0.5) * (m2 - m1)
            + (m1 - mn + 0.5)
        )
    rim = ((r2 < (mx + 0.5) ** 2 + (mn + 0.5) ** 2) & (r2 > (mx - 0.5) ** 2 + (mn - 0.5) ** 2)) | (
        (mn == 0) & (mx - 0.5 < r) & (mx + 0.5 >= r)
    )
    grid = area * rim + ((mx + 0.5) ** 2 + (mn + 0.5) ** 2 < r2)
    grid[crad, crad] = min(np.pi * r2, np.pi / 2)
    grid[crad, crad] = min(grid[crad, crad], 1)
    return grid / grid.sum()


def blur_lens(x: Tensor, radius: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#2 disk blur (``ndimage.convolve``, nearest border) written into uint8 (truncation)."""

    def _one(xs: Tensor, r: float) -> Tensor:
        k = torch.from_numpy(_disk_np(int(round(r)))).float().to(xs.device)
        return _trunc(conv2d_shared(_u8(xs), k))

    return per_level(x, radius, _one)


def blur_motion_line(x: Tensor, length: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#26 ``k x k`` line kernel, vertical or horizontal with probability 1/2 per sample (official
    ``random.choice([0, 90])``), through ``ndimage.convolve`` (nearest border), uint8 by truncation.

    For even ``k`` scipy's convolution anchors the line off-centre: output (r, c) averages input rows
    ``r-(k-1)//2 .. r+k//2`` of column ``c+1`` (vertical case; transposed for horizontal).
    """

    def _one(xs: Tensor, value: float) -> Tensor:
        k = int(round(value))
        b, _, h, w = xs.shape
        vertical = randint(2, (b,), generator, xs.device) == 0
        u = _u8(xs)
        lo, hi = (k - 1) // 2, k // 2
        side = 1 if k % 2 == 0 else 0
        out = torch.empty_like(u)
        for vert in (True, False):
            rows = (vertical == vert).nonzero(as_tuple=True)[0]
            if rows.numel() == 0:
                continue
            v = u.index_select(0, rows)
            if not vert:
                v = v.transpose(-1, -2)
            n, m = v.shape[-2], v.shape[-1]
            cidx = (torch.arange(m, device=xs.device) + side).clamp(max=m - 1)
            v = v.index_select(-1, cidx)
            ridx = torch.arange(-lo - 1, n + hi, device=xs.device).clamp(0, n - 1)
            cs = v.index_select(-2, ridx).double().cumsum(-2)
            box = (cs[..., lo + 1 + hi :, :][..., :n, :] - cs[..., :n, :]) / k
            box = box.float()
            if not vert:
                box = box.transpose(-1, -2)
            out.index_copy_(0, rows, box.contiguous())
        return _trunc(out)

    return per_level(x, length, _one)


# ------------------------------------------------------------------------------------------------ sharpen
def _laplacian_np(v: Tensor) -> Tensor:
    """``np.gradient`` twice along rows plus twice along columns of ``v (B,H,W)``."""
    return _np_gradient(_np_gradient(v, 1), 1) + _np_gradient(_np_gradient(v, 2), 2)


def sharpen_hi(x: Tensor, amount: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#17, the intent: ``L - p * laplacian(L)`` on Lab computed from [0,1] RGB, L clipped to [0,100]."""
    lab = _lab(_u8(x) / 255.0)
    lum = (lab[:, 0] - _col(amount, x)[:, 0] * _laplacian_np(lab[:, 0])).clamp(0, 100)
    return _trunc(_rgb(torch.cat([lum.unsqueeze(1), lab[:, 1:]], dim=1)) * 255.0)


def sharpen_hi_official(x: Tensor, amount: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#17 as released: ``rgb2lab`` of 0..255 floats (a scaling bug), giving a false-colour image."""
    lab = _lab(_u8(x))
    lum = (lab[:, 0] - _col(amount, x)[:, 0] * _laplacian_np(lab[:, 0])).clamp(0, 100)
    return _trunc(_rgb(torch.cat([lum.unsqueeze(1), lab[:, 1:]], dim=1)) * 255.0)
