"""Re-IQA ops that add or remove noise, and JPEG compression (see :mod:`.reiqa` for the conventions)."""

from __future__ import annotations

import torch
from torch import Tensor

from . import _pil
from ._reiqa_common import _col, _trunc, _u8
from ._utils import per_level, rand, randint, randn
from ._ycbcr import rgb_to_ycbcr_studio, ycbcr_studio_to_rgb


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
