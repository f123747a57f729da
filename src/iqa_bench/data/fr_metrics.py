"""Full-reference quality metrics used to make pseudo-MOS for the built-in evaluation set."""

from __future__ import annotations

import torch
import torch.nn.functional as F

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _gaussian_1d(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).float()


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filtering of `(..., H, W)` (strided windows @ taps: faster than conv2d on CPU)."""
    x = x.unfold(-1, g.numel(), 1) @ g  # along W
    return x.unfold(-2, g.numel(), 1) @ g  # along H


def luma(x: torch.Tensor) -> torch.Tensor:
    """RGB `(B, 3, H, W)` in [0, 1] -> BT.601 luma `(B, 1, H, W)`."""
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


@torch.no_grad()
def ms_ssim(x: torch.Tensor, ref: torch.Tensor, kernel_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Multi-scale SSIM (Wang et al. 2003) on luma, data range 1.

    x, ref: `(B, 3, H, W)` or `(B, 1, H, W)` in [0, 1], min side ≥ (kernel_size - 1) * 16 + 1 (161 for 11).
    Returns `(B,)` in [0, 1] (negative contrast-structure terms clamped at 0, as torchmetrics' 'relu'
    normalisation), 1 = identical. Same maths as torchmetrics' MS-SSIM on one channel, with a separable filter.
    """
    if x.shape != ref.shape:
        raise ValueError(f"x and ref must have the same shape, got {tuple(x.shape)} and {tuple(ref.shape)}")
    if x.shape[1] == 3:
        x, ref = luma(x.float()), luma(ref.float())
    x, ref = x.float(), ref.float()
    g = _gaussian_1d(kernel_size, sigma, x.device)
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for level, _ in enumerate(MS_SSIM_WEIGHTS):
        moments = _blur(torch.cat([x, ref, x * x, ref * ref, x * ref], dim=1), g)
        mu_x, mu_y = moments[:, 0:1], moments[:, 1:2]
        sxx = moments[:, 2:3] - mu_x**2
        syy = moments[:, 3:4] - mu_y**2
        sxy = moments[:, 4:5] - mu_x * mu_y
        cs = (2 * sxy + c2) / (sxx + syy + c2)
        if level < len(MS_SSIM_WEIGHTS) - 1:
            values.append(cs.flatten(1).mean(1).clamp_min(0))
            x, ref = F.avg_pool2d(x, 2), F.avg_pool2d(ref, 2)
        else:
            lum = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
            values.append((lum * cs).flatten(1).mean(1).clamp_min(0))
    stacked = torch.stack(values, dim=1)  # (B, 5)
    w = torch.tensor(MS_SSIM_WEIGHTS, device=x.device)
    return torch.prod(stacked**w, dim=1)
