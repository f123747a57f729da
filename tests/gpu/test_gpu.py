"""GPU tests (`make test-gpu`): bank CPU/CUDA agreement, one bf16 training step per method in its paper setting,
and DDP loss/gradient equality over NCCL when two GPUs exist. Skipped without CUDA."""

from __future__ import annotations

import importlib.util
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from iqa_bench.losses.infonce_queue import KeyQueue, infonce_queue
from iqa_bench.losses.nt_xent import nt_xent
from iqa_bench.utils.resolvers import PROJECT_ROOT

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", PROJECT_ROOT / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("bank", ["arniqa", "reiqa"])
def test_bank_cpu_cuda_agreement(bank):
    rows = _gpu_check().bank_agreement("cpu", "cuda", batch=10, size=96, banks=[bank])
    bad = [r for r in rows if not r["ok"]]
    assert not bad, bad


@pytest.mark.parametrize("method", ["arniqa", "rankiqa", "mlf", "reiqa"])
def test_bf16_training_step_per_method(method, tmp_path):
    r = _gpu_check().train_steps(method, "cuda", steps=2, folder=tmp_path, amp=True, warmup=1)
    assert r["finite"], r
    assert r["peak_gib"] is not None and r["peak_gib"] > 0


WORLD, N, D, QUEUE, T_NTX, T_NCE = 2, 8, 16, 13, 0.1, 0.2


def _payload() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {name: torch.randn(N, D, generator=g, dtype=torch.float64) for name in ("z1", "z2", "q", "k")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=WORLD)
    try:
        dev = torch.device("cuda", rank)
        p = {k: v.to(dev) for k, v in _payload().items()}
        sl = slice(rank * (N // WORLD), (rank + 1) * (N // WORLD))
        z1 = p["z1"][sl].clone().requires_grad_(True)
        z2 = p["z2"][sl].clone().requires_grad_(True)
        loss_ntx = nt_xent(z1, z2, T_NTX)
        loss_ntx.backward()
        queue = KeyQueue(QUEUE, D, seed=7).double().to(dev)
        q = p["q"][sl].clone().requires_grad_(True)
        loss_nce, _ = infonce_queue(q, p["k"][sl], queue(), T_NCE)
        loss_nce.backward()
        queue.enqueue(p["k"][sl])
        out = {"ntx": loss_ntx, "g1": z1.grad, "nce": loss_nce, "gq": q.grad, "queue": queue.queue}
        torch.save({k: v.detach().cpu() for k, v in out.items()}, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_ddp_nccl_losses_equal_one_process(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    res = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    p = _payload()
    z1, z2, q = (p[k].clone().requires_grad_(True) for k in ("z1", "z2", "q"))
    ref_ntx = nt_xent(z1, z2, T_NTX)
    ref_ntx.backward()
    queue = KeyQueue(QUEUE, D, seed=7).double()
    ref_nce, _ = infonce_queue(q, p["k"], queue(), T_NCE)
    ref_nce.backward()
    queue.enqueue(p["k"])
    torch.testing.assert_close(sum(r["ntx"] for r in res) / WORLD, ref_ntx.detach())
    torch.testing.assert_close(sum(r["nce"] for r in res) / WORLD, ref_nce.detach())
    n = N // WORLD
    for rank, r in enumerate(res):
        sl = slice(rank * n, (rank + 1) * n)
        torch.testing.assert_close(r["g1"] / WORLD, z1.grad[sl])
        torch.testing.assert_close(r["gq"] / WORLD, q.grad[sl])
        torch.testing.assert_close(r["queue"], queue.queue)
