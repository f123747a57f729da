"""eval/finetune_data.py (seeded crops, the crop set and loaders, the image store) and the parts of
eval/finetune_module.py that do not need a Trainer: targets, the forward pass, modes, loaders, feature
statistics, the steps and the optimiser, and `KeepBest`."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from torch import nn

from iqa_bench.data.eval_sets import EvalSet
from iqa_bench.eval.finetune import FinetuneEvaluator
from iqa_bench.eval.finetune_data import CropSet, crop_loader, image_store, random_crops
from iqa_bench.eval.finetune_module import FinetuneModule, KeepBest

torch.set_num_threads(1)


class ColourSet(EvalSet):
    """`n` uniform images of 20x24 whose colour is (10 i, 20 + 5 i, 200 - 3 i); scores 1 + i % 7; counts loads."""

    def __init__(self, n: int = 12) -> None:
        super().__init__("colours", 1.0 + np.arange(n) % 7, None, [f"c{i}" for i in range(n)])
        self.loads: list[int] = []

    def colour(self, i: int) -> torch.Tensor:
        return torch.tensor([10.0 * i, 20.0 + 5 * i, 200.0 - 3 * i])

    def __getitem__(self, i: int) -> torch.Tensor:
        self.loads.append(i)
        return self.colour(i).view(3, 1, 1).expand(3, 20, 24).to(torch.uint8).clone()


class MeanColour(nn.Module):
    """features(x) = per-channel mean of x times `gain` (D = 3), with one trainable parameter."""

    feature_dim = 3

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(3))
        self.bn = nn.BatchNorm1d(3)
        self.rows: list[int] = []

    def features(self, x: torch.Tensor) -> torch.Tensor:
        self.rows.append(x.shape[0])
        return x.mean(dim=(2, 3)) * self.gain


def _ev(**kw: Any) -> FinetuneEvaluator:
    base: dict[str, Any] = dict(n_splits=1, epochs=1, batch_size=4, crop_size=16, val_crops=2, test_crops=3)
    base.update(kw)
    return FinetuneEvaluator(**base)


SPLIT = {"train": np.array([0, 2, 3, 5, 7, 8]), "val": np.array([1, 4, 9]), "test": np.array([6, 10, 11])}


def _module(ev: FinetuneEvaluator | None = None, ds: EvalSet | None = None, s: int = 0) -> FinetuneModule:
    ev = ev or _ev()
    head = nn.Sequential(nn.Linear(3, 1))
    return FinetuneModule(MeanColour(), head, 3, ds or ColourSet(), dict(SPLIT), ev, s, None)


# ---------------------------------------------------------------------------------------------- finetune_data
def test_random_crops_are_windows_reaching_every_offset() -> None:
    """Each crop is a window of the image (dtype kept); over many draws every top and left offset appears."""
    img = (torch.arange(20 * 24).view(1, 20, 24) % 251 + 1).expand(3, 20, 24).to(torch.uint8)
    pos = torch.arange(20 * 24).view(20, 24)
    crops = random_crops(img, 16, 300, np.random.default_rng(0))
    assert crops.shape == (300, 3, 16, 16) and crops.dtype == torch.uint8
    tops, lefts = set(), set()
    for c in crops:
        key = (c[0].long() - 1) % 251
        hits = [
            (t, left)
            for t in range(5)
            for left in range(9)
            if torch.equal(pos[t : t + 16, left : left + 16] % 251, key)
        ]
        assert len(hits) == 1
        tops.add(hits[0][0])
        lefts.add(hits[0][1])
    assert tops == set(range(5)) and lefts == set(range(9))


@pytest.mark.parametrize("h,w", [(10, 30), (30, 10), (10, 10)])
def test_random_crops_pad_only_the_short_side_at_bottom_right(h: int, w: int) -> None:
    """A side shorter than the crop is zero-padded after the image; the other side is not padded at all."""
    img = torch.full((3, h, w), 7.0)
    crops = random_crops(img, 16, 200, np.random.default_rng(1))
    assert crops.shape == (200, 3, 16, 16)
    assert bool((crops[:, :, : min(h, 16), : min(w, 16)] == 7).all())  # the image starts at the top-left
    assert bool((crops[:, :, h:, :] == 0).all()) and bool((crops[:, :, :, w:] == 0).all())
    assert int((crops == 0).sum()) == 200 * 3 * (256 - min(h, 16) * min(w, 16))


class _FloatSet(ColourSet):
    """ColourSet with float32 images."""

    def __getitem__(self, i: int) -> torch.Tensor:
        return super().__getitem__(i).float()


class RampSet(ColourSet):
    """Textured images (so crop offsets show) that depend on the index."""

    def __getitem__(self, i: int) -> torch.Tensor:
        self.loads.append(i)
        return ((torch.arange(20 * 24).view(1, 20, 24) + 7 * i) % 256).expand(3, 20, 24).to(torch.uint8)


def test_crop_set_items_seeds_and_store() -> None:
    """Item i: the crops of image indices[i] drawn from default_rng([*seed, image index]) and position i; the
    store serves a decoded image once, without it every access decodes."""
    ds = RampSet()
    store: dict[int, torch.Tensor] = {}
    cs = CropSet(ds, np.array([5, 2, 9]), 16, 2, (np.int64(3), 4), store)
    assert len(cs) == 3 and cs.seed == [3, 4]
    crops, i = cs[1]
    assert i == 1 and crops.shape == (2, 3, 16, 16) and crops.dtype == torch.uint8
    assert torch.equal(crops, random_crops(RampSet()[2], 16, 2, np.random.default_rng([3, 4, 2])))
    other = CropSet(ds, np.array([2]), 16, 2, [3, 4], None)  # same image at another position: same crops
    assert torch.equal(other[0][0], crops)
    assert not torch.equal(CropSet(ds, np.array([2]), 16, 2, [3, 5], None)[0][0], crops)
    ds.loads.clear()
    cs[1]
    cs[1]
    assert ds.loads == [] and set(store) == {2}
    other[0]
    other[0]
    assert ds.loads == [2, 2]


def test_crop_loader_batches_and_seeded_shuffle() -> None:
    """Batches of (b, n, 3, s, s) crops and positions; in order without a seed; with one, a reproducible
    permutation that depends on the seed."""
    cs = CropSet(ColourSet(), np.arange(12), 16, 2, [0], None)
    plain = crop_loader(cs, 5, 0)
    assert plain.num_workers == 0 and not plain.persistent_workers
    assert crop_loader(cs, 5, 2).num_workers == 2
    batches = list(plain)
    assert [tuple(c.shape) for c, _ in batches] == [(5, 2, 3, 16, 16), (5, 2, 3, 16, 16), (2, 2, 3, 16, 16)]
    assert torch.cat([p for _, p in batches]).tolist() == list(range(12))

    def order(seed: int) -> list[int]:
        return torch.cat([p for _, p in crop_loader(cs, 5, 0, seed)]).tolist()

    assert sorted(order(1)) == list(range(12)) and order(1) != list(range(12))
    assert order(1) == order(1) and order(1) != order(2)
    assert order(0) != list(range(12))  # 0 is a seed, not "no shuffle"


def test_image_store_rules() -> None:
    """A store (holding the first image, decoded once) only for in-process loading of a non-empty set that fits
    `max_cache_mb` by its first image; the limit itself fits."""
    ds = ColourSet(n=4)
    size_mb = 4 * 3 * 20 * 24 / 2**20
    store = image_store(ds, 0, size_mb)
    assert store is not None and list(store) == [0] and torch.equal(store[0], ds[0]) and ds.loads == [0, 0]
    assert image_store(ds, 0, size_mb * 0.999) is None
    assert image_store(ds, 1, 1e9) is None
    assert image_store(ColourSet(n=0), 0, 1e9) is None
    assert list(image_store(ColourSet(n=1), 0, 1e9) or {}) == [0]
    wide = _FloatSet(n=4)  # float32 images: 4 bytes per value
    assert image_store(wide, 0, size_mb * 3.99) is None and image_store(wide, 0, size_mb * 4) is not None


# -------------------------------------------------------------------------------------------- FinetuneModule
def test_targets_buffers_and_frozen_parameters() -> None:
    """Targets are the train scores standardised by their mean and std; buffers start at 0 / 1; a frozen
    encoder's parameters need no gradient, an unfrozen one's do; constant scores keep sd = 1."""
    m = _module()
    train = 1.0 + SPLIT["train"] % 7
    assert m.mu == pytest.approx(train.mean()) and m.sd == pytest.approx(train.std())
    assert m.z.dtype == torch.float32
    np.testing.assert_allclose(m.z.numpy(), (train - train.mean()) / train.std(), rtol=1e-6)
    assert torch.equal(m.f_mean, torch.zeros(3)) and torch.equal(m.f_std, torch.ones(3))
    assert "f_mean" in dict(m.named_buffers()) and "f_std" in dict(m.named_buffers())
    assert math.isnan(m.val_srcc) and m.freeze_backbone
    assert not any(p.requires_grad for p in m.encoder.parameters())
    assert all(p.requires_grad for p in _module(_ev(freeze_backbone=False)).encoder.parameters())
    flat = ColourSet()
    flat.scores = np.full(12, 3.0)
    c = _module(ds=flat)
    assert (c.mu, c.sd) == (3.0, 1.0) and torch.equal(c.z, torch.zeros(6))


def test_forward_standardises_features_and_mean_pred_averages_crops() -> None:
    """forward = head((features - f_mean) / f_std) squeezed to (B,); `_mean_pred` scales uint8 to [0, 1] and
    averages the k crops of each item."""
    m = _module()
    with torch.no_grad():
        m.f_mean.copy_(torch.tensor([0.1, 0.2, 0.3]))
        m.f_std.copy_(torch.tensor([2.0, 4.0, 0.5]))
        m.head[0].weight.copy_(torch.tensor([[1.0, -1.0, 2.0]]))
        m.head[0].bias.fill_(0.5)
    x = torch.rand(2, 3, 8, 8)
    f = x.mean(dim=(2, 3))
    want = ((f - m.f_mean) / m.f_std) @ torch.tensor([1.0, -1.0, 2.0]) + 0.5
    out = m(x)
    assert out.shape == (2,) and out.dtype == torch.float32
    torch.testing.assert_close(out, want)
    crops = torch.randint(0, 256, (2, 3, 3, 8, 8), dtype=torch.uint8)
    per_crop = m(crops.flatten(0, 1).float() / 255.0).view(2, 3)
    torch.testing.assert_close(m._mean_pred(crops), per_crop.mean(dim=1))


@pytest.mark.parametrize(
    "kw,head_trains", [({}, False), ({"dropout": 0.5}, True), ({"freeze_backbone": False}, True)]
)
def test_train_mode_keeps_the_encoder_in_eval(kw: dict, head_trains: bool) -> None:
    """train(): the encoder stays in eval mode; the head trains only with dropout or a trained encoder;
    train(False) and the epoch-start hook behave the same way."""
    m = _module(_ev(**kw))
    assert m.train() is m and m.training
    assert not m.encoder.training and not m.encoder.bn.training and m.head.training is head_trains
    m.eval()
    m.on_train_epoch_start()
    assert not m.encoder.training and m.head.training is head_trains
    m.train(False)
    assert not m.head.training and not m.encoder.training


def test_loaders_use_their_part_crop_counts_and_distinct_seeds() -> None:
    """train: train_crops per image, shuffled by a seed that changes with the epoch; val / predict: in order with
    val_crops / test_crops; the four crop streams (train, val, test, statistics) are seeded differently."""
    ev = _ev(train_crops=2, val_crops=3, test_crops=4, seed=5)
    m = _module(ev, s=1)
    m._trainer = SimpleNamespace(current_epoch=0)  # type: ignore[assignment]
    tr = m.train_dataloader()
    assert tr.batch_size == 4 and tr.dataset.n == 2 and list(tr.dataset.indices) == SPLIT["train"].tolist()
    va, pr = m.val_dataloader(), m.predict_dataloader()
    assert va.dataset.n == 3 and list(va.dataset.indices) == SPLIT["val"].tolist() and va.batch_size == 4
    assert pr.dataset.n == 4 and list(pr.dataset.indices) == SPLIT["test"].tolist() and pr.batch_size == 4
    assert torch.cat([p for _, p in va]).tolist() == [0, 1, 2] and torch.cat([p for _, p in pr]).tolist() == [
        0,
        1,
        2,
    ]
    seeds = [tuple(tr.dataset.seed), tuple(va.dataset.seed), tuple(pr.dataset.seed)]
    assert all(sd[:2] == (5, 1) for sd in seeds) and len(set(seeds)) == 3
    order0 = torch.cat([p for _, p in tr]).tolist()
    m._trainer = SimpleNamespace(current_epoch=1)  # type: ignore[assignment]
    tr1 = m.train_dataloader()
    assert tuple(tr1.dataset.seed) not in seeds and tuple(tr1.dataset.seed)[:2] == (5, 1)
    assert sorted(order0) == list(range(6)) and order0 != torch.cat([p for _, p in tr1]).tolist()
    other = _module(_ev(train_crops=2, seed=5), s=2)
    other._trainer = SimpleNamespace(current_epoch=0)  # type: ignore[assignment]
    assert torch.cat([p for _, p in other.train_dataloader()]).tolist() != order0


def test_feature_statistics_of_the_train_images() -> None:
    """on_fit_start sets f_mean / f_std to the mean and population std of the train images' features (uniform
    images: any crop gives the image's colour) from one crop per image, a constant feature gets std 1, and it
    runs only once."""
    ds = ColourSet()
    ds.colour = lambda i: torch.tensor([10.0 * i, 50.0, 200.0 - 3 * i])  # type: ignore[method-assign]
    m = _module(_ev(batch_size=6), ds=ds)
    m.on_fit_start()
    assert m.encoder.rows == [6]  # one batch holding one crop of each of the 6 train images
    cols = np.stack([ds.colour(int(i)).numpy() for i in SPLIT["train"]]) / 255.0
    np.testing.assert_allclose(m.f_mean.numpy(), cols.mean(0), rtol=1e-6)
    np.testing.assert_allclose(m.f_std.numpy(), [cols[:, 0].std(), 1.0, cols[:, 2].std()], rtol=1e-5)
    assert m.f_mean.dtype == torch.float32 and m.f_std.dtype == torch.float32
    with torch.no_grad():
        m.encoder.gain.fill_(3.0)
    m.on_fit_start()
    np.testing.assert_allclose(m.f_mean.numpy(), cols.mean(0), rtol=1e-6)


def _logger(m: FinetuneModule) -> dict[str, tuple[Any, dict]]:
    logged: dict[str, tuple[Any, dict]] = {}
    m.log = lambda name, value, **kw: logged.__setitem__(name, (value, kw))  # type: ignore[method-assign]
    return logged


@pytest.mark.parametrize("loss", ["l2", "smooth_l1"])
def test_training_step_loss_against_the_items_targets(loss: str) -> None:
    """The loss compares every crop's prediction with its item's standardised score (repeated per crop), with
    the configured loss; logged once per epoch, weighted by the number of items."""
    m = _module(_ev(loss=loss))
    logged = _logger(m)
    crops = torch.randint(0, 256, (2, 3, 3, 8, 8), dtype=torch.uint8)
    pos = torch.tensor([4, 1])
    out = m.training_step((crops, pos), 0)
    pred = m(crops.flatten(0, 1).float() / 255.0)
    target = m.z[[4, 4, 4, 1, 1, 1]]
    fn = F.mse_loss if loss == "l2" else F.smooth_l1_loss
    torch.testing.assert_close(out, fn(pred, target))
    other = F.smooth_l1_loss if loss == "l2" else F.mse_loss
    assert not torch.isclose(out, other(pred, target))
    value, kw = logged["train_loss"]
    assert value is out and kw == {"on_step": False, "on_epoch": True, "batch_size": 2}


def test_validation_srcc_in_position_order_and_constant_predictions() -> None:
    """Predictions gathered over batches in any order are matched to the val items by position; constant
    predictions give nan, logged as -1 on the progress bar."""
    m = _module()
    m._trainer = SimpleNamespace(world_size=1)  # type: ignore[assignment]
    logged = _logger(m)
    m._val = [(torch.zeros(1), torch.zeros(1))]
    m.on_validation_epoch_start()
    assert m._val == []
    preds = {0: 0.03, 1: -0.1, 2: 0.01}  # standardised predictions: a spread well below 1
    m._mean_pred = lambda crops: torch.tensor([preds[int(i)] for i in crops])  # type: ignore[method-assign]
    m.validation_step((torch.tensor([2, 0]), torch.tensor([2, 0])), 0)
    m.validation_step((torch.tensor([1]), torch.tensor([1])), 1)
    m.on_validation_epoch_end()
    target = 1.0 + SPLIT["val"] % 7
    want = spearmanr([0.03, -0.1, 0.01], target)[0]
    assert m.val_srcc == pytest.approx(want) and want != pytest.approx(
        spearmanr([0.01, 0.03, -0.1], target)[0]
    )
    assert logged["val_srcc"] == (m.val_srcc, {"prog_bar": True})
    m.on_validation_epoch_start()
    preds.update({0: 0.5, 1: 0.5, 2: 0.5})
    m.validation_step((torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2])), 0)
    m.on_validation_epoch_end()
    assert math.isnan(m.val_srcc) and logged["val_srcc"] == (-1.0, {"prog_bar": True})


def test_predict_step_maps_back_to_score_units() -> None:
    """predict_step returns the positions and the mean prediction times sd plus mu, as float64 NumPy."""
    m = _module()
    m._mean_pred = lambda crops: torch.tensor([1.0, -0.5])  # type: ignore[method-assign]
    pos, pred = m.predict_step((torch.zeros(2), torch.tensor([1, 0])), 0)
    assert pos.tolist() == [1, 0] and pred.dtype == np.float64
    np.testing.assert_allclose(pred, [m.mu + m.sd, m.mu - 0.5 * m.sd])


def test_optimiser_groups() -> None:
    """AdamW with the head at `lr`; the encoder's trainable parameters at `backbone_lr` only when it is not
    frozen and backbone_lr > 0; weight decay as configured."""
    frozen = _module(_ev(lr=0.01, weight_decay=0.3)).configure_optimizers()
    assert isinstance(frozen, torch.optim.AdamW) and len(frozen.param_groups) == 1
    assert frozen.param_groups[0]["lr"] == 0.01 and frozen.param_groups[0]["weight_decay"] == 0.3
    m = _module(_ev(freeze_backbone=False, backbone_lr=1e-4))
    m.encoder.bn.weight.requires_grad_(False)
    groups = m.configure_optimizers().param_groups
    assert [g["lr"] for g in groups] == [1e-3, 1e-4]
    assert [id(p) for p in groups[0]["params"]] == [id(p) for p in m.head.parameters()]
    assert {id(p) for p in groups[1]["params"]} == {id(m.encoder.gain), id(m.encoder.bn.bias)}
    none = _module(_ev(freeze_backbone=False, backbone_lr=0.0)).configure_optimizers()
    assert len(none.param_groups) == 1


def test_keep_best_ties_sanity_checks_and_whole_module_when_unfrozen() -> None:
    """A tie keeps the earlier epoch; sanity-check validation is ignored; with a trained encoder the whole
    module's weights are kept and restored."""
    m = _module(_ev(freeze_backbone=False))
    keep = KeepBest()
    assert keep.best_epoch == -1 and math.isnan(keep.val_srcc) and keep.state is None
    keep.restore(m)  # nothing kept yet: no change, no error
    m.val_srcc = 0.9
    keep.on_validation_end(SimpleNamespace(sanity_checking=True, current_epoch=0), m)
    assert keep.state is None
    for epoch, (v, g) in enumerate([(0.4, 1.0), (0.6, 2.0), (0.6, 3.0)]):
        m.val_srcc = v
        with torch.no_grad():
            m.encoder.gain.fill_(g)
            m.head[0].bias.fill_(g)
        keep.on_validation_end(SimpleNamespace(sanity_checking=False, current_epoch=epoch), m)
    assert keep.best_epoch == 1 and keep.val_srcc == 0.6 and "encoder.gain" in keep.state
    keep.restore(m)
    assert float(m.encoder.gain[0].detach()) == 2.0 and float(m.head[0].bias.detach()) == 2.0
