"""MATLAB ``fspecial`` kernels as the official ARNIQA code builds them (gaussian, disk, motion).

All builders run once per parameter value in float64 NumPy and are cached; callers get float32 tensors.
Kernels are used for correlation (``F.conv2d``, no flip) with replicate padding, like the official ``filter2D``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

__all__ = ["disk_kernel", "gaussian_kernel1d", "gaussian_size", "motion_kernel", "motion_kernel_table"]

_EPS = float(np.finfo(np.float64).eps)
_MOTION_EPS = 2.2204e-16  # the literal the MATLAB code (and the official port) uses


def gaussian_size(sigma: float) -> int:
    """Support of the ARNIQA Gaussian: ``2*ceil(2*sigma)+1`` taps."""
    return 2 * math.ceil(2 * sigma) + 1


@lru_cache(maxsize=64)
def _gaussian1d_np(size: int, sigma: float) -> np.ndarray:
    m = (size - 1) / 2.0
    t = np.arange(-m, m + 1, dtype=np.float64)
    g = np.exp(-(t * t) / (2.0 * sigma * sigma))
    # fspecial zeroes taps below eps*max; for every size 2*ceil(2s)+1 the smallest 2-D tap is exp(-4) (or the
    # kernel is a delta, sigma < 0.2), so thresholding the 1-D factor gives the same 2-D kernel.
    g[g < _EPS * g.max()] = 0.0
    return g / g.sum()


def gaussian_kernel1d(sigma: float, size: int | None = None) -> torch.Tensor:
    """1-D factor ``g`` (float32, sum 1) with ``outer(g, g) == fspecial('gaussian', size, sigma)``."""
    size = gaussian_size(sigma) if size is None else size
    return torch.from_numpy(_gaussian1d_np(int(size), float(sigma))).float()


@lru_cache(maxsize=16)
def _disk_np(radius: int) -> np.ndarray:
    """``fspecial('disk', r)`` exactly as the official Python port computes it (integer radii).

    The port replaces MATLAB's ``sqrt(r^2 - (max+0.5)^2)`` branch of the lower integration limit by 0
    (its ``(r1 > 0).all()`` test is never true), which slightly changes the anti-aliased rim; we keep that.
    """
    r = float(radius)
    crad = math.ceil(r - 0.5)
    a = np.abs(np.arange(-radius, radius + 1, dtype=np.float64))
    hi = np.maximum(a[:, None], a[None, :])
    lo = np.minimum(a[:, None], a[None, :])
    r2 = r * r
    low_alt = np.sqrt(r2 - (hi + 0.5) ** 2) if bool((r2 - (hi + 0.5) ** 2 > 0).all()) else 0.0
    up_rad = r2 - (lo - 0.5) ** 2
    up_alt = np.sqrt(up_rad) if bool((up_rad > 0).all()) else 0.0
    m1 = np.where(r2 < (hi + 0.5) ** 2 + (lo - 0.5) ** 2, lo - 0.5, low_alt)
    m2 = np.where(r2 > (hi - 0.5) ** 2 + (lo + 0.5) ** 2, lo + 0.5, up_alt)
    with np.errstate(invalid="ignore"):
        as1, as2 = np.arcsin(m1 / r), np.arcsin(m2 / r)
        area = (
            r2 * (0.5 * (as2 - as1) + 0.25 * (np.sin(2 * as2) - np.sin(2 * as1)))
            - (hi - 0.5) * (m2 - m1)
            + (m1 - lo + 0.5)
        )
    rim = ((r2 < (hi + 0.5) ** 2 + (lo + 0.5) ** 2) & (r2 > (hi - 0.5) ** 2 + (lo - 0.5) ** 2)) | (
        (lo == 0) & (hi - 0.5 < r) & (hi + 0.5 >= r)
    )
    grid = np.where(rim, area, 0.0) + ((hi + 0.5) ** 2 + (lo + 0.5) ** 2 < r2)
    grid[crad, crad] = min(math.pi * r2, math.pi / 2)
    grid[crad, crad] = min(grid[crad, crad], 1.0)
    return grid / grid.sum()


def disk_kernel(radius: float) -> torch.Tensor:
    """Pill-box ``(2r+1, 2r+1)`` float32 kernel (sum 1) of ``fspecial('disk', r)`` for an integer radius."""
    if float(radius) != int(radius) or radius < 1:
        raise ValueError(f"radius must be a positive integer, got {radius}")
    return torch.from_numpy(_disk_np(int(radius))).float()


def _motion_np(length: int, angle: float) -> np.ndarray:
    """``fspecial('motion', length, angle)`` as ported by the official code (odd-sized, not always square)."""
    length = max(1, int(length))
    half = (length - 1) / 2.0
    phi = (angle % 180) / 180.0 * math.pi
    cphi, sphi = math.cos(phi), math.sin(phi)
    xsign = 1 if cphi >= 0 else -1
    width = 1
    sx = int(half * cphi + width * xsign - length * _MOTION_EPS)
    sy = int(half * sphi + width - length * _MOTION_EPS)
    xs = np.arange(0, sx + xsign, xsign, dtype=np.float64)
    ys = np.arange(0, sy + 1, dtype=np.float64)
    x = np.broadcast_to(xs[None, :], (ys.size, xs.size)).copy()
    y = np.broadcast_to(ys[:, None], (ys.size, xs.size)).copy()
    dist = y * cphi - x * sphi
    rad = np.sqrt(x * x + y * y)
    last = (rad >= half) & (np.abs(dist) <= width)
    to_last = half - np.abs((x[last] + dist[last] * sphi) / cphi)
    dist[last] = np.sqrt(dist[last] ** 2 + to_last**2)
    dist = width + _MOTION_EPS - np.abs(dist)
    dist[dist < 0] = 0.0
    quarter = np.rot90(dist, 2)
    h0, h1 = quarter.shape
    h = np.zeros((2 * h0 - 1, 2 * h1 - 1))
    h[:h0, :h1] = quarter
    h[h0 - 1 :, h1 - 1 :] = dist
    h = h / (h.sum() + _MOTION_EPS * length * length)
    if cphi > 0:
        h = np.flipud(h)
    return np.ascontiguousarray(h)


def _pad_center(k: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((size, size), dtype=k.dtype)
    top, left = (size - k.shape[0]) // 2, (size - k.shape[1]) // 2
    out[top : top + k.shape[0], left : left + k.shape[1]] = k
    return out


def motion_kernel(length: int, angle: float) -> torch.Tensor:
    """float32 motion-blur kernel (odd height/width) for one length and angle in degrees."""
    return torch.from_numpy(_motion_np(length, angle).copy()).float()


@lru_cache(maxsize=16)
def _motion_table_np(length: int) -> np.ndarray:
    kernels = [_motion_np(length, a) for a in range(180)]
    size = max(max(k.shape) for k in kernels)
    return np.stack([_pad_center(k, size) for k in kernels])


def motion_kernel_table(length: int) -> torch.Tensor:
    """``(180, K, K)`` float32: the motion kernels of one length for integer angles 0..179, zero-padded to odd K."""
    return torch.from_numpy(_motion_table_np(int(length))).float()
