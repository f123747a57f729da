"""GPU tests (`make test-gpu`): bank CPU/CUDA agreement, one bf16 training step per method in its paper setting,
and DDP loss/gradient equality over NCCL when two GPUs exist. Skipped without CUDA."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from _ddp import check_ranks_equal_one_process

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


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_ddp_nccl_losses_equal_one_process(tmp_path):
    check_ranks_equal_one_process("nccl", tmp_path)
