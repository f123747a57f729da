"""What a RankIQA / MLF step computes: the ladder hinge with its margin and reduction, pair accuracy, head and
learning-rate groups, MLF taps and fusion, constructor checks (small CPU models, no trainer)."""

from __future__ import annotations

import pytest
import torch
from _wiring import ARNIQA_DIST, BACKBONE, LADDER, OPT, _capture_logs

from iqa_bench.errors import ConfigError

pytestmark = pytest.mark.filterwarnings(r"ignore:You are trying to `self.log\(\)`")


# -- RankIQA / MLF ----------------------------------------------------------------------------------------------
class _Ladder:
    """Ladder stand-in: level k = image darkened by k/(L+1); records the generator it was given."""

    num_levels = 3

    def __init__(self) -> None:
        self.generators = []

    def __call__(self, images, generator=None):
        self.generators.append(generator)
        k = torch.arange(self.num_levels + 1, dtype=images.dtype) / (self.num_levels + 1)
        return images[:, None] * (1 - k)[None, :, None, None, None], torch.arange(images.shape[0])


def _rank(cls=None, **kw):
    from iqa_bench.methods.rankiqa import RankIQA

    m = (cls or RankIQA)(BACKBONE, LADDER, OPT, **kw)
    m.sampler = _Ladder()
    return m


def test_normalised_margin():
    from iqa_bench.methods.rankiqa import normalised_margin

    assert normalised_margin() == pytest.approx(10.0 / (255.0 * (0.229 + 0.224 + 0.225) / 3))
    assert normalised_margin(5.0, (0.5, 0.25)) == pytest.approx(5.0 / (255.0 * 0.375))
    assert normalised_margin(10.0, (1.0,)) == pytest.approx(10.0 / 255.0)


def test_independent_crops_reach_every_offset_and_accept_the_whole_view():
    from iqa_bench.methods.rankiqa import independent_crops

    views = torch.arange(2 * 3 * 1 * 6 * 9, dtype=torch.float32).view(2, 3, 1, 6, 9)
    whole = independent_crops(views, 6, torch.Generator().manual_seed(0))  # size = the short side: fits
    assert whole.shape == (2, 3, 1, 6, 6) and whole.is_contiguous()
    tops, lefts = set(), set()
    for seed in range(40):
        out = independent_crops(views, 4, torch.Generator().manual_seed(seed))
        for i in range(2):
            for k in range(3):
                v = out[i, k, 0]
                top, left = divmod(int(v[0, 0].item() - views[i, k, 0, 0, 0].item()), 9)
                torch.testing.assert_close(v, views[i, k, 0, top : top + 4, left : left + 4])
                tops.add(top)
                lefts.add(left)
    assert tops == set(range(3)) and lefts == set(range(6))  # every position, rows and columns apart
    with pytest.raises(ConfigError, match=r"method\.level_crop=7 is larger than the worker crop 6x9"):
        independent_crops(views, 7, torch.Generator())


def test_rankiqa_defaults_hyperparameters_and_checks():
    from iqa_bench.methods.rankiqa import RankIQA

    m = _rank()
    assert (m.margin, m.reduction, m.head_lr_mult, m.level_crop) == (10.0, "sum_over_batch", 10.0, None)
    hp = dict(m.hparams)
    assert hp["margin"] == 10.0 and hp["reduction"] == "sum_over_batch" and hp["head_lr_mult"] == 10.0
    assert hp["level_crop"] is None and hp["head_hidden_dim"] is None and hp["head_dropout"] == 0.0
    assert hp["backbone"] == BACKBONE and hp["optimizer"] == OPT and hp["seed"] == 0
    assert [type(x).__name__ for x in m.head] == ["Linear"] and m.head[0].in_features == 64
    assert _rank(level_crop=16).level_crop == 16 and _rank(level_crop=16).hparams["level_crop"] == 16
    assert _rank(margin=0.5, reduction="sum").hparams["margin"] == 0.5
    assert _rank(head_lr_mult=0.5).head_lr_mult == 0.5  # any positive multiplier, below 1 too
    sched = {"name": "cosine", "total_steps": 5}
    full = RankIQA(BACKBONE, LADDER, OPT, sched, 7, head_hidden_dim=8, head_dropout=0.5)
    assert full.scheduler_cfg == sched and full.seed == 7 and full.hparams["scheduler"] == sched
    assert full.hparams["distortion"] == LADDER and full.hparams["seed"] == 7
    layers = [(type(x).__name__, getattr(x, "out_features", getattr(x, "p", None))) for x in full.head]
    assert layers == [("Linear", 8), ("ReLU", None), ("Dropout", 0.5), ("Linear", 1)]
    bad = [
        (
            {"reduction": "mean"},
            r"method\.reduction must be one of \('sum_over_batch', 'mean_over_pairs', 'sum'\), got 'mean'",
        ),
        ({"margin": 0.0}, r"method\.margin must be > 0, got 0\.0"),
        ({"head_lr_mult": 0.0}, r"method\.head_lr_mult must be > 0, got 0\.0"),
        ({"level_crop": 15}, r"method\.level_crop must be null or >= 16, got 15"),
    ]
    for kw, msg in bad:
        with pytest.raises(ConfigError, match=msg):
            RankIQA(BACKBONE, LADDER, OPT, **kw)
    with pytest.raises(ConfigError, match=r"method RankIQA needs a distortion ladder .*got ArniqaSampler"):
        RankIQA(BACKBONE, ARNIQA_DIST, OPT)
    with pytest.raises(TypeError, match=r"unexpected arguments: \['stages'\]"):
        RankIQA(BACKBONE, LADDER, OPT, stages=[-1])


def test_rankiqa_step_is_the_ladder_hinge_with_its_margin_and_reduction():
    from iqa_bench.losses.ranking import ladder_ranking_hinge

    torch.manual_seed(0)
    for margin, reduction in ((0.7, "mean_over_pairs"), (3.0, "sum")):
        m = _rank(margin=margin, reduction=reduction, level_crop=16).eval()
        logged = _capture_logs(m)
        g = torch.Generator().manual_seed(2)
        batch = m.prepare_batch(
            {"image": torch.randint(0, 256, (3, 3, 24, 24), generator=g, dtype=torch.uint8)}, g
        )
        assert m.sampler.generators == [g] and batch["views"].shape == (3, 4, 3, 16, 16)
        if margin == 0.7:  # the level crops are drawn from the step's generator, not the global one
            images = {"image": torch.randint(0, 256, (2, 3, 24, 24), dtype=torch.uint8)}
            first = m.prepare_batch(images, torch.Generator().manual_seed(9))["views"]
            torch.manual_seed(99)
            assert torch.equal(m.prepare_batch(images, torch.Generator().manual_seed(9))["views"], first)
        assert batch["type_ids"].tolist() == [0, 1, 2]
        loss = m.training_step(batch, 0)
        with torch.no_grad():
            scores = m.score(batch["views"].flatten(0, 1)).view(3, 4)
        torch.testing.assert_close(loss, ladder_ranking_hinge(scores, margin, reduction))
        for other in ((10.0, reduction), (margin, "sum_over_batch")):
            assert abs(ladder_ranking_hinge(scores, *other).item() - loss.item()) > 1e-4
        better = [
            float(scores[i, a] > scores[i, b]) for i in range(3) for a in range(4) for b in range(a + 1, 4)
        ]
        acc, kw = logged["train/pair_acc"]
        assert acc.item() == pytest.approx(sum(better) / 18) and kw == {"batch_size": 3}
        assert logged["train/loss"][0] is loss and logged["train/loss"][1] == {
            "prog_bar": True,
            "batch_size": 3,
        }
    # pair accuracy counts only pairs (better, worse) in ladder order: a perfectly ordered ladder scores 1
    m = _rank()
    m.score = lambda x: -torch.arange(x.shape[0], dtype=torch.float32)
    logged = {}
    m.log = lambda name, value, **kw: logged.__setitem__(name, value)
    m.training_step({"views": torch.zeros(2, 4, 3, 8, 8)}, 0)
    assert logged["train/pair_acc"].item() == 1.0
    m.score = lambda x: torch.arange(x.shape[0], dtype=torch.float32)
    loss = m.training_step({"views": torch.zeros(2, 4, 3, 8, 8)}, 0)
    assert logged["train/pair_acc"].item() == 0.0
    torch.testing.assert_close(
        loss, ladder_ranking_hinge(torch.arange(8.0).view(2, 4), 10.0, "sum_over_batch")
    )
    m.score = lambda x: torch.zeros(x.shape[0])  # ties are not correctly ordered pairs
    m.training_step({"views": torch.zeros(2, 4, 3, 8, 8)}, 0)
    assert logged["train/pair_acc"].item() == 0.0


def test_rankiqa_optimiser_groups_and_schedule():
    m = _rank(head_lr_mult=4.0)
    m.optimizer_cfg = {"name": "sgd", "momentum": 0.5}  # no lr: the optimiser's default 1e-3
    opt = m.configure_optimizers()
    assert isinstance(opt, torch.optim.SGD) and len(opt.param_groups) == 2
    base, head = opt.param_groups
    assert base["lr"] == pytest.approx(1e-3) and head["lr"] == pytest.approx(4e-3) and head["momentum"] == 0.5
    assert {id(p) for p in head["params"]} == {id(p) for p in m.head.parameters()}
    assert {id(p) for p in base["params"]} == {id(p) for p in m.backbone.parameters()}
    for p in m.backbone.parameters():
        p.requires_grad_(False)
    m.optimizer_cfg = {"name": "adamw", "lr": 0.5}
    m.scheduler_cfg = {"name": "cosine", "total_steps": 10, "min_lr_factor": 0.2}
    got = m.configure_optimizers()
    assert len(got["optimizer"].param_groups) == 1  # no empty group for a frozen backbone
    assert got["optimizer"].param_groups[0]["lr"] == pytest.approx(2.0)
    assert got["lr_scheduler"]["interval"] == "step" and got["lr_scheduler"]["scheduler"].lr_lambdas[0](
        10
    ) == pytest.approx(0.2)


def test_mlf_options_and_features():
    from iqa_bench.methods.mlf import MLF

    m = _rank(MLF, stages=[-2, -1], proj_dim=5, head_dropout=0.25)
    assert m.stages == [2, 3] and m.eval_features == "backbone"
    assert [p[0].out_features for p in m.head.projections] == [5, 5]
    assert m.head.projections[0][0].in_features == 32 and m.head.projections[1][0].in_features == 64
    layers = [x for x in m.head.modules() if isinstance(x, (torch.nn.Linear, torch.nn.Dropout))]
    assert any(
        isinstance(x, torch.nn.Linear) and x.out_features == 512 for x in layers
    )  # default hidden width
    assert any(isinstance(x, torch.nn.Dropout) and x.p == 0.25 for x in layers)
    assert m.new_modules() == [m.head]
    d = _rank(MLF)
    assert d.stages == [1, 2, 3] and [p[0].out_features for p in d.head.projections] == [256] * 3
    with pytest.raises(
        ConfigError, match=r"method\.eval_features must be one of \('backbone', 'taps'\), got 'x'"
    ):
        _rank(MLF, eval_features="x")
    with pytest.raises(ConfigError, match=r"method\.proj_dim must be >= 1, got 0"):
        _rank(MLF, proj_dim=0)
    assert _rank(MLF, proj_dim=1).head.projections[0][0].out_features == 1
    with pytest.raises(ConfigError, match=r"method\.level_pool: "):
        _rank(MLF, level_pool="max")
    m.eval()
    x0 = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(m.features(x0), torch.nn.functional.normalize(m.backbone(x0), dim=1))
    taps = _rank(MLF, stages=[1, 3], eval_features="taps").eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    maps = taps.backbone.forward_levels(x, [1, 3])
    want = torch.nn.functional.normalize(
        torch.cat([torch.nn.functional.normalize(mp.mean(dim=(2, 3)), dim=1) for mp in maps], dim=1), dim=1
    )
    torch.testing.assert_close(taps.features(x), want)
    assert taps.feature_dim == 16 + 64
    torch.testing.assert_close(taps.score(x), taps.head(maps))
    m.train()
    m._freeze_unreached()
    assert m.training  # the dry backward pass restores the training mode
    m.eval()
    m._freeze_unreached()
    assert not m.training
