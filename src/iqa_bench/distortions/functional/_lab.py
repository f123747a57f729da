"""sRGB <-> CIE Lab (D65) with kornia's constants, in fewer passes over memory.

``kornia.color.rgb_to_lab``/``lab_to_rgb`` are the reference (the official ARNIQA and Re-IQA code call them);
these functions compute the same formulas with the white point folded into the 3x3 matrices and in-place
intermediates, about 1.3-1.8x faster on a CPU. Values agree with kornia to float32 rounding (tested: Lab within
1e-4, RGB within 1e-5 on random and out-of-gamut inputs).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["lab_to_rgb", "rgb_to_lab"]

_RGB_TO_XYZ = torch.tensor(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=torch.float64,
)
_XYZ_TO_RGB = torch.tensor(
    [
        [3.2404813432005266, -1.5371515162713185, -0.4985363261688878],
        [-0.9692549499965682, 1.8759900014898907, 0.0415559265582928],
        [0.0556466391351772, -0.2040413383665112, 1.0573110696453443],
    ],
    dtype=torch.float64,
)
_WHITE = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)
_TO_NORMALISED_XYZ = _RGB_TO_XYZ / _WHITE.view(3, 1)  # linear RGB -> XYZ / white
_FROM_NORMALISED_XYZ = _XYZ_TO_RGB * _WHITE.view(1, 3)  # XYZ / white -> linear RGB


def _mix(matrix: Tensor, x: Tensor) -> Tensor:
    """``matrix (3,3) @ x (B,3,H,W)`` over the channel axis."""
    return torch.einsum("ij,bjhw->bihw", matrix.to(device=x.device, dtype=x.dtype), x)


def rgb_to_lab(x: Tensor) -> Tensor:
    """sRGB ``x (B,3,H,W)`` float in [0,1] -> Lab ``(B,3,H,W)``: L in [0,100], a/b roughly in [-128,127]."""
    lin = torch.where(x > 0.04045, x.add(0.055).clamp_(min=0.0).div_(1.055).pow_(2.4), x / 12.92)
    xyz = _mix(_TO_NORMALISED_XYZ, lin)
    f = torch.where(xyz > 0.008856, xyz.clamp(min=0.008856).pow_(1.0 / 3.0), xyz.mul(7.787).add_(4.0 / 29.0))
    fx, fy, fz = f.unbind(1)
    return torch.stack([fy.mul(116.0).sub_(16.0), (fx - fy).mul_(500.0), (fy - fz).mul_(200.0)], dim=1)


def lab_to_rgb(lab: Tensor, clip: bool = True) -> Tensor:
    """Lab ``(B,3,H,W)`` -> sRGB ``(B,3,H,W)``, clipped to [0,1] when ``clip`` (kornia's default)."""
    lum, a, b = lab.unbind(1)
    fy = lum.add(16.0).div_(116.0)
    f = torch.stack([a.div(500.0).add_(fy), fy, (fy - b / 200.0).clamp_(min=0.0)], dim=1)
    xyz = torch.where(f > 0.2068966, f.pow(3.0), f.sub(4.0 / 29.0).div_(7.787))
    rgb = _mix(_FROM_NORMALISED_XYZ, xyz)
    out = torch.where(
        rgb > 0.0031308, rgb.clamp(min=0.0031308).pow_(1.0 / 2.4).mul_(1.055).sub_(0.055), rgb * 12.92
    )
    return out.clamp_(0.0, 1.0) if clip else out
