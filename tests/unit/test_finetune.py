"""Finetuning evaluator: rows, the ridge probe's splits, seeded/deterministic, frozen vs trained encoder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from iqa_bench.data.eval_sets import EvalSet
from iqa_bench.errors import ConfigError
from iqa_bench.eval.finetune import FinetuneEvaluator, random_crops
from iqa_bench.eval.splits import make_splits
from iqa_bench.models.backbones import Backbone

torch.set_num_threads(1)


class FakeSet(EvalSet):
    """Images whose brightness rises with quality; 6 references x 4 images of 40x40."""

    def __init__(self, n_refs: int = 6, per_ref: int = 4) -> None:
        rng = np.random.default_rng(0)
        n = n_refs * per_ref
        self.q = rng.uniform(0, 1, n)
        super().__init__(
            "fake", self.q * 4 + 1, np.repeat(np.arange(n_refs), per_ref), [f"i{k}" for k in range(n)]
        )
        self.loads = 0

    def __getitem__(self, i: int) -> torch.Tensor:
        self.loads += 1
        g = torch.Generator().manual_seed(i)
        x = 40 + 180 * float(self.q[i]) + 20 * torch.randn(3, 40, 40, generator=g)
        return x.clamp(0, 255).to(torch.uint8)


class TinyEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = Backbone("tiny", widths=(8, 16))
        self.feature_dim = self.backbone.feature_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)


def _ev(**kw) -> FinetuneEvaluator:
    base = dict(n_splits=2, epochs=2, batch_size=8, lr=0.05, crop_size=32, val_crops=2, test_crops=3)
    base.update(kw)
    return FinetuneEvaluator(**base)


def test_rows_splits_and_determinism():
    ds = FakeSet()
    enc = TinyEncoder()
    ev = _ev()
    rows = ev.run({"pretrained": enc}, {"fake": ds})
    assert [r["split"] for r in rows] == [0, 1, "median"]
    for r in rows:
        assert r["protocol"] == "finetune" and r["dataset"] == "fake" and "alpha" not in r
    assert rows[0]["best_epoch"] in (0, 1) and rows[-1]["n_splits"] == 2
    # each split's metrics are those of its test predictions, the summary row their median
    from iqa_bench.eval.metrics import krcc, plcc, srcc

    preds = ev.predictions[("pretrained", "fake")]
    for r in rows[:2]:
        pred = np.array([p for p, k in zip(preds["pred"], preds["split"]) if k == r["split"]])
        mos = np.array([m for m, k in zip(preds["mos"], preds["split"]) if k == r["split"]])
        assert (r["srcc"], r["plcc"], r["krcc"]) == pytest.approx(
            (srcc(pred, mos), plcc(pred, mos), krcc(pred, mos)), abs=1e-6
        )
    assert rows[-1]["srcc"] == pytest.approx(float(np.median([rows[0]["srcc"], rows[1]["srcc"]])), abs=1e-9)
    # the test items are exactly the ridge probe's test parts (same seeded reference-disjoint splits)
    splits = make_splits(len(ds), ds.refs, 2, (0.7, 0.1, 0.2), 0)
    for s, sp in enumerate(splits):
        items = [i for i, k in zip(preds["item"], preds["split"]) if k == s]
        assert items == sp["test"].tolist()
    # decoded once, then served from the in-memory store
    assert ds.loads == len(ds)
    # seeded: a second run gives identical rows
    rows2 = _ev().run({"pretrained": enc}, {"fake": FakeSet()})
    assert [r["srcc"] for r in rows2] == [r["srcc"] for r in rows]


def test_callers_encoder_untouched_and_unfrozen_backbone_option():
    enc = TinyEncoder()
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    rows = _ev(n_splits=1, epochs=1, freeze_backbone=False, backbone_lr=1e-2, loss="smooth_l1").run(
        {"m": enc}, {"fake": FakeSet()}
    )
    assert rows[-1]["split"] == "median" and np.isfinite(rows[-1]["srcc"])
    for k, v in enc.state_dict().items():  # the caller's encoder is copied, never modified
        torch.testing.assert_close(v, before[k])


def test_learns_an_easy_signal():
    rows = _ev(epochs=4, head_hidden_dim=16).run({"m": TinyEncoder()}, {"fake": FakeSet(n_refs=10)})
    assert rows[-1]["srcc"] > 0.5


def test_random_crops_pad_and_seed():
    img = torch.arange(3 * 20 * 30, dtype=torch.float32).view(3, 20, 30)
    a = random_crops(img, 16, 4, np.random.default_rng([1, 2]))
    b = random_crops(img, 16, 4, np.random.default_rng([1, 2]))
    assert a.shape == (4, 3, 16, 16) and torch.equal(a, b)
    small = random_crops(img, 32, 2, np.random.default_rng(0))
    assert small.shape == (2, 3, 32, 32) and small[:, :, 20:, :].abs().sum() == 0


@pytest.mark.parametrize(
    "kw,key",
    [
        ({"loss": "l1"}, "evaluator.loss"),
        ({"epochs": 0}, "evaluator.epochs"),
        ({"precision": "8"}, "evaluator.precision"),
    ],
)
def test_bad_settings_name_the_key(kw, key):
    with pytest.raises(ConfigError, match=key):
        FinetuneEvaluator(**kw)


def _module(ev: FinetuneEvaluator, enc: nn.Module, ds: EvalSet, s: int = 0):
    from iqa_bench.eval.finetune_module import FinetuneModule
    from iqa_bench.models.heads import score_head

    split = make_splits(len(ds), ds.refs, ev.n_splits, ev.ratios, ev.seed)[s]
    return FinetuneModule(enc, score_head(enc.feature_dim), enc.feature_dim, ds, split, ev, s, None)


@pytest.mark.parametrize("freeze", [True, False])
def test_backbone_trains_only_when_unfrozen_and_batchnorm_stats_stay(freeze):
    from iqa_bench.eval.finetune_module import KeepBest

    enc = TinyEncoder()
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    ev = _ev(n_splits=1, epochs=1, freeze_backbone=freeze, backbone_lr=1e-2)
    module = _module(ev, enc, FakeSet())
    trainer = ev._trainer(torch.device("cpu"), "t", 0, KeepBest())
    trainer.fit(module)
    changed = [k for k, v in enc.state_dict().items() if not torch.equal(v, before[k])]
    weights = [k for k in changed if k.endswith("weight")]
    assert bool(weights) is (not freeze)  # the encoder's weights move only when it is not frozen
    assert not [k for k in changed if "running_" in k]  # BatchNorm statistics never re-estimated
    assert all(p.requires_grad is (not freeze) for p in enc.parameters())
    assert torch.count_nonzero(module.f_std != 1) > 0  # feature statistics were fitted before training


def test_keep_best_selects_the_highest_val_srcc_epoch():
    from types import SimpleNamespace

    from iqa_bench.eval.finetune_module import KeepBest

    head = nn.Linear(2, 1)
    module = SimpleNamespace(head=head, freeze_backbone=True, val_srcc=float("nan"))
    keep = KeepBest()
    weights = {}
    for epoch, v in enumerate([float("nan"), 0.3, 0.7, 0.5, float("nan")]):
        with torch.no_grad():
            head.weight.fill_(epoch)
        module.val_srcc = v
        keep.on_validation_end(SimpleNamespace(sanity_checking=False, current_epoch=epoch), module)
        weights[epoch] = head.weight.clone()
    assert keep.best_epoch == 2 and keep.val_srcc == 0.7
    keep.restore(module)
    assert torch.equal(head.weight, weights[2])
    only_nan = KeepBest()
    module.val_srcc = float("nan")
    only_nan.on_validation_end(SimpleNamespace(sanity_checking=False, current_epoch=0), module)
    assert only_nan.best_epoch == 0 and math.isnan(only_nan.val_srcc)  # first epoch kept when all are nan


def test_log_dir_gets_per_epoch_metrics(tmp_path):
    import csv

    rows = _ev(n_splits=1, epochs=3, log_dir=str(tmp_path)).run({"m": TinyEncoder()}, {"fake": FakeSet()})
    files = list(tmp_path.glob("m-fake/split0/metrics.csv"))
    assert len(files) == 1
    logged = list(csv.DictReader(files[0].open()))
    val = [float(r["val_srcc"]) for r in logged if r.get("val_srcc")]
    assert len(val) == 3 and [int(r["epoch"]) for r in logged if r.get("val_srcc")] == [0, 1, 2]
    assert len([r for r in logged if r.get("train_loss")]) == 3
    assert rows[0]["val_srcc"] == pytest.approx(max(val)) and rows[0]["best_epoch"] == int(np.argmax(val))
