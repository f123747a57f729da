"""Shared body of the DDP loss-equality tests (gloo on CPU in tests/integration, NCCL on GPUs in tests/gpu):
WORLD processes x batch N/WORLD must give the loss and gradients of 1 process x batch N, for NT-Xent (negatives
gathered with gradients) and InfoNCE with a queue (keys of every rank enqueued, in rank order)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from iqa_bench.losses.infonce_queue import KeyQueue, infonce_queue
from iqa_bench.losses.nt_xent import nt_xent

WORLD, N, D, QUEUE, T_NTX, T_NCE = 2, 8, 16, 13, 0.1, 0.2


def payload() -> dict[str, torch.Tensor]:
    """Seeded float64 inputs `z1, z2, q, k`, each `(N, D)`: the full batch every rank slices its share from."""
    g = torch.Generator().manual_seed(0)
    return {name: torch.randn(N, D, generator=g, dtype=torch.float64) for name in ("z1", "z2", "q", "k")}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for MASTER_PORT)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, backend: str, port: int, out_dir: str) -> None:
    """One rank (`mp.spawn` target): losses and gradients on its slice of the batch, saved on CPU to
    `out_dir/rank{rank}.pt`. `backend` "nccl" runs on GPU `rank`, "gloo" on the CPU with one thread."""
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    if backend == "nccl":
        torch.cuda.set_device(rank)
        dev = torch.device("cuda", rank)
    else:
        torch.set_num_threads(1)
        dev = torch.device("cpu")
    dist.init_process_group(backend, rank=rank, world_size=WORLD)
    try:
        p = {k: v.to(dev) for k, v in payload().items()}
        n = N // WORLD
        sl = slice(rank * n, (rank + 1) * n)
        z1 = p["z1"][sl].clone().requires_grad_(True)
        z2 = p["z2"][sl].clone().requires_grad_(True)
        loss_ntx = nt_xent(z1, z2, T_NTX)
        loss_ntx.backward()
        queue = KeyQueue(QUEUE, D, seed=7).double().to(dev)
        q = p["q"][sl].clone().requires_grad_(True)
        loss_nce, _ = infonce_queue(q, p["k"][sl], queue(), T_NCE)
        loss_nce.backward()
        queue.enqueue(p["k"][sl])
        uneven = KeyQueue(QUEUE, D, seed=7).double().to(dev)
        uneven.enqueue(p["k"][: rank + 1])  # ranks may enqueue different numbers of keys
        out = {
            "ntx": loss_ntx,
            "g1": z1.grad,
            "g2": z2.grad,
            "nce": loss_nce,
            "gq": q.grad,
            "queue": queue.queue,
            "ptr": queue.ptr,
            "uneven": uneven.queue,
        }
        torch.save(
            {k: v.detach().cpu().clone() for k, v in out.items()}, os.path.join(out_dir, f"rank{rank}.pt")
        )
        dist.barrier()  # no rank tears the group down while another is still in a collective
    finally:
        dist.destroy_process_group()


def check_ranks_equal_one_process(backend: str, out_dir: Path) -> None:
    """Spawn WORLD `worker`s on `backend` and assert their results against one process on the whole batch."""
    mp.spawn(worker, args=(backend, free_port(), str(out_dir)), nprocs=WORLD, join=True)
    res = [torch.load(out_dir / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    p = payload()
    z1, z2, q = (p[k].clone().requires_grad_(True) for k in ("z1", "z2", "q"))
    ref_ntx = nt_xent(z1, z2, T_NTX)
    ref_ntx.backward()
    queue = KeyQueue(QUEUE, D, seed=7).double()
    ref_nce, _ = infonce_queue(q, p["k"], queue(), T_NCE)
    ref_nce.backward()
    queue.enqueue(p["k"])
    n = N // WORLD
    # DDP averages gradients over ranks, and each rank's loss is its local mean: compare the rank mean
    torch.testing.assert_close(sum(r["ntx"] for r in res).double() / WORLD, ref_ntx.detach().double())
    torch.testing.assert_close(sum(r["nce"] for r in res).double() / WORLD, ref_nce.detach().double())
    for rank, r in enumerate(res):
        sl = slice(rank * n, (rank + 1) * n)
        torch.testing.assert_close(r["g1"].double() / WORLD, z1.grad[sl].double())
        torch.testing.assert_close(r["g2"].double() / WORLD, z2.grad[sl].double())
        torch.testing.assert_close(r["gq"].double() / WORLD, q.grad[sl].double())
        torch.testing.assert_close(r["queue"], queue.queue)  # same queue on every rank, keys in batch order
        assert int(r["ptr"]) == int(queue.ptr) == N % QUEUE
    expected = KeyQueue(QUEUE, D, seed=7).double()
    expected.enqueue(torch.cat([p["k"][:1], p["k"][:2]]))
    for r in res:
        torch.testing.assert_close(r["uneven"], expected.queue)
