"""eval/finetune.py without training: the settings checks, the Trainer it builds, what `_fit_split` does around
the Trainer (a stand-in trainer), the rows and predictions of `run` (a stand-in `_fit_split`), and
`_quiet_lightning`."""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from iqa_bench.data.eval_sets import EvalSet
from iqa_bench.errors import ConfigError
from iqa_bench.eval.finetune import FinetuneEvaluator, _quiet_lightning
from iqa_bench.eval.finetune_module import KeepBest
from iqa_bench.eval.metrics import all_metrics
from iqa_bench.eval.protocol import summarise_splits
from iqa_bench.eval.splits import make_splits

torch.set_num_threads(1)


class GreySet(EvalSet):
    """`n` uniform grey 20x20 images (grey level = 10 i), scores 5 - i/n, references in pairs; counts loads."""

    def __init__(self, n: int = 20, name: str = "grey") -> None:
        super().__init__(name, 5.0 - np.arange(n) / n, np.arange(n) // 2, [f"g{i}.png" for i in range(n)])
        self.loads = 0

    def __getitem__(self, i: int) -> torch.Tensor:
        self.loads += 1
        return torch.full((3, 20, 20), 10 * i, dtype=torch.uint8)


class Probe(nn.Module):
    """features = per-channel mean (D = 3), no `feature_dim` attribute; records the input shapes it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3))
        self.shapes: list[tuple[int, ...]] = []

    def features(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return x.mean(dim=(2, 3)) * self.scale


# ---------------------------------------------------------------------------------------------- settings
@pytest.mark.parametrize(
    "kw",
    [
        {"n_splits": 1},
        {"ratios": (0.5, 0.25, 0.25)},
        {"ratios": [0.7, 0.1, 0.2 + 5e-7]},
        {"backbone_lr": 0.0},
        {"crop_size": 16},
        {"train_crops": 1, "val_crops": 1, "test_crops": 1, "epochs": 1, "batch_size": 1},
        {"num_workers": 0},
        {"precision": 32},
        {"precision": "bf16-mixed"},
        {"loss": "smooth_l1"},
        {"lr": 1e-9},
    ],
)
def test_settings_at_their_limits_are_accepted(kw: dict) -> None:
    """The boundary of each check is accepted (n_splits 1, crop 16, backbone_lr 0, an int precision...)."""
    FinetuneEvaluator(**kw)


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"n_splits": 0}, "evaluator.n_splits must be >= 1, got 0"),
        (
            {"ratios": (0.5, 0.5)},
            "evaluator.ratios must be three positive fractions summing to 1, got (0.5, 0.5)",
        ),
        ({"ratios": (0.0, 0.5, 0.5)}, "evaluator.ratios must be three positive fractions summing to 1"),
        ({"ratios": (0.7, 0.1, 0.1)}, "evaluator.ratios must be three positive fractions summing to 1"),
        ({"ratios": (0.7, 0.1, 0.2 + 2e-6)}, "evaluator.ratios must be"),
        ({"ratios": (1.2, -0.1, -0.1)}, "evaluator.ratios must be"),
        ({"loss": "l1"}, "evaluator.loss must be one of ('l2', 'smooth_l1'), got 'l1'"),
        ({"epochs": 0}, "evaluator.epochs must be >= 1, got 0"),
        ({"batch_size": 0}, "evaluator.batch_size must be >= 1, got 0"),
        ({"lr": 0.0}, "evaluator.lr must be > 0, got 0.0"),
        ({"backbone_lr": -1e-9}, "evaluator.backbone_lr must be >= 0, got -1e-09"),
        ({"crop_size": 15}, "evaluator.crop_size must be >= 16, got 15"),
        ({"train_crops": 0}, "evaluator.train_crops must be >= 1, got 0"),
        ({"val_crops": 0}, "evaluator.val_crops must be >= 1, got 0"),
        ({"test_crops": 0}, "evaluator.test_crops must be >= 1, got 0"),
        ({"num_workers": -1}, "evaluator.num_workers must be >= 0, got -1"),
        (
            {"precision": "8"},
            "evaluator.precision must be one of ('32-true', '32', 'bf16-mixed', '16-mixed', ",
        ),
    ],
)
def test_settings_out_of_range_are_refused_by_name(kw: dict, message: str) -> None:
    """Each refused setting names its key, what it must be and the value given."""
    with pytest.raises(ConfigError) as info:
        FinetuneEvaluator(**kw)
    assert str(info.value).startswith(message)


# ----------------------------------------------------------------------------------------------- trainer
def test_trainer_on_the_cpu_without_log_dir() -> None:
    """One CPU device, the precision and epochs asked for, no logger, no checkpoints, progress bar or model
    summary, no sanity validation, loaders rebuilt every epoch, logging every step, KeepBest as the callback."""
    keep = KeepBest()
    with _quiet_lightning():
        t = FinetuneEvaluator(epochs=3, precision="bf16-mixed")._trainer(torch.device("cpu"), "n", 2, keep)
    assert type(t.accelerator).__name__ == "CPUAccelerator" and t.num_devices == 1
    assert t.max_epochs == 3 and t.precision == "bf16-mixed" and t.logger is None
    assert t.callbacks == [keep] and t.checkpoint_callback is None and t.progress_bar_callback is None
    assert (
        t.num_sanity_val_steps == 0 and t.reload_dataloaders_every_n_epochs == 1 and t.log_every_n_steps == 1
    )


def test_trainer_with_log_dir_and_progress(tmp_path: Path) -> None:
    """log_dir: a CSVLogger at <log_dir>/<name>/split<s>, rooted there; progress adds a progress bar."""
    keep = KeepBest()
    ev = FinetuneEvaluator(progress=True, log_dir=str(tmp_path), precision=32)
    with _quiet_lightning():
        t = ev._trainer(torch.device("cpu"), "enc-set", 4, keep)
    assert (
        type(t.logger).__name__ == "CSVLogger" and Path(t.logger.log_dir) == tmp_path / "enc-set" / "split4"
    )
    assert Path(t.default_root_dir) == tmp_path and t.precision == "32-true"
    assert t.callbacks[0] is keep and t.progress_bar_callback is not None and len(t.callbacks) == 2


# ---------------------------------------------------------------------------------------------- _fit_split
class StandInTrainer:
    """Records the module; `fit` reports val SRCC 0.42 at epoch 3 to KeepBest, then moves the head (a later,
    worse epoch); `predict` returns the batches in reverse order."""

    def __init__(self, keep: KeepBest, record: dict[str, Any]) -> None:
        self.keep, self.record = keep, record

    def fit(self, module: Any) -> None:
        self.record["module"] = module
        self.record["head_at_start"] = [p.detach().clone() for p in module.head.parameters()]
        module.val_srcc = 0.42
        self.keep.on_validation_end(SimpleNamespace(sanity_checking=False, current_epoch=3), module)
        self.record["kept"] = [p.detach().clone() for p in module.head.parameters()]
        with torch.no_grad():
            for p in module.head.parameters():
                p.add_(1.0)

    def predict(self, module: Any) -> list[Any]:
        with torch.no_grad():
            return [module.predict_step(b, i) for i, b in enumerate(module.predict_dataloader())][::-1]


def _fit(ev: FinetuneEvaluator, enc: nn.Module, ds: EvalSet, s: int = 0, store: Any = None):
    record: dict[str, Any] = {}
    ev._trainer = lambda device, name, s_, keep: (  # type: ignore[method-assign]
        record.update(device=device, name=name, s=s_) or StandInTrainer(keep, record)
    )
    split = make_splits(len(ds), ds.refs, ev.n_splits, ev.ratios, ev.seed)[s]
    pred, info = ev._fit_split(enc, ds, split, s, store, "cpu", "enc-set")
    return pred, info, record, split


def test_fit_split_around_the_trainer(caplog: pytest.LogCaptureFixture) -> None:
    """The encoder is a copy in eval mode (probed at crop size for its feature size), the head is built from the
    settings, the kept epoch's weights are restored, predictions come back in test order, and the progress line
    names the split, epoch and SRCC."""
    enc, ds = Probe(), GreySet()
    ev = FinetuneEvaluator(
        n_splits=2, crop_size=16, test_crops=2, batch_size=3, head_hidden_dim=5, progress=True
    )
    with caplog.at_level(logging.INFO, logger="iqa_bench.eval.finetune"):
        pred, info, record, split = _fit(ev, enc, ds, s=1)
    m = record["module"]
    assert record["device"] == torch.device("cpu") and record["name"] == "enc-set" and record["s"] == 1
    assert m.encoder is not enc and enc.shapes == [] and not m.encoder.training
    assert m.encoder.shapes[0] == (1, 3, 16, 16)  # the copy was probed at the crop size
    assert m.s == 1 and m.split["test"].tolist() == split["test"].tolist() and m.cfg is ev
    assert [type(x).__name__ for x in m.head] == ["Linear", "ReLU", "Dropout", "Linear"]
    assert m.head[0].in_features == 3 and m.head[0].out_features == 5
    for p, kept in zip(m.head.parameters(), record["kept"]):
        assert torch.equal(p.detach(), kept)  # restored after the later epoch moved it
    assert info == {"val_srcc": 0.42, "best_epoch": 3}
    with torch.no_grad():
        in_order = [m.predict_step(b, i)[1] for i, b in enumerate(m.predict_dataloader())]
    in_order = np.concatenate(in_order)
    assert pred.dtype == np.float64 and pred.shape == (split["test"].size,)
    np.testing.assert_allclose(pred, in_order)
    assert np.ptp(pred) > 0  # the test images differ, so a wrong order would show
    assert [r.getMessage() for r in caplog.records][-1] == "finetune split 1: best epoch 3, val SRCC 0.4200"


def test_fit_split_head_seeded_by_seed_and_split() -> None:
    """The head's initial weights depend on (seed, split) and are reproducible; dropout reaches the head."""
    ds = GreySet()

    def start(seed: int, s: int, **kw: Any) -> list[torch.Tensor]:
        ev = FinetuneEvaluator(n_splits=2, crop_size=16, test_crops=1, seed=seed, **kw)
        return _fit(ev, Probe(), ds, s=s)[2]["head_at_start"]

    a = start(0, 0)
    assert all(torch.equal(x, y) for x, y in zip(a, start(0, 0)))
    assert not torch.equal(a[0], start(0, 1)[0]) and not torch.equal(a[0], start(1, 0)[0])
    assert not torch.equal(start(1, 0)[0], start(0, 1)[0])
    ev = FinetuneEvaluator(n_splits=2, crop_size=16, test_crops=1, dropout=0.3)
    head = _fit(ev, Probe(), ds)[2]["module"].head
    assert [type(x).__name__ for x in head] == ["Dropout", "Linear"] and head[0].p == 0.3


def test_fit_split_uses_a_declared_feature_dim_without_probing() -> None:
    """An encoder with `feature_dim` is not run to find it."""
    enc = Probe()
    enc.feature_dim = 3  # type: ignore[attr-defined]
    record = _fit(FinetuneEvaluator(n_splits=2, crop_size=16, test_crops=1), enc, GreySet())[2]
    assert record["module"].encoder.shapes == [(4, 3, 16, 16)]  # only the prediction batch


# ----------------------------------------------------------------------------------------------------- run
def _stub_run(ev: FinetuneEvaluator, encoders: dict, sets: dict, val: list[float]):
    calls: list[dict[str, Any]] = []

    def fit_split(enc, ds, split, s, store, device, name):
        calls.append(dict(enc=enc, ds=ds, split=split, s=s, store=store, device=device, name=name))
        target = np.asarray(ds.scores)[split["test"]]
        return target + np.sin(np.arange(target.size) * (s + 1)), {"val_srcc": val[s], "best_epoch": 10 + s}

    ev._fit_split = fit_split  # type: ignore[method-assign]
    return ev.run(encoders, sets, "cpu"), calls


def test_run_rows_predictions_and_calls(caplog: pytest.LogCaptureFixture) -> None:
    """Per split: the metrics of its predictions, val SRCC, best epoch and part sizes; then the median row (val
    SRCC as the median over finite values); predictions with items, scores and labels; one store per set."""
    a, b = GreySet(20, "a"), GreySet(24, "b")
    encs = {"e1": Probe(), "e2": Probe()}
    ev = FinetuneEvaluator(n_splits=3, seed=4)
    with caplog.at_level(logging.INFO, logger="iqa_bench.eval.finetune"):
        rows, calls = _stub_run(ev, encs, {"a": a, "b": b}, [0.2, float("nan"), 0.6])
    assert [(r["encoder"], r["dataset"], r["split"]) for r in rows] == [
        (e, d, s) for d in ("a", "b") for e in ("e1", "e2") for s in (0, 1, 2, "median")
    ]
    assert all(r["protocol"] == "finetune" and r["train_on"] == "" for r in rows)
    assert [(c["enc"], c["ds"], c["s"], c["name"], c["device"]) for c in calls[:4]] == [
        (encs["e1"], a, 0, "e1-a", "cpu"),
        (encs["e1"], a, 1, "e1-a", "cpu"),
        (encs["e1"], a, 2, "e1-a", "cpu"),
        (encs["e2"], a, 0, "e2-a", "cpu"),
    ]
    stores = {id(c["store"]) for c in calls if c["ds"] is a}
    assert (
        len(stores) == 1
        and isinstance(calls[0]["store"], dict)
        and calls[0]["store"] is not calls[-1]["store"]
    )
    splits = make_splits(20, a.refs, 3, (0.7, 0.1, 0.2), 4)
    per_split = rows[:3]
    for s, (r, sp) in enumerate(zip(per_split, splits)):
        assert calls[s]["split"]["test"].tolist() == sp["test"].tolist()
        target = a.scores[sp["test"]]
        want = all_metrics(target + np.sin(np.arange(target.size) * (s + 1)), target)
        assert {k: r[k] for k in want} == pytest.approx(want)
        assert (r["best_epoch"], r["n_train"], r["n_val"], r["n_test"]) == (
            10 + s,
            sp["train"].size,
            sp["val"].size,
            sp["test"].size,
        )
        assert all(type(r[k]) is int for k in ("n_train", "n_val", "n_test"))
    assert per_split[0]["val_srcc"] == 0.2 and math.isnan(per_split[1]["val_srcc"])
    median = rows[3]
    summary = summarise_splits([dict(r) for r in ev.results[("e1", "a")]["per_split"]])
    assert median["val_srcc"] == pytest.approx(0.4) and median["srcc"] == pytest.approx(summary["srcc"])
    assert ev.results[("e1", "a")]["summary"]["val_srcc"] == pytest.approx(0.4)
    base = {"encoder": "e1", "dataset": "a", "protocol": "finetune", "train_on": ""}
    assert [{**base, **r} for r in ev.results[("e1", "a")]["per_split"]] == per_split
    assert {**base, "split": "median", **ev.results[("e1", "a")]["summary"]} == median
    p = ev.predictions[("e2", "b")]
    split_b = make_splits(24, b.refs, 3, (0.7, 0.1, 0.2), 4)
    items = [i for sp in split_b for i in sp["test"].tolist()]
    assert p["item"] == items and p["split"] == [s for s, sp in enumerate(split_b) for _ in sp["test"]]
    assert p["mos"] == pytest.approx(b.scores[items].tolist()) and p["label"] == [f"g{i}.png" for i in items]
    assert len(p["pred"]) == len(items)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("finetuning")]
    assert lines[0] == "finetuning e1 on a, split 1/3" and lines[2] == "finetuning e1 on a, split 3/3"


def test_run_without_store_when_workers_decode() -> None:
    """With loader workers there is no shared image store."""
    _, calls = _stub_run(
        FinetuneEvaluator(n_splits=1, num_workers=2), {"e": Probe()}, {"a": GreySet()}, [0.1]
    )
    assert calls[0]["store"] is None


@pytest.mark.parametrize("ratios", [(0.8, 0.05, 0.15), (0.8, 0.15, 0.05)])
def test_run_refuses_splits_too_small_to_validate_or_test(ratios: tuple[float, float, float]) -> None:
    """A split with one val or one test item is refused naming the set and the split; two of each is enough."""
    tiny = GreySet(20, "tiny")
    tiny.refs = np.arange(20)  # one image per reference: the 5 % part is a single item
    with pytest.raises(ValueError, match=r"^tiny: split 0 has fewer than 2 val or test items$"):
        _stub_run(FinetuneEvaluator(n_splits=2, ratios=ratios), {"e": Probe()}, {"tiny": tiny}, [0.1, 0.1])
    ev = FinetuneEvaluator(n_splits=2, ratios=(0.8, 0.1, 0.1))
    rows, _ = _stub_run(ev, {"e": Probe()}, {"ok": GreySet(20, "ok")}, [0.1, 0.1])
    assert [r["n_val"] for r in rows[:2]] == [2, 2] and [r["n_test"] for r in rows[:2]] == [2, 2]


# ----------------------------------------------------------------------------------------- _quiet_lightning
def test_quiet_lightning_silences_banners_and_hints_then_restores() -> None:
    """Inside: Lightning's banner loggers at WARNING and the known hints filtered; after (also after an error):
    the levels are back and other warnings still show."""
    names = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric")
    for n in names:
        logging.getLogger(n).setLevel(logging.DEBUG)
    hints = [
        "The 'train_dataloader' does not have many workers which may be a bottleneck.",
        "The number of training batches (2) is smaller than the logging interval Trainer(log_every_n_steps=50).",
        "GPU available but not used. You can set it by doing `Trainer(accelerator='gpu')`.",
        "LeafSpec is deprecated",
        "Found 18 module(s) in eval mode at the start of training. This may lead to unexpected behavior.",
    ]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(KeyError):
            with _quiet_lightning():
                assert [logging.getLogger(n).level for n in names] == [logging.WARNING] * 2
                for h in hints + ["something else"]:
                    warnings.warn(h, UserWarning, stacklevel=1)
                raise KeyError("boom")
        warnings.warn(hints[0], UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["something else", hints[0]]
    assert [logging.getLogger(n).level for n in names] == [logging.DEBUG] * 2
    for n in names:
        logging.getLogger(n).setLevel(logging.NOTSET)
