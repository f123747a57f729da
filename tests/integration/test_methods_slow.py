"""A short CPU run of each new method must improve the probe SRCC over the same encoder at random init (slow:
a few minutes per method on 2 cores; `make test-slow`)."""

from __future__ import annotations

import pytest

from iqa_bench.train import train


@pytest.mark.slow
@pytest.mark.parametrize("method", ["rankiqa", "mlf", "reiqa"])
def test_short_cpu_run_beats_random_init(compose_cfg, method):
    # 300 of cpu_budget's 700 steps keep make test-slow short; every method already beats random init there
    cfg = compose_cfg(["experiment=cpu_budget", f"method={method}", "trainer.max_steps=300"])
    out = train(cfg)
    med = {r["ckpt"]: r for r in out["rows"] if r["split"] == "median"}
    assert set(med) == {"pretrained", "init=random"}
    assert med["pretrained"]["srcc"] > med["init=random"]["srcc"], med
