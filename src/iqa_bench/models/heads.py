"""Small heads shared by methods."""

from __future__ import annotations

import torch
from torch import nn


def mlp_projector(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """SimCLR projector: Linear(in, hidden) -> ReLU -> Linear(hidden, out)."""
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))


def score_head(in_dim: int, hidden_dim: int | None = None, dropout: float = 0.0) -> nn.Sequential:
    """Scalar quality head (higher = better): Linear(in, 1), or Linear(in, hidden) -> ReLU -> Dropout -> Linear(.,1)
    when `hidden_dim` is set. The output is raw and unbounded (RankIQA's fc8_m)."""
    if not hidden_dim:
        return (
            nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, 1))
            if dropout > 0
            else nn.Sequential(nn.Linear(in_dim, 1))
        )
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden_dim, 1)
    )


class LevelPool(nn.Module):
    """Pool a feature map `(B, C, H, W)` to `(B, C)` ("avg") or `(B, 2C)` ("avg_std": mean ⊕ std per channel)."""

    MODES = ("avg", "avg_std")

    def __init__(self, mode: str = "avg") -> None:
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"pool must be one of {self.MODES}, got {mode!r}")
        self.mode = mode

    def out_dim(self, channels: int) -> int:
        return channels * (2 if self.mode == "avg_std" else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        mean = x.mean(dim=(2, 3))
        if self.mode == "avg":
            return mean
        std = x.flatten(2).std(dim=2, unbiased=False)
        return torch.cat([mean, std], dim=1)


class MultiLevelFusionHead(nn.Module):
    """MLF fusion (our design, the RankIQA/MLF papers and code): per level pool -> Linear(C_l', proj_dim) -> LayerNorm,
    concatenate the levels, then MLP (hidden, ReLU, dropout) -> 1 score (the regression layer)."""

    def __init__(
        self,
        channels: list[int],
        proj_dim: int = 256,
        hidden_dim: int = 512,
        dropout: float = 0.5,
        pool: str = "avg",
    ) -> None:
        super().__init__()
        self.pool = LevelPool(pool)
        self.projections = nn.ModuleList(
            nn.Sequential(nn.Linear(self.pool.out_dim(c), proj_dim), nn.LayerNorm(proj_dim)) for c in channels
        )
        self.fused_dim = proj_dim * len(channels)
        self.mlp = score_head(self.fused_dim, hidden_dim, dropout)

    def fuse(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """Level maps -> fused vector `(B, proj_dim · n_levels)` (the input of the regression MLP)."""
        return torch.cat([proj(self.pool(m)) for proj, m in zip(self.projections, maps)], dim=1)

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
        return self.mlp(self.fuse(maps)).squeeze(1)
