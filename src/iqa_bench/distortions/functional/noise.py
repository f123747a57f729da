"""ARNIQA group "noise": whitenoise, whitenoiseCC, impulsenoise, multnoise.

All ops: ``x (B,3,H,W)`` float32 in [0,1], ``param (B,)`` (a variance or a density) -> ``(B,3,H,W)`` float32.
Noise is drawn for the whole batch at once from the explicit generator; per-sample parameters broadcast.
"""

from __future__ import annotations

import kornia
import torch
from torch import Tensor

from ._utils import randint, randn

__all__ = ["impulse_noise", "multiplicative_noise", "white_noise", "white_noise_cc"]


def _std(param: Tensor, x: Tensor) -> Tensor:
    return param.to(device=x.device, dtype=x.dtype).clamp_min(0).sqrt().view(-1, 1, 1, 1)


def white_noise(x: Tensor, var: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``x + N(0, var)`` i.i.d. per channel and pixel."""
    return x + randn(x.shape, generator, x.device) * _std(var, x)


def white_noise_cc(x: Tensor, var: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """N(0, var) added to all three YCbCr channels (kornia YCbCr, Y included, as the official code does)."""
    noise = randn(x.shape, generator, x.device) * _std(var, x)
    return kornia.color.ycbcr_to_rgb(kornia.color.rgb_to_ycbcr(x) + noise)


def multiplicative_noise(x: Tensor, var: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Speckle: ``x + x * N(0, var)``."""
    return x + x * randn(x.shape, generator, x.device) * _std(var, x)


def impulse_noise(x: Tensor, density: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Coloured salt and pepper: ``floor(d*3*H*W)`` (channel, row, col) positions drawn with replacement.

    The first ``floor(n/2)`` positions become 1, the rest 0 (pepper written after salt, as in the official code).
    """
    b, c, h, w = x.shape
    size = c * h * w
    d = density.to(device=x.device, dtype=torch.float64)
    n = torch.floor(d * size).long()  # official: int(d * 3 * H * W)
    n_salt = n // 2
    n_max = int(n.max())
    if n_max == 0:
        return x.clone()
    pos = randint(size, (b, n_max), generator, x.device)
    k = torch.arange(n_max, device=x.device).view(1, -1)
    trash = torch.full_like(pos, size)  # writes aimed at an extra column that is dropped afterwards
    flat = torch.cat([x.reshape(b, size), x.new_zeros(b, 1)], dim=1)
    flat.scatter_(1, torch.where(k < n_salt.view(-1, 1), pos, trash), 1.0)
    pepper = (k >= n_salt.view(-1, 1)) & (k < n.view(-1, 1))
    flat.scatter_(1, torch.where(pepper, pos, trash), 0.0)
    return flat[:, :size].reshape(b, c, h, w)
