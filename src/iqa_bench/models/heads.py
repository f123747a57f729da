"""Small heads shared by methods."""

from __future__ import annotations

from torch import nn


def mlp_projector(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """SimCLR projector: Linear(in, hidden) -> ReLU -> Linear(hidden, out)."""
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))
