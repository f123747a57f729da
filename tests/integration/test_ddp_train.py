"""`trainer=ddp_cpu` (2 gloo processes) trains Re-IQA (queue gathered over ranks) and MLF end to end (slow:
~30 s each, two processes)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from iqa_bench.utils.resolvers import PROJECT_ROOT


@pytest.mark.slow
@pytest.mark.parametrize("method", ["reiqa", "mlf"])
def test_ddp_cpu_trains(tmp_path, method):
    run_dir = tmp_path / "run"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "iqa_bench.train",
            "experiment=smoke",
            "trainer=ddp_cpu",
            f"method={method}",
            "evaluator.n_splits=2",
            f"hydra.run.dir={run_dir}",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert (run_dir / "results.csv").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
