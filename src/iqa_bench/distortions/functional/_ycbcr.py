"""Studio-range YCbCr (ITU-R BT.601, Y in [16,235], Cb/Cr in [16,240] over 255), as MATLAB's ``rgb2ycbcr`` and
scikit-image's ``rgb2ycbcr``/``ycbcr2rgb`` compute it, on ``(B,3,H,W)`` tensors in [0,1] units.

kornia's YCbCr is full range; the TID2013 generators (MATLAB) and Re-IQA (scikit-image) use this one.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["rgb_to_ycbcr_studio", "ycbcr_studio_to_rgb"]

_M = torch.tensor(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]], dtype=torch.float64
)
_OFFSET = torch.tensor([16.0, 128.0, 128.0], dtype=torch.float64)


def rgb_to_ycbcr_studio(x: Tensor) -> Tensor:
    """RGB in [0,1] -> YCbCr divided by 255 (Y in [16/255, 235/255], chroma centred on 128/255)."""
    m = (_M / 255.0).to(device=x.device, dtype=x.dtype)
    off = (_OFFSET / 255.0).to(device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return torch.einsum("ij,bjhw->bihw", m, x) + off


def ycbcr_studio_to_rgb(y: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_ycbcr_studio` (not clipped)."""
    inv = torch.linalg.inv(_M / 255.0).to(device=y.device, dtype=y.dtype)
    off = (_OFFSET / 255.0).to(device=y.device, dtype=y.dtype).view(1, 3, 1, 1)
    return torch.einsum("ij,bjhw->bihw", inv, y - off)
