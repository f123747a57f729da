"""MoCo-v2 InfoNCE against a queue of negatives (Re-IQA, the Re-IQA paper and code).

`KeyQueue` is a FIFO ring buffer of L2-normalised keys, kept as buffers (`queue` and `ptr`, so both are saved in
checkpoints, unlike the official code whose pointer restarts at 0 on resume). It accepts ANY queue length and ANY
number of keys per step: writes wrap around modulo the length (the official PyContrast queue does too; solo-learn
asserts `K % batch == 0` and lightly drops the overflow). In a distributed run `enqueue` gathers the keys of every
rank (in rank order) first, so all ranks hold the same queue and no key is enqueued twice or skipped.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from iqa_bench.losses.distributed import world_info


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x (n_r, ...)` of every rank along dim 0 (rank order), without gradients. Ranks may pass
    different `n_r`. Identity outside distributed runs."""
    _, world = world_info()
    if world == 1:
        return x
    n = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    sizes_i = [int(s.item()) for s in sizes]
    m = max(sizes_i)
    padded = x.new_zeros((m, *x.shape[1:]))
    padded[: x.shape[0]] = x
    out = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(out, padded.contiguous())
    return torch.cat([o[:s] for o, s in zip(out, sizes_i)], dim=0)


class KeyQueue(nn.Module):
    """Queue of `size` keys of dimension `dim`, initialised with random unit vectors (seeded, so every rank starts
    from the same queue without a broadcast).

    `queue (size, dim)` and `ptr ()` are buffers. `enqueue(keys)` writes the (gathered) keys at `ptr`, wrapping
    around; if more than `size` keys arrive at once, only the last `size` are kept (exactly what writing them one
    by one would leave).
    """

    def __init__(self, size: int, dim: int, seed: int = 0) -> None:
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"queue size and dim must be >= 1, got {size}, {dim}")
        g = torch.Generator().manual_seed(int(seed))
        self.register_buffer("queue", F.normalize(torch.randn(size, dim, generator=g), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return int(self.queue.shape[0])

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, gather: bool = True) -> None:
        """Append `keys (n, dim)` (of every rank when `gather`) at the pointer, wrapping around."""
        if keys.ndim != 2 or keys.shape[1] != self.queue.shape[1]:
            raise ValueError(f"keys must be (n, {self.queue.shape[1]}), got {tuple(keys.shape)}")
        keys = keys.detach()
        if gather:
            keys = gather_no_grad(keys)
        keys = keys.to(device=self.queue.device, dtype=self.queue.dtype)
        n, k = keys.shape[0], self.size
        if n == 0:
            return
        idx = (self.ptr + torch.arange(n, device=self.queue.device)) % k
        if n > k:  # only the last k survive a sequential write
            idx, keys = idx[-k:], keys[-k:]
        self.queue.index_copy_(0, idx, keys)
        self.ptr.copy_((self.ptr + n) % k)

    def forward(self) -> torch.Tensor:
        """The current queue (detached clone), `(size, dim)`."""
        return self.queue.detach().clone()


def infonce_queue(
    q: torch.Tensor,
    k: torch.Tensor,
    queue: torch.Tensor,
    temperature: float = 0.2,
    extra_negatives: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MoCo InfoNCE: for each query, logits `[q·k⁺ | q·queueᵀ] / T` and cross entropy with target 0.

    Args:
        q: `(n, d)` queries (gradients flow); normalised here.
        k: `(n, d)` positive keys (row i is the positive of q[i]); detached and normalised here.
        queue: `(K, d)` negatives (unit vectors; detached here).
        temperature: T > 0 (Re-IQA/MoCo-v2: 0.2).
        extra_negatives: optional `(n, E, d)` per-query negatives (detached, normalised here) appended after the
            queue, e.g. Re-IQA's intra-image hard negatives (same content, other distortion).
    Returns: (loss: mean over the local queries, accuracy: fraction of queries whose positive ranks first).
    In a distributed run each rank passes its own queries; DDP's gradient averaging makes the result equal to one
    process holding the whole batch (the queue is identical on every rank).
    """
    if q.shape != k.shape or q.ndim != 2 or queue.ndim != 2 or queue.shape[1] != q.shape[1]:
        raise ValueError(
            f"q, k must be (n, d) and queue (K, d); got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(queue.shape)}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    q = F.normalize(q.float(), dim=1)
    k = F.normalize(k.detach().float(), dim=1)
    l_pos = (q * k).sum(dim=1, keepdim=True)
    l_neg = q @ queue.detach().float().T
    parts = [l_pos, l_neg]
    if extra_negatives is not None:
        if (
            extra_negatives.ndim != 3
            or extra_negatives.shape[0] != q.shape[0]
            or extra_negatives.shape[2] != q.shape[1]
        ):
            raise ValueError(f"extra_negatives must be (n, E, d), got {tuple(extra_negatives.shape)}")
        extra = F.normalize(extra_negatives.detach().float(), dim=2)
        parts.append(torch.einsum("nd,ned->ne", q, extra))
    logits = torch.cat(parts, dim=1) / temperature
    target = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    loss = F.cross_entropy(logits, target)
    acc = (logits.argmax(dim=1) == 0).float().mean().detach()
    return loss, acc
