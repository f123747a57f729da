"""SIGTERM (SLURM's time limit, `scancel`) ends a training run promptly: a checkpoint is saved after the current
step and the process exits with status 143; rerunning the same command resumes from it. A step that never ends
does not swallow the signal: the run exits within the grace period."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from iqa_bench.utils.resolvers import PROJECT_ROOT

HERE = Path(__file__).resolve().parent


class MarkStep(L.Callback):
    """Touches `path` once training reached step `step` (tells the test when to send the signal)."""

    def __init__(self, path: str, step: int = 3, hang: bool = False) -> None:
        self.path, self.step, self.hang = Path(path), int(step), bool(hang)

    def on_train_batch_end(self, trainer, *args, **kwargs) -> None:
        if trainer.global_step >= self.step and not self.path.exists():
            self.path.write_text(str(trainer.global_step))
            while self.hang:  # a step that never finishes (a hung read, a stuck file system)
                time.sleep(0.2)


def _cmd(run_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "iqa_bench.train",
        "experiment=smoke",
        "~data.eval",
        "callbacks.model_checkpoint.every_n_train_steps=1000",
        "callbacks.sample_grid.every_n_steps=0",
        "data.pretrain.num_workers=0",
        "data.pretrain.persistent_workers=false",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


def _env() -> dict[str, str]:
    path = os.pathsep.join([str(PROJECT_ROOT / "src"), str(HERE), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}


def _start_and_signal(cmd: list[str], marker: Path, timeout: float = 300) -> tuple[subprocess.Popen, float]:
    proc = subprocess.Popen(
        cmd, cwd=PROJECT_ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + timeout
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    assert marker.exists(), "training did not reach the marker step in time"
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    return proc, sent


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_exits_143_and_the_rerun_resumes(tmp_path):
    run, marker = tmp_path / "run", tmp_path / "reached"
    mark = [
        "+callbacks.mark._target_=test_faults_signals.MarkStep",
        f"+callbacks.mark.path={marker}",
        "+callbacks.mark.step=3",
    ]
    proc, sent = _start_and_signal(_cmd(run, "trainer.max_steps=100000", *mark), marker)
    out, err = proc.communicate(timeout=120)
    took = time.time() - sent
    assert proc.returncode == 143, err[-3000:]
    assert took < 60, f"SIGTERM took {took:.0f} s to end the run"
    assert "Stopped by SIGTERM at step" in out and "Traceback" not in err
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    stopped = ckpt["global_step"]
    assert stopped >= 3 and f"at step {stopped}:" in out

    again = subprocess.run(
        _cmd(run, f"trainer.max_steps={stopped + 2}"),
        cwd=PROJECT_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Resuming from" in again.stdout
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == stopped + 2


@pytest.mark.slow
def test_a_step_that_never_ends_does_not_swallow_sigterm(tmp_path):
    run, marker = tmp_path / "run", tmp_path / "reached"
    extra = [
        "trainer.max_steps=100000",
        "callbacks.termination.grace_s=3",
        "+callbacks.mark._target_=test_faults_signals.MarkStep",
        f"+callbacks.mark.path={marker}",
        "+callbacks.mark.step=2",
        "+callbacks.mark.hang=true",
    ]
    proc, sent = _start_and_signal(_cmd(run, *extra), marker)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("SIGTERM was swallowed: the run did not end")
    assert proc.returncode == 143
    assert time.time() - sent < 30
    assert "did not stop within 3 s" in err and "Traceback" not in err
