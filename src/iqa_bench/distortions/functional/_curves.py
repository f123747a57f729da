"""Tone curves of the official ARNIQA code (its MATLAB ``spline``/``ppval`` port), evaluated batched.

* 3 knots (0,0), (0.5,c), (1,1): the parabola ``(2-4c) x^2 + (4c-1) x`` (brighten, darken).
* 5 knots (0,0), (0.3,y1), (0.5,0.5), (0.7,y3), (1,1): a piecewise cubic (lincontrchange). The port solves
  its slope system as ``b @ inv(C)`` instead of MATLAB's ``C \\ b`` (C is not symmetric), so the curve is a
  C1 Hermite interpolant rather than MATLAB's not-a-knot spline. We reproduce the port's coefficients.

Both curves are clamped to [0,1], as ``curves()`` does.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "LINCONTR_BREAKS",
    "lincontr_coefficients",
    "parabola_curve",
    "parabola_curve_clamped",
    "piecewise_cubic",
]

LINCONTR_BREAKS = (0.0, 0.3, 0.5, 0.7, 1.0)


def parabola_curve(x: Tensor, mid: Tensor) -> Tensor:
    """Parabola through (0,0), (0.5, mid), (1,1), clamped to [0,1].

    Args:
        x: ``(B,C,H,W)`` float.
        mid: ``(B,)`` value of the curve at 0.5.
    """
    c = mid.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
    return ((2 - 4 * c) * x + (4 * c - 1)) * x


def parabola_curve_clamped(x: Tensor, mid: Tensor) -> Tensor:
    """:func:`parabola_curve` clamped to [0,1]."""
    return parabola_curve(x, mid).clamp(0, 1)


@lru_cache(maxsize=64)
def _port_spline_coefs(y1: float, y3: float) -> tuple[tuple[float, ...], ...]:
    """Per-segment cubic coefficients ``(c3, c2, c1, c0)`` of the port's 5-knot spline, float64."""
    x = np.asarray(LINCONTR_BREAKS, dtype=np.float64)
    y = np.asarray([0.0, y1, 0.5, y3, 1.0], dtype=np.float64)
    n = x.size
    dx = np.diff(x)
    slope = np.diff(y) / dx
    rhs = np.zeros(n)
    rhs[1 : n - 1] = 3 * (dx[1:] * slope[:-1] + dx[:-1] * slope[1:])
    x31 = x[2] - x[0]
    xn = x[n - 1] - x[n - 3]
    rhs[0] = ((dx[0] + 2 * x31) * dx[1] * slope[0] + dx[0] ** 2 * slope[1]) / x31
    rhs[n - 1] = (dx[n - 2] ** 2 * slope[n - 3] + (2 * xn + dx[n - 2]) * dx[n - 3] * slope[n - 2]) / xn
    mat = np.zeros((n, n))
    sub = [x31, *dx[: n - 2]]
    sup = [*dx[1 : n - 1], xn]
    diag = [dx[1], *(2 * (dx[1:] + dx[:-1])), dx[n - 3]]
    for i in range(n):
        mat[i, i] = diag[i]
    for i in range(n - 1):
        mat[i + 1, i] = sub[i]
        mat[i, i + 1] = sup[i]
    s = rhs @ np.linalg.inv(mat)  # the port's `b * inv(C)` (row vector times matrix), not C \ b
    d1 = (slope - s[:-1]) / dx
    d2 = (s[1:] - slope) / dx
    coefs = np.stack([(d2 - d1) / dx, 2 * d1 - d2, s[:-1], y[:-1]], axis=1)
    return tuple(tuple(float(v) for v in row) for row in coefs)


def lincontr_coefficients(amount: float) -> Tensor:
    """``(4 segments, 4)`` float32 coefficients of lincontrchange's curve for one ``amount``."""
    return torch.tensor(_port_spline_coefs(0.25 - amount / 4, 0.75 + amount / 4), dtype=torch.float64).float()


def piecewise_cubic(x: Tensor, coefs: Tensor) -> Tensor:
    """Evaluate a per-sample piecewise cubic on the lincontrchange knots and clamp to [0,1].

    Args:
        x: ``(B,C,H,W)`` float.
        coefs: ``(B, 4 segments, 4)`` coefficients (highest power first) relative to each segment's left knot.
    """
    b = x.shape[0]
    breaks = torch.tensor(LINCONTR_BREAKS, dtype=x.dtype, device=x.device)
    flat = x.reshape(b, -1)
    seg = torch.bucketize(flat, breaks[1:4])  # x <= 0.3 -> 0, (0.3, 0.5] -> 1, ...
    t = flat - breaks[seg]
    c = coefs.to(device=x.device, dtype=x.dtype)
    v = torch.gather(c[:, :, 0], 1, seg)
    for k in range(1, 4):
        v = t * v + torch.gather(c[:, :, k], 1, seg)
    return v.clamp(0, 1).view_as(x)
