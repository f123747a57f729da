"""Cross-rank gathering with gradients, a no-op when torch.distributed is not initialised."""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_info() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside distributed runs."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` `(n, ...)` from every rank along dim 0 -> `(world * n, ...)`; gradients flow back to each
    rank's own slice (summed over ranks). All ranks must pass the same `n`."""
    _, world = world_info()
    if world == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)
