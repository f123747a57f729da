"""The default run (`make train`): ARNIQA pretraining must beat the same encoder at random init (slow, ~5 min)."""

from __future__ import annotations

import pytest

from iqa_bench.train import train


@pytest.mark.slow
def test_default_run_pretrained_beats_random_init(compose_cfg):
    cfg = compose_cfg([])
    out = train(cfg)
    med = {r["ckpt"]: r for r in out["rows"] if r["split"] == "median"}
    assert set(med) == {"pretrained", "random_init"}
    assert med["pretrained"]["srcc"] > med["random_init"]["srcc"], med
    assert med["pretrained"]["plcc"] > med["random_init"]["plcc"], med
