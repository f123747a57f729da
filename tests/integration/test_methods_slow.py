"""A short CPU run of each new method must improve the probe SRCC over the same encoder at random init (slow:
a few minutes per method on 2 cores; `make test-slow`)."""

from __future__ import annotations

import pytest

from iqa_bench.train import train


@pytest.mark.slow
@pytest.mark.parametrize("method", ["rankiqa", "mlf", "reiqa"])
def test_short_cpu_run_beats_random_init(compose_cfg, method):
    cfg = compose_cfg(["experiment=cpu_budget", f"method={method}"])
    out = train(cfg)
    med = {r["ckpt"]: r for r in out["rows"] if r["split"] == "median"}
    assert set(med) == {"pretrained", "init=random"}
    assert med["pretrained"]["srcc"] > med["init=random"]["srcc"], med
