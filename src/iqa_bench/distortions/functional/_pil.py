"""Batched, exact emulations of the Pillow filters the Re-IQA bank calls (Pillow 13 ``BoxBlur.c``,
``Resample.c``): ``GaussianBlur`` / ``BoxBlur`` (extended box blur, uint8 after every pass) and ``resize``
with NEAREST / BILINEAR / BICUBIC / LANCZOS (fixed-point separable resampling, uint8 between the passes).

All functions take and return ``(B,C,H,W)`` tensors of integer grey levels 0..255 stored as int64 (box blur) or
float64 (resampling), so results are bit-identical to Pillow on any device.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

__all__ = ["box_blur_u8", "gaussian_blur_radius", "resize_nearest_index", "resize_u8"]


def gaussian_blur_radius(radius: float, passes: int = 3) -> float:
    """Pillow's ``_gaussian_blur_radius`` (float32 arithmetic): fractional box radius of one of ``passes``
    box blurs approximating a Gaussian of standard deviation ``radius``."""
    f = np.float32
    sigma2 = f(radius) * f(radius) / f(passes)
    big_l = f(math.sqrt(float(f(12.0) * sigma2 + f(1.0))))
    small_l = f(math.floor(float((big_l - f(1.0)) / f(2.0))))
    a = (f(2) * small_l + f(1)) * (small_l * (small_l + f(1)) - f(3) * sigma2)
    a = a / (f(6) * (sigma2 - (small_l + f(1)) * (small_l + f(1))))
    return float(f(small_l + a))


def _box_pass(x: Tensor, radius: float, dim: int) -> Tensor:
    """One ``ImagingHorizontalBoxBlur`` pass along ``dim`` of int64 ``x``, edges replicated."""
    r = int(radius)
    ww = int(np.float32(1 << 24) / np.float32(np.float32(radius) * np.float32(2) + np.float32(1)))
    fw = ((1 << 24) - (2 * r + 1) * ww) // 2
    n = x.shape[dim]
    idx = torch.arange(-r - 1, n + r + 1, device=x.device).clamp(0, n - 1)
    xp = x.index_select(dim, idx)  # n + 2r + 2 along dim
    cs = xp.cumsum(dim)
    # in[x-r .. x+r] = xp[x+1 .. x+2r+1]; far pixels in[x-r-1], in[x+r+1] = xp[x], xp[x+2r+2]
    box = cs.narrow(dim, 2 * r + 1, n) - cs.narrow(dim, 0, n)
    far = xp.narrow(dim, 0, n) + xp.narrow(dim, 2 * r + 2, n)
    return (box * ww + far * fw + (1 << 23)) >> 24


def box_blur_u8(x: Tensor, radius: float, passes: int) -> Tensor:
    """Pillow ``ImagingBoxBlur(radius, radius, passes)`` on int64 grey levels ``(B,C,H,W)``: ``passes``
    horizontal then ``passes`` vertical box blurs with fractional radius, rounded to uint8 after each."""
    if radius == 0:
        return x.clone()
    y = x
    for dim in (-1, -2):
        for _ in range(passes):
            y = _box_pass(y, radius, dim)
    return y


def _bicubic(x: np.ndarray) -> np.ndarray:
    a = -0.5
    x = np.abs(x)
    return np.where(
        x < 1.0,
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1,
        np.where(x < 2.0, (((x - 5) * x + 8) * x - 4) * a, 0.0),
    )


def _bilinear(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


def _sinc(x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(x == 0.0, 1.0, np.sin(np.pi * x) / (np.pi * x))


def _lanczos(x: np.ndarray) -> np.ndarray:
    return np.where((x > -3.0) & (x < 3.0), _sinc(x) * _sinc(x / 3.0), 0.0)


_FILTERS = {"bilinear": (_bilinear, 1.0), "bicubic": (_bicubic, 2.0), "lanczos": (_lanczos, 3.0)}
_PRECISION_BITS = 32 - 8 - 2


@lru_cache(maxsize=128)
def _coeff_matrix(in_size: int, out_size: int, mode: str) -> np.ndarray:
    """``(out, in)`` float64 matrix of Pillow's fixed-point coefficients (integers) for one axis."""
    fn, base_support = _FILTERS[mode]
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = base_support * filterscale
    m = np.zeros((out_size, in_size))
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        w = fn((np.arange(xmax) + xmin - center + 0.5) / filterscale)
        total = w.sum()
        if total != 0.0:
            w = w / total
        fixed = np.trunc(w * (1 << _PRECISION_BITS) + np.where(w < 0, -0.5, 0.5))
        m[xx, xmin : xmin + xmax] = fixed
    return m


def _resample_last(x: Tensor, out_size: int, mode: str) -> Tensor:
    m = torch.from_numpy(_coeff_matrix(x.shape[-1], out_size, mode)).to(device=x.device, dtype=torch.float64)
    s = x @ m.t() + float(1 << (_PRECISION_BITS - 1))
    return torch.floor(s / float(1 << _PRECISION_BITS)).clamp_(0, 255)


def resize_u8(x: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    """Pillow ``resize((w, h), mode)`` of float64 grey levels ``(B,C,H,W)``: horizontal pass, uint8, vertical
    pass, uint8 (a pass is skipped when that side keeps its size). ``mode``: bilinear, bicubic, lanczos."""
    h, w = size
    y = x
    if w != x.shape[-1]:
        y = _resample_last(y, w, mode)
    if h != x.shape[-2]:
        y = _resample_last(y.transpose(-1, -2), h, mode).transpose(-1, -2)
    return y.contiguous()


def resize_nearest_index(in_size: int, out_size: int, device: torch.device) -> Tensor:
    """Source index of Pillow's NEAREST resize along one axis (``ImagingScaleAffine``): ``int(xo_i)`` with
    ``xo_0 = scale/2`` and ``xo_{i+1} = xo_i + scale`` accumulated in double precision, ``scale = in/out``."""
    scale = float(in_size) / out_size
    steps = np.full(out_size, scale, dtype=np.float64)
    steps[0] = 0.0 + scale * 0.5
    idx = np.add.accumulate(steps).astype(np.int64).clip(0, in_size - 1)
    return torch.from_numpy(idx).to(device)
