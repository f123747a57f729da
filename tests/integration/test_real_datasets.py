"""Real datasets (marker `data`, outside `make test`): every registered set found under $IQA_DATA loads through
its config, holds finite scores and decodable images, and its evaluator splits never share a reference."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from iqa_bench.eval.splits import make_splits
from iqa_bench.utils.instantiate import instantiate
from iqa_bench.utils.resolvers import CONF_DIR

pytestmark = pytest.mark.data

NAMES = sorted(
    p.stem for p in (CONF_DIR / "data" / "eval").glob("*.yaml") if p.stem not in ("builtin_synthetic", "csv")
)
FULL_REFERENCE = {"live", "csiq", "tid2013", "kadid10k", "pipal"}


def test_every_full_reference_set_is_in_the_list():
    assert FULL_REFERENCE <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_dataset_loads_and_splits_are_reference_disjoint(compose_cfg, name):
    root = os.environ.get("IQA_DATA")
    if not root:
        pytest.skip("set IQA_DATA to the folder holding the unpacked IQA datasets")
    cfg = compose_cfg(["experiment=smoke", f"data/eval={name}", f"data.root={root}"])
    node = cfg.data.eval[name]
    if not Path(node.root).exists():
        pytest.skip(f"{name}: no {node.root}")
    ds = instantiate(node)
    n = len(ds)
    assert n > 0 and ds.scores.shape == (n,) and np.isfinite(ds.scores).all()
    assert len(ds.labels) == n == len(set(ds.labels))
    img = ds[0]
    assert img.dtype == torch.uint8 and img.ndim == 3 and img.shape[0] == 3
    if name in FULL_REFERENCE:
        assert ds.refs is not None and ds.refs.shape == (n,)
        assert 2 <= len(np.unique(ds.refs)) < n  # several distorted images per reference
    for sp in make_splits(n, ds.refs, n_splits=3):
        parts = [set(sp[k].tolist()) for k in ("train", "val", "test")]
        assert sum(map(len, parts)) == n and not (parts[0] & parts[2])
        if ds.refs is not None:
            train_refs, test_refs = ({int(ds.refs[i]) for i in p} for p in (parts[0], parts[2]))
            assert not (train_refs & test_refs), f"{name}: a reference is in train and test"
    assert math.isfinite(float(np.median(ds.scores)))
