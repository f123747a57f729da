"""NT-Xent (SimCLR normalised-temperature cross entropy), gathering negatives across ranks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from iqa_bench.losses.distributed import gather_with_grad, world_info


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """NT-Xent loss for paired embeddings.

    Args:
        z1: `(N, d)` embeddings of view 1 (row i is the anchor of pair i); need not be normalised.
        z2: `(N, d)` embeddings of view 2 (row i is the positive of z1[i] and vice versa).
        temperature: softmax temperature τ > 0.
    Returns: scalar, the mean over all 2N anchors (of every rank in a distributed run) of
        −log( exp(s(i, pos)/τ) / Σ_{k≠i} exp(s(i, k)/τ) ), s = cosine similarity, k over the 2N·world embeddings.
    In a distributed run each rank passes its local rows; the result and the gradients equal those of one process
    holding the whole batch (DDP averages gradients over ranks, which turns the per-rank means into the global mean).
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"z1 and z2 must both be (N, d), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z1 = F.normalize(z1.float(), dim=1)
    z2 = F.normalize(z2.float(), dim=1)
    rank, world = world_info()
    n = z1.shape[0]
    all1, all2 = gather_with_grad(z1), gather_with_grad(z2)
    bank = torch.cat([all1, all2], dim=0)  # (2 N W, d): [view1 of all ranks, view2 of all ranks]
    anchors = torch.cat([z1, z2], dim=0)  # (2 N, d) local
    logits = anchors @ bank.T / temperature
    local = torch.arange(n, device=z1.device) + rank * n
    self_idx = torch.cat([local, local + n * world])
    pos_idx = torch.cat([local + n * world, local])
    logits[torch.arange(2 * n, device=z1.device), self_idx] = float("-inf")
    return F.cross_entropy(logits, pos_idx)
