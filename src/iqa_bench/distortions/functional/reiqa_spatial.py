"""Re-IQA ops that move or resample pixels: colour blocks, pixelation, non-eccentricity, jitter, resize round
trips (see :mod:`.reiqa` for the conventions)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from . import _pil
from ._reiqa_common import _trunc, _u8
from ._utils import per_level, rand, randint, randn

# ------------------------------------------------------------------------------------------------ spatial
COLORBLOCK_PATCH = 32


def _count_and_patch(x: Tensor, count: Tensor, patch: int) -> tuple[Tensor, Tensor, int, int, int]:
    """Shared start of the patch-count ops on ``x (B, C, H, W)``: ``x`` quantised to uint8 levels as float in
    [0, 1], the per-image count ``n (B,)`` (rounded, long), ``n_max`` (0 for an empty batch) and the patch size
    ``(ph, pw)`` clipped to the image."""
    h, w = x.shape[-2:]
    n = count.to(x.device).round().long()
    n_max = int(n.max()) if x.shape[0] else 0
    return _u8(x) / 255.0, n, n_max, min(patch, h), min(patch, w)


def color_block_u8(x: Tensor, count: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """#19 ``n`` 32x32 blocks of a random integer colour at ``int(U * (side - 32))``, later ones on top."""
    b, c, h, w = x.shape
    dev = x.device
    xf, n, n_max, ph, pw = _count_and_patch(x, count, COLORBLOCK_PATCH)
    if n_max == 0:
        return xf
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
    xf, n, n_max, ph, pw = _count_and_patch(x, count, NONECC_PATCH)
    if n_max == 0:
        return xf
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
