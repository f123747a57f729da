"""ARNIQA group "spatial_distortion": jitter, noneccpatch, pixelate, quantization, colorblock.

All ops: ``x (B,3,H,W)`` float32 in [0,1], ``param (B,)`` -> ``(B,3,H,W)`` float32. Loops run over a fixed
number of steps (5 jitter iterations, patch counts, distinct levels), never over samples.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ._utils import per_level, rand, randn

__all__ = ["color_block", "jitter", "non_eccentricity_patch", "pixelate", "quantization"]

JITTER_ITERATIONS = 5
NONECC_PATCH = 16
NONECC_RADIUS = 16
COLORBLOCK_PATCH = 32


# ---------------------------------------------------------------------------------------------------- jitter
def _pixel_to_grid_scale(h: int, w: int, device: torch.device) -> Tensor:
    """Factors mapping pixel offsets (col, row) to grid_sample's [-1, 1] units (align_corners=True)."""
    return torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=device)


def jitter(x: Tensor, amount: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Five rounds of per-pixel random displacement ``N(0, s^2)`` with bilinear resampling (``imscatter``).

    Reproduces the official padding/crop mismatch: rows are padded by ``ceil(|max dx_row|)`` but the crop uses
    the column pad, so each round also translates the image by the (usually 0 or 1 px) difference ``off``.
    Given the same displacement fields the output equals the official one except at a handful of border
    pixels where the official sampler divides by 1e-8 (we clamp to the border instead).
    """
    b, _, h, w = x.shape
    dev = x.device
    s = amount.to(device=dev, dtype=x.dtype).view(b, 1, 1, 1)
    scale = _pixel_to_grid_scale(h, w, dev)
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    base = torch.stack(
        torch.meshgrid(torch.arange(w, device=dev), torch.arange(h, device=dev), indexing="xy"), -1
    )
    base = base.to(x.dtype) * scale - 1  # (H,W,2) identity grid: (col, row) in [-1, 1]
    y = x
    for _ in range(JITTER_ITERATIONS):
        # plane 0 displaces columns, plane 1 rows (the official shiftmap[0] = sy, shiftmap[1] = sx)
        shift = randn((b, 2, h, w), generator, dev).mul_(s)
        pads = torch.ceil(shift.amax(dim=(2, 3)).abs())  # (B,2): official m_sy, m_sx
        off = (pads[:, 0] - pads[:, 1]).long()  # output pixel (i,j) sits over original (i+off, j-off)
        if bool((off != 0).any()):
            o = off.view(b, 1, 1)
            r_i = (rows + o).clamp(0, h - 1)
            c_i = (cols - o).clamp(0, w - 1)
            flat = (r_i * w + c_i).view(b, 1, h * w).expand(b, 2, h * w)
            shift = (
                shift.flatten(2).gather(2, flat).view(b, 2, h, w)
            )  # field read at the (clamped) base pixel
            moved = torch.stack([-off, off], dim=1).to(x.dtype).view(b, 1, 1, 2) * scale
            origin = base + moved
        else:
            origin = base
        # grid = origin - shift * scale, written once into a (B,H,W,2) buffer
        grid = torch.mul(
            shift.permute(0, 2, 3, 1), -scale, out=torch.empty(b, h, w, 2, dtype=x.dtype, device=dev)
        )
        y = F.grid_sample(y, grid.add_(origin), mode="bilinear", padding_mode="border", align_corners=True)
    return y


# ------------------------------------------------------------------------------------------- noneccpatch
def _patch_range(size: int, patch: int, margin: int) -> tuple[int, int]:
    lo = min(margin, size - patch)
    hi = max(lo, size - patch - margin)
    return lo, hi


def non_eccentricity_patch(x: Tensor, count: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``n`` sequential copies of a random 16x16 patch to a spot offset by ``round(U(-8, 8))`` per axis.

    Sources lie in ``[16, side-32]``; copies are applied in order, so later patches may copy earlier ones.
    Smaller images shrink the patch and margins instead of failing.
    """
    b, c, h, w = x.shape
    dev = x.device
    n = count.to(dev).round().long()
    n_max = int(n.max()) if b else 0
    if n_max == 0:
        return x.clone()
    ph, pw = min(NONECC_PATCH, h), min(NONECC_PATCH, w)
    lo_h, hi_h = _patch_range(h, ph, NONECC_RADIUS)
    lo_w, hi_w = _patch_range(w, pw, NONECC_RADIUS)
    u = rand((n_max, 4, b), generator, dev)
    src_c = torch.round(u[:, 0] * (hi_w - lo_w)).long() + lo_w  # (n_max, B)
    src_r = torch.round(u[:, 1] * (hi_h - lo_h)).long() + lo_h
    dst_c = torch.round((u[:, 2] - 0.5) * NONECC_RADIUS + src_c).long().clamp(0, w - pw)
    dst_r = torch.round((u[:, 3] - 0.5) * NONECC_RADIUS + src_r).long().clamp(0, h - ph)
    corners = (src_r, src_c, dst_r, dst_c)
    if dev.type == "cpu":
        return _noneccpatch_per_image(x, n, corners, ph, pw)
    return _noneccpatch_batched(x, n, corners, ph, pw)


def _noneccpatch_batched(
    x: Tensor, n: Tensor, corners: tuple[Tensor, Tensor, Tensor, Tensor], ph: int, pw: int
) -> Tensor:
    """The accelerator path of :func:`non_eccentricity_patch`: step ``t`` of every image at once (a gather and a
    scatter of whole pixels); ``corners`` = source row/column and destination row/column, each ``(n_max, B)``."""
    b, c, h, w = x.shape
    dev = x.device
    src_r, src_c, dst_r, dst_c = corners
    n_max = src_r.shape[0]
    active = torch.arange(n_max, device=dev).view(-1, 1) < n.view(1, -1)
    dst_c = torch.where(active, dst_c, src_c)  # inactive steps copy a patch onto itself: a no-op
    dst_r = torch.where(active, dst_r, src_r)
    # (B, H*W, C) pixel rows: gather/scatter move whole pixels (advanced indexing is far slower on small
    # tensors because it always enters a parallel region)
    y = x.permute(0, 2, 3, 1).reshape(b, h * w, c).clone()
    pr = torch.arange(ph, device=dev).view(1, ph, 1)
    pc = torch.arange(pw, device=dev).view(1, 1, pw)
    for t in range(n_max):
        sr, sc, dr_, dc_ = (v[t].view(b, 1, 1) for v in (src_r, src_c, dst_r, dst_c))
        rr, cc = _overlapping_copy_source(pr, pc, dr_ - sr, dc_ - sc, pw)
        src = ((sr + rr) * w + sc + cc).view(b, -1, 1).expand(-1, -1, c)
        dst = ((dr_ + pr) * w + dc_ + pc).view(b, -1, 1).expand(-1, -1, c)
        y.scatter_(1, dst, y.gather(1, src))
    return y.view(b, h, w, c).permute(0, 3, 1, 2).contiguous()


def _noneccpatch_per_image(
    x: Tensor, n: Tensor, corners: tuple[Tensor, Tensor, Tensor, Tensor], ph: int, pw: int
) -> Tensor:
    """The CPU path of :func:`non_eccentricity_patch`: per image, its ``n[i]`` copies in order as NumPy slice
    assignments (a few microseconds each, against ~10 small torch calls per step for the whole batch).
    ``corners`` = source row/column and destination row/column, each ``(n_max, B)``; the result is identical."""
    b, c, h, w = x.shape
    y = x.permute(0, 2, 3, 1).contiguous()  # (B,H,W,C): a patch is one strided block
    arr = y.detach().numpy()
    sr_all, sc_all, dr_all, dc_all = (v.tolist() for v in corners)
    for i, count in enumerate(n.tolist()):
        img = arr[i]
        for t in range(count):
            sr, sc, dr, dc = sr_all[t][i], sc_all[t][i], dr_all[t][i], dc_all[t][i]
            rr, cc = _copy_map(dr - sr, dc - sc, ph, pw)
            img[dr : dr + ph, dc : dc + pw] = img[sr + rr, sc + cc]
    return y.permute(0, 3, 1, 2).contiguous()


@lru_cache(maxsize=1024)
def _copy_map(dr: int, dc: int, ph: int, pw: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ph, pw)`` source row/column offsets of each destination pixel of a patch copied by ``(dr, dc)`` (see
    :func:`_overlapping_copy_source`), as NumPy index arrays."""
    r = torch.arange(ph).view(ph, 1)
    c = torch.arange(pw).view(1, pw)
    rr, cc = _overlapping_copy_source(r, c, torch.tensor(dr), torch.tensor(dc), pw)
    return rr.expand(ph, pw).numpy().copy(), cc.expand(ph, pw).numpy().copy()


def _overlapping_copy_source(
    r: Tensor, c: Tensor, dr: Tensor, dc: Tensor, width: int
) -> tuple[Tensor, Tensor]:
    """Patch-relative source of each destination pixel of an in-place copy between overlapping windows.

    The official code assigns a *view* of the image to an overlapping region of itself; torch copies row by
    row from the top, so when the destination lies ``dr > 0`` rows below the source, rows already written are
    read again and the patch repeats with period ``(dr, dc)``. Destination ``(r, c)`` therefore shows source
    ``(r - j*dr, c - j*dc)`` with ``j`` the number of such repeats (0 when ``dr <= 0``).
    """
    big = torch.iinfo(torch.long).max // 4
    down = dr > 0
    j = torch.where(down, torch.div(r, dr.clamp_min(1), rounding_mode="floor"), 0)
    right = torch.div(c, dc.clamp_min(1), rounding_mode="floor")
    left = torch.div(width - 1 - c, (-dc).clamp_min(1), rounding_mode="floor")
    j = torch.minimum(j, torch.where(dc > 0, right, torch.where(dc < 0, left, big)))
    return r - j * dr, c - j * dc


# ---------------------------------------------------------------------------------------------- pixelate
def _pixelate_shared(x: Tensor, strength: float) -> Tensor:
    h, w = x.shape[-2:]
    z = 0.95 - strength**0.6
    small = F.interpolate(x, size=(max(1, int(h * z)), max(1, int(w * z))), mode="nearest")
    return F.interpolate(small, size=(h, w), mode="nearest")


def pixelate(x: Tensor, strength: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Nearest-neighbour down to ``int(side * (0.95 - s**0.6))`` and back up (kornia ``resize`` semantics)."""
    return per_level(x, strength, _pixelate_shared)


# ------------------------------------------------------------------------------------------ quantization
def _quantization_bins(levels: int) -> list[int]:
    """Bucket edges ``[0, int(255*i/L) for i=1..L-1, 256]`` as the official code derives them."""
    edges = np.linspace(0.0, 255.0, levels + 1)  # np.histogram's equal-width bin edges
    inner = torch.tensor(edges[1:levels].tolist(), dtype=torch.float32)  # torch.tensor of floats, then int
    return [0, *inner.int().tolist(), 256]


def _min_max(v: Tensor) -> Tensor:
    """Per-sample min-max stretch to [0,1] (left unchanged when the sample is constant), ``v (B,C,H,W)``."""
    flat = v.flatten(1)
    lo = flat.amin(dim=1).view(-1, 1, 1, 1)
    hi = flat.amax(dim=1).view(-1, 1, 1, 1)
    return torch.where(hi > lo, (v - lo) / (hi - lo).clamp_min(1e-12), v)


def _quantization_shared(x: Tensor, levels: float) -> Tensor:
    # bucketize(v, integer edges) only depends on ceil(v), so the buckets of v = 255*x in [0, 255] come from a
    # 256-entry table indexed by ceil(v) (same values as bucketizing v, ~8x faster on a CPU)
    bins = torch.tensor(_quantization_bins(int(round(levels))), dtype=torch.float32, device=x.device)
    table = torch.bucketize(torch.arange(256, dtype=torch.float32, device=x.device), bins).to(torch.float32)
    return _min_max(torch.take(table, (x * 255.0).ceil_().clamp_(0, 255).long()))


def quantization(x: Tensor, levels: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Per-channel uniform quantisation into ``L+1`` buckets, then a per-image min-max stretch."""
    return per_level(x, levels, _quantization_shared)


# -------------------------------------------------------------------------------------------- colorblock
def color_block(x: Tensor, count: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``n`` opaque 32x32 patches of uniform random RGB colour at uniform positions in ``[0, side-32)``."""
    b, c, h, w = x.shape
    dev = x.device
    n = count.to(dev).round().long()
    n_max = int(n.max()) if b else 0
    if n_max == 0:
        return x.clone()
    ph, pw = min(COLORBLOCK_PATCH, h), min(COLORBLOCK_PATCH, w)
    colors = rand((b, n_max, c), generator, dev)
    u = rand((2, b, n_max), generator, dev)
    top = torch.floor(u[0] * (h - ph)).long()  # (B, n_max)
    left = torch.floor(u[1] * (w - pw)).long()
    if dev.type == "cpu":
        return _color_block_per_image(x, n, colors, top, left, ph, pw)
    return _color_block_batched(x, n, colors, top, left, ph, pw)


def _color_block_per_image(
    x: Tensor, n: Tensor, colors: Tensor, top: Tensor, left: Tensor, ph: int, pw: int
) -> Tensor:
    """The CPU path of :func:`color_block`: per image, its ``n[i]`` patches in order as NumPy slice fills.
    ``colors (B, n_max, C)``, ``top``/``left (B, n_max)``; the result equals :func:`_color_block_batched`'s."""
    y = x.clone()
    arr, fills = y.detach().numpy(), colors.detach().numpy()
    for i, (count, tops, lefts) in enumerate(zip(n.tolist(), top.tolist(), left.tolist())):
        for t in range(count):
            arr[i, :, tops[t] : tops[t] + ph, lefts[t] : lefts[t] + pw] = fills[i, t, :, None, None]
    return y


def _color_block_batched(
    x: Tensor, n: Tensor, colors: Tensor, top: Tensor, left: Tensor, ph: int, pw: int
) -> Tensor:
    """The accelerator path of :func:`color_block`: the last patch covering each pixel, for all images at once."""
    b, c, h, w = x.shape
    dev = x.device
    n_max = colors.shape[1]
    active = torch.arange(n_max, device=dev).view(1, -1) < n.view(-1, 1)
    rows = torch.arange(h, device=dev).view(1, h)
    cols = torch.arange(w, device=dev).view(1, w)
    last = torch.full((b, h, w), -1, dtype=torch.long, device=dev)  # last patch covering each pixel, -1: none
    for t in range(n_max):  # later patches overwrite earlier ones
        in_r = (rows >= top[:, t : t + 1]) & (rows < top[:, t : t + 1] + ph) & active[:, t : t + 1]
        in_c = (cols >= left[:, t : t + 1]) & (cols < left[:, t : t + 1] + pw)
        last = torch.where(in_r.unsqueeze(-1) & in_c.unsqueeze(-2), t, last)
    fill = torch.gather(colors, 1, last.clamp_min(0).view(b, -1, 1).expand(-1, -1, c))  # (B,H*W,C)
    fill = fill.view(b, h, w, c).permute(0, 3, 1, 2)
    return torch.where((last >= 0).unsqueeze(1), fill, x)
