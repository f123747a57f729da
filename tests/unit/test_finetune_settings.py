"""eval/finetune.py: the Trainer arguments chosen for a CUDA or CPU device (checked on any machine, with
`lightning.Trainer` replaced by a recorder: no GPU is needed to see what would be asked for); the workers of
the finetuning module's train loader."""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn

from iqa_bench.eval.finetune import FinetuneEvaluator
from iqa_bench.eval.finetune_module import FinetuneModule, KeepBest


@pytest.mark.parametrize(
    "device,devices",
    [
        (torch.device("cuda", 1), [1]),
        (torch.device("cuda", 0), [0]),
        (torch.device("cuda"), [0]),  # no index: the first GPU
    ],
)
def test_trainer_on_a_cuda_device_asks_for_that_gpu(
    monkeypatch: pytest.MonkeyPatch, device: torch.device, devices: list[int]
) -> None:
    """A CUDA device becomes Lightning's 'gpu' accelerator on exactly that device index (a list, so that
    Lightning takes it as an index and not as a count); the other arguments are those of the CPU case."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(L, "Trainer", lambda **kw: calls.append(kw) or "trainer")
    keep = KeepBest()
    t = FinetuneEvaluator(epochs=2, precision="16-mixed")._trainer(device, "n", 3, keep)
    assert t == "trainer" and len(calls) == 1
    kw = calls[0]
    assert kw["accelerator"] == "gpu" and kw["devices"] == devices
    assert kw["precision"] == "16-mixed" and kw["max_epochs"] == 2 and kw["callbacks"] == [keep]
    assert kw["logger"] is False and kw["default_root_dir"] is None


def test_trainer_on_the_cpu_asks_for_one_cpu_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU device keeps its own type as the accelerator and one device (a count)."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(L, "Trainer", lambda **kw: calls.append(kw) or "trainer")
    FinetuneEvaluator(epochs=3)._trainer(torch.device("cpu"), "n", 0, KeepBest())
    assert calls[0]["accelerator"] == "cpu" and calls[0]["devices"] == 1 and calls[0]["max_epochs"] == 3


@pytest.mark.parametrize("workers", [0, 2])
def test_train_loader_uses_the_configured_workers(workers: int) -> None:
    """The train loader runs `num_workers` workers (the shuffle seed is a separate argument)."""
    ev = FinetuneEvaluator(n_splits=1, num_workers=workers, seed=5, batch_size=2)
    split = {"train": np.arange(4), "val": np.array([4]), "test": np.array([5])}
    ds = type("Scores", (), {"scores": np.arange(6.0)})()
    m = FinetuneModule(nn.Identity(), nn.Linear(3, 1), 3, ds, split, ev, 1, None)
    m._trainer = type("T", (), {"current_epoch": 0})()  # type: ignore[assignment]
    assert m.train_dataloader().num_workers == workers
