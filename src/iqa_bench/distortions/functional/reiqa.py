"""Batched ops of the Re-IQA bank (official ``datasets/iqa_distortions.py``; ``shared/specs/reiqa.md`` §3.2).

All ops: ``op(x (B,3,H,W) float32 in [0,1], param (B,), generator) -> (B,3,H,W)`` float32. The official
functions take a PIL (uint8) image and return uint8, almost always by *truncation*; the ops read ``x`` as
``round(x*255)`` where the official code starts from the PIL image and floor their result to 1/255 steps where it
truncates, so outputs sit on the same uint8 grid. Pillow filters are emulated bit-exactly (:mod:`._pil`).
"""

from __future__ import annotations

from functools import lru_cache

import kornia
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from . import _pil
from ._curves import parabola_curve_clamped
from ._utils import conv2d_shared, conv_separable, per_level, rand, randint, randn
from ._ycbcr import rgb_to_ycbcr_studio, ycbcr_studio_to_rgb
from .color import color_saturation1

__all__ = [
    "blur_gauss_pil",
    "blur_lens",
    "blur_motion_line",
    "brighten",
    "color_block_u8",
    "color_diffuse",
    "color_saturate_hsv",
    "color_shift_flat_roll",
    "compress_jpeg_pil",
    "contrast_cubic",
    "darken",
    "denoise",
    "jitter_cubic",
    "mean_shift",
    "noise_colormap",
    "noise_gauss",
    "noise_impulse",
    "noise_multiplicative",
    "non_eccentricity",
    "pixelate_pil",
    "resize_bicubic",
    "resize_bilinear",
    "resize_lanczos",
    "resize_nearest",
    "saturate_lab",
    "sharpen_hi",
    "sharpen_hi_official",
]


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


# ------------------------------------------------------------------------------------------------- colour
def _lab(x: Tensor) -> Tensor:
    return kornia.color.rgb_to_lab(x)


def _rgb(lab: Tensor) -> Tensor:
    return kornia.color.lab_to_rgb(lab, clip=True)


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


# -------------------------------------------------------------------------------------------- compression
def compress_jpeg_pil(x: Tensor, quality: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#7 JPEG round trip at ``quality`` (libjpeg, 4:2:0), from the rounded uint8 image (PIL's input)."""
    import warnings

    from torchvision.io import decode_jpeg, encode_jpeg

    def _one(xs: Tensor, q: float) -> Tensor:
        u8 = list(_u8(xs).to(device="cpu", dtype=torch.uint8).unbind(0))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*image decoding and encoding capabilities.*")
            decoded = decode_jpeg(encode_jpeg(u8, quality=int(round(q))))
        return (torch.stack(decoded) / 255.0).to(device=xs.device, dtype=torch.float32)

    return per_level(x, quality, _one)


# -------------------------------------------------------------------------------------------------- noise
def _std(var: Tensor, x: Tensor) -> Tensor:
    return _col(var, x).clamp_min(0).sqrt()


def noise_gauss(x: Tensor, var: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#8 ``x + N(0, var)``, clip, truncation."""
    return _trunc((_u8(x) / 255.0 + randn(x.shape, generator, x.device) * _std(var, x)) * 255.0)


def noise_colormap(x: Tensor, var: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#9 N(0, var) on all three channels of scikit-image's studio-range YCbCr (/255), back, truncation."""
    ycc = rgb_to_ycbcr_studio(_u8(x) / 255.0) + randn(x.shape, generator, x.device) * _std(var, x)
    return _trunc(ycbcr_studio_to_rgb(ycc) * 255.0)


def noise_impulse(x: Tensor, prob: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#10 one uniform per pixel: ``< p/2`` -> black, ``> 1-p/2`` -> white (whole pixels)."""
    b, _, h, w = x.shape
    u = rand((b, 1, h, w), generator, x.device)
    p = _col(prob, x)
    y = torch.where(u < p / 2, torch.zeros_like(x), _u8(x) / 255.0)
    return torch.where(u > 1 - p / 2, torch.ones_like(x), y)


def noise_multiplicative(x: Tensor, var: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#11 speckle ``x + x * N(0, var)``, truncation."""
    xf = _u8(x) / 255.0
    return _trunc((xf + xf * randn(x.shape, generator, x.device) * _std(var, x)) * 255.0)


def denoise(x: Tensor, var: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#12 Gaussian noise (as #8, uint8), then per sample with probability 1/2 ``GaussianBlur(radius=3)``
    or ``BoxBlur(radius=2)`` (Pillow, bit-exact)."""
    noisy = (noise_gauss(x, var, generator) * 255.0).round().long()
    choice = randint(2, (x.shape[0],), generator, x.device)
    out = torch.empty_like(noisy)
    for c, (radius, passes) in enumerate(((_pil.gaussian_blur_radius(3.0, 3), 3), (2.0, 1))):
        rows = (choice == c).nonzero(as_tuple=True)[0]
        if rows.numel():
            out.index_copy_(0, rows, _pil.box_blur_u8(noisy.index_select(0, rows), radius, passes))
    return out.to(x.dtype) / 255.0


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


# ------------------------------------------------------------------------------------------------ spatial
COLORBLOCK_PATCH = 32


def color_block_u8(x: Tensor, count: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#19 ``n`` 32x32 blocks of a random integer colour at ``int(U * (side - 32))``, later ones on top."""
    b, c, h, w = x.shape
    dev = x.device
    n = count.to(dev).round().long()
    n_max = int(n.max()) if b else 0
    xf = _u8(x) / 255.0
    if n_max == 0:
        return xf
    ph, pw = min(COLORBLOCK_PATCH, h), min(COLORBLOCK_PATCH, w)
    colors = randint(256, (b, n_max, c), generator, dev).to(x.dtype) / 255.0
    u = rand((2, b, n_max), generator, dev)
    left = torch.floor(u[0] * (w - pw)).long()
    top = torch.floor(u[1] * (h - ph)).long()
    active = torch.arange(n_max, device=dev).view(1, -1) < n.view(-1, 1)
    rows = torch.arange(h, device=dev).view(1, h)
    cols = torch.arange(w, device=dev).view(1, w)
    last = torch.full((b, h, w), -1, dtype=torch.long, device=dev)
    for t in range(n_max):
        in_r = (rows >= top[:, t : t + 1]) & (rows < top[:, t : t + 1] + ph) & active[:, t : t + 1]
        in_c = (cols >= left[:, t : t + 1]) & (cols < left[:, t : t + 1] + pw)
        last = torch.where(in_r.unsqueeze(-1) & in_c.unsqueeze(-2), t, last)
    fill = torch.gather(colors, 1, last.clamp_min(0).view(b, -1, 1).expand(-1, -1, c))
    fill = fill.view(b, h, w, c).permute(0, 3, 1, 2)
    return torch.where((last >= 0).unsqueeze(1), fill, xf)


def pixelate_pil(x: Tensor, strength: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#20 Pillow NEAREST resize to ``int(z*side)``, ``z = 0.95 - p^0.6``, and back."""

    def _one(xs: Tensor, p: float) -> Tensor:
        h, w = xs.shape[-2:]
        z = 0.95 - p**0.6
        return _nearest_round_trip(_u8(xs) / 255.0, max(1, int(z * h)), max(1, int(z * w)))

    return per_level(x, strength, _one)


def _nearest_round_trip(x: Tensor, sh: int, sw: int) -> Tensor:
    h, w = x.shape[-2:]
    dev = x.device
    small = x.index_select(-1, _pil.resize_nearest_index(w, sw, dev))
    small = small.index_select(-2, _pil.resize_nearest_index(h, sh, dev))
    big = small.index_select(-1, _pil.resize_nearest_index(sw, w, dev))
    return big.index_select(-2, _pil.resize_nearest_index(sh, h, dev))


NONECC_PATCH = 16
NONECC_RADIUS = 16


def non_eccentricity(x: Tensor, count: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#21 ``n`` sequential copies of a 16x16 patch (source ``int(U*(side-48))+16``) to a spot offset by
    ``int((U-0.5)*16)``; numpy assignment semantics (the source is read before the copy is written)."""
    b, c, h, w = x.shape
    dev = x.device
    n = count.to(dev).round().long()
    n_max = int(n.max()) if b else 0
    xf = _u8(x) / 255.0
    if n_max == 0:
        return xf
    ph, pw = min(NONECC_PATCH, h), min(NONECC_PATCH, w)
    lo_h, lo_w = min(NONECC_RADIUS, h - ph), min(NONECC_RADIUS, w - pw)
    hi_h, hi_w = max(lo_h, h - ph - NONECC_RADIUS), max(lo_w, w - pw - NONECC_RADIUS)
    u = rand((n_max, 4, b), generator, dev)  # official draw order: w0, h0, dw, dh
    src_c = torch.floor(u[:, 0] * (hi_w - lo_w)).long() + lo_w
    src_r = torch.floor(u[:, 1] * (hi_h - lo_h)).long() + lo_h
    dst_c = torch.trunc((u[:, 2] - 0.5) * NONECC_RADIUS + src_c).long().clamp(0, w - pw)
    dst_r = torch.trunc((u[:, 3] - 0.5) * NONECC_RADIUS + src_r).long().clamp(0, h - ph)
    active = torch.arange(n_max, device=dev).view(-1, 1) < n.view(1, -1)
    dst_c = torch.where(active, dst_c, src_c)
    dst_r = torch.where(active, dst_r, src_r)
    y = xf.permute(0, 2, 3, 1).reshape(b, h * w, c).clone()
    pr = torch.arange(ph, device=dev).view(1, ph, 1)
    pc = torch.arange(pw, device=dev).view(1, 1, pw)
    for t in range(n_max):
        sr, sc, dr, dc = (v[t].view(b, 1, 1) for v in (src_r, src_c, dst_r, dst_c))
        src = ((sr + pr) * w + sc + pc).view(b, -1, 1).expand(-1, -1, c)
        dst = ((dr + pr) * w + dc + pc).view(b, -1, 1).expand(-1, -1, c)
        y.scatter_(1, dst, y.gather(1, src))
    return y.view(b, h, w, c).permute(0, 3, 1, 2).contiguous()


JITTER_ITERATIONS = 5


def jitter_cubic(x: Tensor, amount: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#22 five rounds of per-pixel ``N(0, s^2)`` displacement, resampled at ``(y - sy, x - sx)`` with bicubic
    ``grid_sample`` and half-sample reflection (the official ``map_coordinates(order=3, mode='reflect')``
    uses a cubic B-spline; see the docs), clipped each round, truncated at the end."""
    b, _, h, w = x.shape
    dev = x.device
    s = amount.to(device=dev, dtype=x.dtype).view(b, 1, 1, 1)
    rows = torch.arange(h, device=dev, dtype=x.dtype).view(1, h, 1)
    cols = torch.arange(w, device=dev, dtype=x.dtype).view(1, 1, w)
    y = _u8(x)
    for _ in range(JITTER_ITERATIONS):
        shift = randn((b, 2, h, w), generator, dev) * s  # plane 0: sy, plane 1: sx
        gx = (2 * (cols - shift[:, 1]) + 1) / w - 1
        gy = (2 * (rows - shift[:, 0]) + 1) / h - 1
        grid = torch.stack([gx, gy], dim=-1)
        y = F.grid_sample(y, grid, mode="bicubic", padding_mode="reflection", align_corners=False).clamp(
            0, 255
        )
    return _trunc(y)


def _resize_round_trip(x: Tensor, factor: Tensor, mode: str) -> Tensor:
    def _one(xs: Tensor, f: float) -> Tensor:
        h, w = xs.shape[-2:]
        sh, sw = max(1, int(h / f)), max(1, int(w / f))
        if mode == "nearest":
            return _nearest_round_trip(_u8(xs) / 255.0, sh, sw)
        u = _u8(xs).double()
        y = _pil.resize_u8(_pil.resize_u8(u, (sh, sw), mode), (h, w), mode)
        return (y / 255.0).to(xs.dtype)

    return per_level(x, factor, _one)


def resize_bicubic(x: Tensor, factor: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#16 Pillow ``resize`` down by ``factor`` and back with the default filter (BICUBIC), bit-exact."""
    return _resize_round_trip(x, factor, "bicubic")


def resize_bilinear(x: Tensor, factor: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#23 as #16 with BILINEAR."""
    return _resize_round_trip(x, factor, "bilinear")


def resize_nearest(x: Tensor, factor: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#24 as #16 with NEAREST."""
    return _resize_round_trip(x, factor, "nearest")


def resize_lanczos(x: Tensor, factor: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#25 as #16 with LANCZOS."""
    return _resize_round_trip(x, factor, "lanczos")
