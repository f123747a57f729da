"""A crashed or killed run, rerun with the same command, resumes from its last checkpoint and ends with the same
results as an uninterrupted run; the same seed and config give identical results."""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from iqa_bench.train import train
from iqa_bench.utils.resolvers import PROJECT_ROOT

FAST = [
    "experiment=smoke",
    "trainer.max_steps=12",
    "callbacks.model_checkpoint.every_n_train_steps=4",
    "data.eval.builtin_synthetic.distortions=[gaublur,whitenoise]",
    "data.eval.builtin_synthetic.levels=[1,5]",
    "evaluator.baseline_random_init=false",
]
NUMERIC = ("srcc", "plcc", "krcc", "alpha")


class Crash(RuntimeError):
    pass


class CrashAt(L.Callback):
    """Raises after optimiser step `step` (a stand-in for a killed job)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args, **kwargs) -> None:
        if trainer.global_step == self.step:
            raise Crash(f"simulated crash at step {self.step}")


class RecordSteps(L.Callback):
    """Records the trainer's global step at every training batch (class-level: the callback is built by Hydra)."""

    steps: list[int] = []

    def __init__(self) -> None:
        RecordSteps.steps = []

    def on_train_batch_start(self, trainer, *args, **kwargs) -> None:
        RecordSteps.steps.append(trainer.global_step)


def _rows(run_dir: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((run_dir / "results.csv").open()))


def _numbers(run_dir: Path) -> list[tuple]:
    return [(r["ckpt"], r["split"], *(float(r[k]) for k in NUMERIC)) for r in _rows(run_dir)]


def _weights(ckpt: str) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def test_crash_then_same_command_resumes_to_identical_results(compose_cfg, tmp_path, capsys):
    ref = train(compose_cfg([*FAST, f"hydra.run.dir={tmp_path / 'ref'}"]))

    crash_overrides = [*FAST, "+callbacks.crash._target_=test_resume.CrashAt", "+callbacks.crash.step=6"]
    with pytest.raises(Crash):
        train(compose_cfg(crash_overrides))
    run_dir = tmp_path / "run"  # compose_cfg's run dir: the same for both calls, like rerunning one command
    assert (run_dir / "checkpoints" / "last.ckpt").is_file() and not (run_dir / "results.csv").exists()
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4

    capsys.readouterr()
    resumed = train(compose_cfg([*FAST, "+callbacks.record._target_=test_resume.RecordSteps"]))
    assert resumed["run_dir"] == run_dir
    # it says so, and trains only the steps the killed run had not saved: 4..11 (a restart would redo 0..11)
    assert f"Resuming from {run_dir / 'checkpoints' / 'last.ckpt'}" in capsys.readouterr().out
    assert RecordSteps.steps == list(range(4, 12))
    before = list(csv.DictReader((run_dir / "metrics.1.csv").open()))  # the killed run's log is kept
    assert before and max(int(r["step"]) for r in before if r.get("step")) <= 6
    assert _numbers(run_dir) == _numbers(ref["run_dir"])
    a, b = _weights(ref["checkpoint"]), _weights(resumed["checkpoint"])
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


def test_same_seed_twice_gives_identical_results_and_another_seed_does_not(compose_cfg, tmp_path):
    runs = [
        train(compose_cfg([*FAST, f"seed={s}", f"hydra.run.dir={tmp_path / d}"]))
        for s, d in [(0, "a"), (0, "b"), (1, "c")]
    ]
    a, b, c = (r["run_dir"] for r in runs)
    assert _numbers(a) == _numbers(b)
    assert _weights(runs[0]["checkpoint"]).keys() == _weights(runs[1]["checkpoint"]).keys()
    wa, wb, wc = (_weights(r["checkpoint"]) for r in runs)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


@pytest.mark.slow
def test_kill_9_at_a_random_step_then_rerun_resumes(tmp_path):
    """The real thing: SIGKILL the CLI once a checkpoint exists, rerun the identical command."""
    overrides = [
        "experiment=smoke",
        "trainer.max_steps=60",
        "callbacks.model_checkpoint.every_n_train_steps=5",
        "evaluator.baseline_random_init=false",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def cmd(run_dir: Path) -> list[str]:
        return [sys.executable, "-m", "iqa_bench.train", *overrides, f"hydra.run.dir={run_dir}"]

    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    subprocess.run(cmd(ref_dir), cwd=PROJECT_ROOT, env=env, check=True, capture_output=True, timeout=600)

    proc = subprocess.Popen(
        cmd(run_dir), cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(random.Random().uniform(0.0, 1.0))  # a random step after the first checkpoint
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "results.csv").exists()

    out = subprocess.run(
        cmd(run_dir), cwd=PROJECT_ROOT, env=env, check=True, capture_output=True, text=True, timeout=600
    )
    assert "Resuming from" in out.stdout
    assert _numbers(run_dir) == _numbers(ref_dir)


def test_multirun_job_with_results_is_skipped_and_single_runs_are_not(compose_cfg, tmp_path, monkeypatch):
    import iqa_bench.train as train_mod

    first = train(compose_cfg([*FAST, "trainer.max_steps=2"]))
    before = (first["run_dir"] / "results.csv").read_bytes()
    monkeypatch.setattr(train_mod, "is_multirun", lambda: True)
    monkeypatch.setattr(
        train_mod, "instantiate", lambda *a, **k: pytest.fail("a finished job must not rerun")
    )
    again = train(compose_cfg([*FAST, "trainer.max_steps=2"]))
    assert again["run_dir"] == first["run_dir"] and len(again["rows"]) == len(first["rows"])
    assert (first["run_dir"] / "results.csv").read_bytes() == before
    with pytest.raises(
        pytest.fail.Exception
    ):  # skip_existing=false: the job runs (and hits the stubbed instantiate)
        train(compose_cfg([*FAST, "trainer.max_steps=2", "skip_existing=false"]))
