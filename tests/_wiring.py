"""Shared pieces of the methods wiring tests (tests/unit/test_wiring_*.py): small configs and recorders."""

from __future__ import annotations

import os
from pathlib import Path

import torch

OPT = {"name": "adamw", "lr": 1e-3, "weight_decay": 0.0}
BACKBONE = {"name": "tiny", "widths": [8, 16, 32, 64]}
LADDER = {"_target_": "iqa_bench.distortions.RankIQALadder", "setting": "live"}
ARNIQA_DIST = {
    "_target_": "iqa_bench.distortions.ArniqaSampler",
    "max_distortions": 1,
    "pristine_prob": 0.0,
    "names": ["brighten", "darken"],
}


def _capture_logs(module) -> dict:
    """Replace `module.log` by a recorder: {name: (value, kwargs)}."""
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, (value, kw))
    return logged


class _FakeTrainer:
    def __init__(self, training: bool) -> None:
        self.training, self.global_step = training, 0


def _arniqa(**kw):
    from iqa_bench.methods.arniqa import ARNIQA

    return ARNIQA(BACKBONE, ARNIQA_DIST, OPT, **kw)


def _save(path: Path, step: int = 3, value: float = 1.0, mtime_s: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {"w": torch.full((2,), value), "b": torch.zeros(1)}, "global_step": step}, path)
    if mtime_s is not None:
        os.utime(path, ns=(mtime_s * 10**9, mtime_s * 10**9))
    return path
