"""The default run (`make train`): ARNIQA pretraining must beat the same encoder at random init (slow, ~5 min)."""

from __future__ import annotations

import pytest

from iqa_bench.train import train


@pytest.mark.slow
def test_default_run_pretrained_beats_random_init(compose_cfg):
    cfg = compose_cfg([])
    out = train(cfg)
    med = {r["ckpt"]: r for r in out["rows"] if r["split"] == "median"}
    assert set(med) == {"pretrained", "init=random"}
    assert med["pretrained"]["srcc"] > med["init=random"]["srcc"], med
    assert med["pretrained"]["plcc"] > med["init=random"]["plcc"], med
