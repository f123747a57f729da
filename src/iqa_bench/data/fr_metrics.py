"""Full-reference quality metrics used to make pseudo-MOS for the built-in evaluation set.

MS-SSIM is torchmetrics' implementation, applied to luma. `SCORER` names the scoring function and its settings;
the built-in set's score cache key includes it, so a change of scorer recomputes the cached table.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

__all__ = ["SCORER", "luma", "ms_ssim"]

# part of the built-in evaluation set's cache key: change it whenever the scores `ms_ssim` returns change
SCORER = "torchmetrics-ms-ssim-luma-k11-s1.5-relu"


def luma(x: torch.Tensor) -> torch.Tensor:
    """RGB `(B, 3, H, W)` in [0, 1] -> BT.601 luma `(B, 1, H, W)`."""
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


@torch.no_grad()
def ms_ssim(x: torch.Tensor, ref: torch.Tensor, kernel_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Multi-scale SSIM (Wang et al. 2003) on luma, data range 1 (torchmetrics, 'relu' normalisation).

    x, ref: `(B, 3, H, W)` (converted to luma) or `(B, 1, H, W)` in [0, 1], min side > (kernel_size - 1) * 16
    (161 for 11). Returns float32 `(B,)` in [0, 1], 1 = identical.
    """
    if x.shape != ref.shape:
        raise ValueError(f"x and ref must have the same shape, got {tuple(x.shape)} and {tuple(ref.shape)}")
    x, ref = x.float(), ref.float()
    if x.shape[1] == 3:
        x, ref = luma(x), luma(ref)
    out = multiscale_structural_similarity_index_measure(
        x, ref, data_range=1.0, kernel_size=kernel_size, sigma=sigma, reduction="none", normalize="relu"
    )
    return out.reshape(x.shape[0]).float()
