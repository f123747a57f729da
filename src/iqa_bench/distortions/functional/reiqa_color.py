"""Re-IQA ops on colour and tone: diffusion, shift, saturation, brightness, contrast (see :mod:`.reiqa`)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from ._curves import parabola_curve_clamped
from ._reiqa_common import _col, _gaussian_taps, _lab, _np_gradient, _rgb, _trunc, _u8
from ._utils import conv_separable, per_level, rand
from .color import color_saturation1


# ------------------------------------------------------------------------------------------------- colour
def color_diffuse(x: Tensor, amount: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#3 Lab blurred with ``gaussian(sigma=1.5a+2)`` (nearest border, truncate 4) on all channels, times ``a``,
    L restored; back to RGB, truncation."""

    def _one(xs: Tensor, a: float) -> Tensor:
        lab = _lab(_u8(xs) / 255.0)
        ab = conv_separable(lab[:, 1:], _gaussian_taps(1.5 * a + 2).to(xs.device)) * a
        return _trunc(_rgb(torch.cat([lab[:, :1], ab], dim=1)) * 255.0)

    return per_level(x, amount, _one)


def _percentile(v: Tensor, q: float) -> Tensor:
    """``np.percentile(v_b, q)`` (linear interpolation) per row of ``v (B, N)`` -> ``(B,)``."""
    s = v.sort(dim=1).values
    pos = q / 100.0 * (s.shape[1] - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, s.shape[1] - 1)
    return s[:, lo] + (s[:, hi] - s[:, lo]) * (pos - lo)


def _mapmm(e: Tensor) -> Tensor:
    flat = e.flatten(1)
    lo = flat.amin(dim=1).view(-1, 1, 1)
    hi = flat.amax(dim=1).view(-1, 1, 1)
    return torch.where(hi > lo, (e - lo) / (hi - lo).clamp_min(1e-12), e)


def color_shift_flat_roll(x: Tensor, amount: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#4 green channel shifted and blended by an edge map, reproducing the official flattened ``np.roll``.

    Edge map: gradient magnitude of the grey image (``np.gradient``), Gaussian sigma 4, min-max, clip to
    [0.1, 1], min-max, 1%/99% percentile clip, min-max. Shift ``s = round(a * v/|v|)``, ``v ~ U[0,1)^2``; the
    green channel is symmetric-padded by ``p = max(s)`` and the *flattened* padded array rolled by ``s0+s1``.
    """
    b, _, h, w = x.shape
    dev = x.device
    xf = _u8(x) / 255.0
    gray = 0.2989 * xf[:, 0] + 0.5870 * xf[:, 1] + 0.1140 * xf[:, 2]
    e = torch.hypot(_np_gradient(gray, 1), _np_gradient(gray, 2))
    e = conv_separable(e.unsqueeze(1), _gaussian_taps(4.0).to(dev))[:, 0]
    e = _mapmm(_mapmm(e).clamp(0.1, 1))
    flat = e.flatten(1)
    hi_v = _percentile(flat, 99.0).view(-1, 1, 1)
    lo_v = (1 - _percentile(1 - flat, 99.0)).view(-1, 1, 1)
    e = _mapmm(torch.minimum(torch.maximum(e, lo_v), hi_v))
    v = rand((b, 2), generator, dev).double()
    s = torch.round(
        v / v.norm(dim=1, keepdim=True).clamp_min(1e-12) * amount.to(dev).double().view(-1, 1)
    ).long()
    p = s.amax(dim=1).clamp(min=1)  # (B,) pad (>= 1 for every a >= 1)
    shift = s.sum(dim=1)
    hp, wp = h + 2 * p, w + 2 * p  # per-sample padded sizes
    i = torch.arange(h, device=dev).view(1, h, 1)
    j = torch.arange(w, device=dev).view(1, 1, w)
    k = (i + p.view(-1, 1, 1)) * wp.view(-1, 1, 1) + j + p.view(-1, 1, 1) - shift.view(-1, 1, 1)
    k = torch.remainder(k, (hp * wp).view(-1, 1, 1))
    pr, pc = k // wp.view(-1, 1, 1), k % wp.view(-1, 1, 1)
    sr, sc = pr - p.view(-1, 1, 1), pc - p.view(-1, 1, 1)
    sr = torch.where(sr < 0, -sr - 1, torch.where(sr >= h, 2 * h - 1 - sr, sr)).clamp(0, h - 1)
    sc = torch.where(sc < 0, -sc - 1, torch.where(sc >= w, 2 * w - 1 - sc, sc)).clamp(0, w - 1)
    green = xf[:, 1].reshape(b, h * w)
    shifted = green.gather(1, (sr * w + sc).view(b, -1)).view(b, h, w)
    blended = shifted * e + xf[:, 1] * (1 - e)
    return _trunc(torch.stack([xf[:, 0], blended, xf[:, 2]], dim=1) * 255.0)


def color_saturate_hsv(x: Tensor, factor: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#5 HSV saturation times ``f`` (``f < 0`` flips hue), truncation."""
    return _trunc(color_saturation1(_u8(x) / 255.0, factor) * 255.0)


def saturate_lab(x: Tensor, factor: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#6 Lab a/b times ``f`` (no R/B swap, unlike ARNIQA's colorsat2), truncation."""
    lab = _lab(_u8(x) / 255.0)
    return _trunc(_rgb(torch.cat([lab[:, :1], lab[:, 1:] * _col(factor, x)], dim=1)) * 255.0)


# ------------------------------------------------------------------------------------ brightness, contrast
def brighten(x: Tensor, amount: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#13 ``(2*curve(RGB) + clip(RGB(Lab with curve(L/100)*100)))/3``, parabola through (0.5, 0.5+a/2)."""
    xf = _u8(x) / 255.0
    mid = 0.5 + 0.5 * amount.to(device=x.device, dtype=x.dtype)
    lab = _lab(xf)
    lum = parabola_curve_clamped(lab[:, :1] / 100.0, mid) * 100.0
    from_lab = _rgb(torch.cat([lum, lab[:, 1:]], dim=1)).clamp(0, 1)
    return _trunc((2 * parabola_curve_clamped(xf, mid) + from_lab) / 3 * 255.0)


def darken(x: Tensor, amount: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#14 parabola through (0.5, 0.5 - p/2) on RGB, truncation."""
    return _trunc(parabola_curve_clamped(_u8(x) / 255.0, 0.5 - amount.to(x.device, x.dtype) / 2) * 255.0)


def mean_shift(x: Tensor, amount: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#15 ``x + a``, clip, truncation (levels +0.15, +0.08, 0, -0.08, -0.15: L3 is the identity)."""
    return _trunc((_u8(x) / 255.0 + _col(amount, x)) * 255.0)


@lru_cache(maxsize=16)
def _contrast_poly(p: float) -> tuple[float, float, float, float]:
    """``UnivariateSpline(x, y)`` (k=3, s=5) through the 5 knots is their least-squares cubic (no interior
    knot is needed: the residual is far below s); coefficients highest power first."""
    xs = [0.0, 0.3, 0.5, 0.7, 1.0]
    ys = [0.0, 0.25 - p / 4, 0.5, 0.75 + p / 4, 1.0]
    c = np.polyfit(xs, ys, 3)
    return tuple(float(v) for v in c)  # type: ignore[return-value]


def contrast_cubic(x: Tensor, amount: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#18 the smoothing spline (a cubic) through (0,0), (.3, .25-p/4), (.5,.5), (.7, .75+p/4), (1,1), clip,
    truncation (``p = 0`` is not an identity)."""
    coefs = torch.tensor([_contrast_poly(float(v)) for v in amount.detach().cpu().tolist()], dtype=x.dtype)
    c = coefs.to(x.device).view(-1, 4, 1, 1, 1)
    xf = _u8(x) / 255.0
    y = ((c[:, 0] * xf + c[:, 1]) * xf + c[:, 2]) * xf + c[:, 3]
    return _trunc(y.clamp(0, 1) * 255.0)
