"""What a pretraining step computes: which views are paired, the temperature, margin and queue wiring, the EMA
momentum and the optimiser and scheduler parameters (small CPU models, no trainer)."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from iqa_bench.data.sampling import mix_seed
from iqa_bench.errors import ConfigError
from iqa_bench.methods.base import PretrainMethod, to_plain, uint8_to_float
from iqa_bench.methods.optim import LARS, build_optimizer, build_scheduler, lr_factor

pytestmark = pytest.mark.filterwarnings(r"ignore:You are trying to `self.log\(\)`")

OPT = {"name": "adamw", "lr": 1e-3, "weight_decay": 0.0}
BACKBONE = {"name": "tiny", "widths": [8, 16, 32, 64]}
ARNIQA_DIST = {
    "_target_": "iqa_bench.distortions.ArniqaSampler",
    "max_distortions": 1,
    "pristine_prob": 0.0,
    "names": ["brighten", "darken"],
}


def _capture_logs(module) -> dict:
    """Replace `module.log` by a recorder: {name: (value, kwargs)}."""
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, (value, kw))
    return logged


# -- optimisers -------------------------------------------------------------------------------------------------
def _lars_reference(p, mu, g, lr, wd, m, tc):
    """One LARS step by hand (MoCo-v3): returns (new p, new mu)."""
    if p.ndim > 1:
        g = g + wd * p
        pn, un = p.norm(), g.norm()
        q = tc * pn / un if (pn > 0 and un > 0) else torch.tensor(1.0)
        g = g * q
    mu = m * mu + g
    return p - lr * mu, mu


def test_lars_step_matches_the_update_rule():
    gen = torch.Generator().manual_seed(0)
    w = torch.nn.Parameter(torch.randn(3, 4, generator=gen))
    b = torch.nn.Parameter(torch.randn(3, generator=gen))
    lr, wd, m, tc = 0.5, 0.1, 0.8, 0.02
    opt = LARS([w, b], lr=lr, weight_decay=wd, momentum=m, trust_coefficient=tc)
    ref = {"w": (w.detach().clone(), torch.zeros(3, 4)), "b": (b.detach().clone(), torch.zeros(3))}
    for step in range(3):
        gw, gb = torch.randn(3, 4, generator=gen), torch.randn(3, generator=gen)
        w.grad, b.grad = gw.clone(), gb.clone()
        calls = []
        out = opt.step(lambda calls=calls, step=step: calls.append(1) or torch.tensor(float(step)))
        assert calls == [1] and float(out) == step  # the closure runs once and its loss is returned
        ref["w"] = _lars_reference(*ref["w"], gw, lr, wd, m, tc)
        ref["b"] = _lars_reference(*ref["b"], gb, lr, wd, m, tc)  # 1-D: no weight decay, no trust ratio
        torch.testing.assert_close(w.detach(), ref["w"][0], rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(b.detach(), ref["b"][0], rtol=1e-6, atol=1e-7)
    assert opt.step() is None


def test_lars_defaults_and_zero_norms():
    w = torch.nn.Parameter(torch.ones(2, 2))
    opt = LARS([w], lr=1.0)
    assert opt.defaults == {"lr": 1.0, "weight_decay": 0.0, "momentum": 0.9, "trust_coefficient": 0.001}
    w.grad = torch.full((2, 2), 2.0)
    opt.step()  # ‖p‖ = 2, ‖g‖ = 4: q = 0.001 · 2 / 4
    torch.testing.assert_close(w.detach(), torch.full((2, 2), 1 - 2.0 * 0.0005))
    zero = torch.nn.Parameter(torch.zeros(2, 2))  # ‖p‖ = 0: q = 1 (the raw gradient)
    opt = LARS([zero], lr=0.1, trust_coefficient=0.5)
    zero.grad = torch.full((2, 2), 3.0)
    opt.step()
    torch.testing.assert_close(zero.detach(), torch.full((2, 2), -0.3))
    still = torch.nn.Parameter(torch.ones(2, 2))  # ‖g‖ = 0: q = 1, nothing moves, no nan
    opt = LARS([still], lr=0.1, trust_coefficient=0.5)
    still.grad = torch.zeros(2, 2)
    opt.step()
    torch.testing.assert_close(still.detach(), torch.ones(2, 2))
    skipped = torch.nn.Parameter(torch.ones(2, 2))  # no gradient: untouched and no momentum state
    opt = LARS([skipped], lr=0.1)
    opt.step()
    assert torch.equal(skipped.detach(), torch.ones(2, 2)) and len(opt.state) == 0


@pytest.mark.parametrize(
    ("name", "cls"),
    [("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam), ("sgd", torch.optim.SGD), ("lars", LARS)],
)
def test_build_optimizer_passes_every_parameter(name, cls):
    p = torch.nn.Parameter(torch.ones(2, 2))
    opt = build_optimizer([p], name=name, lr=0.25, weight_decay=0.125, momentum=0.5, betas=[0.8, 0.9])
    assert type(opt) is cls
    g = opt.param_groups[0]
    assert g["lr"] == 0.25 and g["weight_decay"] == 0.125
    if name in ("adam", "adamw"):
        assert g["betas"] == (0.8, 0.9) and isinstance(g["betas"], tuple)
    else:
        assert g["momentum"] == 0.5
    if name == "lars":
        assert g["trust_coefficient"] == 0.001
        assert (
            build_optimizer([p], name="lars", trust_coefficient=0.3).param_groups[0]["trust_coefficient"]
            == 0.3
        )


def test_build_optimizer_defaults_and_errors():
    p = torch.nn.Parameter(torch.ones(2))
    opt = build_optimizer([p])
    g = opt.param_groups[0]
    assert type(opt) is torch.optim.AdamW
    assert (g["lr"], g["weight_decay"], g["betas"]) == (1e-3, 0.0, (0.9, 0.999))
    g = build_optimizer([p], name="sgd").param_groups[0]
    assert (g["lr"], g["weight_decay"], g["momentum"]) == (1e-3, 0.0, 0.9)
    with pytest.raises(
        ConfigError, match=r"method\.optimizer\.name must be one of .*'adamw'.*'lars'.*got 'rmsprop'"
    ):
        build_optimizer([p], name="rmsprop")


# -- schedules ------------------------------------------------------------------------------------------------
def _cos(t, lo):
    return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * t))


def test_lr_factor_warmup_cosine_and_none():
    f = lambda s, name="cosine", total=12, warm=4, lo=0.1: lr_factor(s, name, total, warm, lo, 5, 2.0)  # noqa: E731
    assert [f(s) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    for s in range(4, 16):  # cosine over total − warm = 8 steps, then held at min_factor
        assert f(s) == pytest.approx(_cos(min(1.0, (s - 4) / 8), 0.1)), s
    assert f(12) == pytest.approx(0.1) and f(30) == pytest.approx(0.1)
    assert f(3, name="none") == pytest.approx(1.0) and f(2, name="none") == pytest.approx(0.75)
    assert f(7, name="none") == 1.0 and f(0, name="none", warm=0) == 1.0
    assert f(0, warm=0) == pytest.approx(1.0) and f(6, warm=0) == pytest.approx(_cos(0.5, 0.1))
    # warm-up as long as the run: a span of at least one step (no division by zero)
    assert f(4, total=4) == pytest.approx(1.0) and f(5, total=4) == pytest.approx(0.1)
    assert f(0, warm=1) == 1.0 and f(1, warm=1) == pytest.approx(1.0)  # a one-step warm-up
    with pytest.raises(ConfigError, match=r"method\.scheduler\.name must be one of .*got 'step'"):
        f(5, name="step")


def test_lr_factor_cosine_restarts_cycles():
    f = lambda s, warm=0: lr_factor(s, "cosine_restarts", 100, warm, 0.2, 4, 2.0)  # noqa: E731
    # cycles of 4, 8, 16 steps starting at 0, 4, 12
    for s, (t, period) in {
        0: (0, 4),
        1: (1, 4),
        3: (3, 4),
        4: (0, 8),
        11: (7, 8),
        12: (0, 16),
        27: (15, 16),
    }.items():
        assert f(s) == pytest.approx(_cos(t / period, 0.2)), s
    assert f(0) == pytest.approx(1.0) and f(4) == pytest.approx(1.0)
    assert f(1, warm=2) == pytest.approx(1.0) and f(2, warm=2) == pytest.approx(1.0)
    assert f(3, warm=2) == pytest.approx(_cos(1 / 4, 0.2))
    assert lr_factor(5, "cosine_restarts", 100, 0, 0.0, 2, 1.0) == pytest.approx(_cos(1 / 2, 0.0))


def _lrs(sched, opt, n):
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_build_scheduler_steps_every_iteration_with_its_arguments():
    p = torch.nn.Parameter(torch.ones(1))
    opt = torch.optim.SGD([p], lr=2.0)
    got = build_scheduler(opt, name="cosine", total_steps=10, warmup_steps=2, min_lr_factor=0.25)
    assert set(got) == {"scheduler", "interval"} and got["interval"] == "step"
    lrs = _lrs(got["scheduler"], opt, 12)
    want = [2.0 * lr_factor(s, "cosine", 10, 2, 0.25, 1000, 2.0) for s in range(12)]
    assert lrs == pytest.approx(want)
    assert lrs[0] == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.5)
    opt = torch.optim.SGD([p], lr=1.0)
    got = build_scheduler(opt, name="cosine_restarts", restart_period=3, restart_mult=3.0, min_lr_factor=0.0)
    lrs = _lrs(got["scheduler"], opt, 13)
    assert lrs == pytest.approx([lr_factor(s, "cosine_restarts", 1000, 0, 0.0, 3, 3.0) for s in range(13)])
    assert lrs[3] == pytest.approx(1.0) and lrs[12] == pytest.approx(1.0)  # restarts after 3 and 3 + 9 steps


def test_build_scheduler_defaults():
    p = torch.nn.Parameter(torch.ones(1))
    opt = torch.optim.SGD([p], lr=1.0)
    lrs = _lrs(build_scheduler(opt)["scheduler"], opt, 1001)  # cosine over 1000 steps down to 0.01
    assert lrs[0] == 1.0 and lrs[500] == pytest.approx(0.505) and lrs[1000] == pytest.approx(0.01)
    opt = torch.optim.SGD([p], lr=1.0)
    lrs = _lrs(build_scheduler(opt, name="cosine_restarts")["scheduler"], opt, 3001)
    assert lrs[1000] == pytest.approx(1.0) and lrs[2000] == pytest.approx(0.505) and lrs[3000] == 1.0
    opt = torch.optim.SGD([p], lr=1.0)
    assert build_scheduler(opt, name="none") is None
    assert build_scheduler(opt, name="none", warmup_steps=0) is None
    one = build_scheduler(opt, name="none", warmup_steps=1)
    assert one is not None and _lrs(one["scheduler"], opt, 2) == pytest.approx([1.0, 1.0])
    opt = torch.optim.SGD([p], lr=1.0)
    warm = build_scheduler(opt, name="none", warmup_steps=2)
    assert _lrs(warm["scheduler"], opt, 4) == pytest.approx([0.5, 1.0, 1.0, 1.0])


def test_build_scheduler_errors():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=1.0)
    with pytest.raises(
        ConfigError,
        match=r"method\.scheduler\.name must be one of \('none', 'cosine', 'cosine_restarts'\), got 'linear'",
    ):
        build_scheduler(opt, name="linear")
    with pytest.raises(
        ConfigError, match=r"method\.scheduler\.total_steps must be > 0 for a cosine schedule, got 0"
    ):
        build_scheduler(opt, name="cosine", total_steps=0)
    with pytest.raises(ConfigError, match=r"method\.scheduler\.restart_period must be > 0, got 0"):
        build_scheduler(opt, name="cosine_restarts", restart_period=0)
    assert build_scheduler(opt, name="cosine", total_steps=1) is not None
    assert build_scheduler(opt, name="cosine_restarts", restart_period=1) is not None
    assert build_scheduler(opt, name="cosine_restarts", total_steps=0) is not None  # total_steps is cosine's
    assert build_scheduler(opt, name="cosine", restart_period=0) is not None


# -- the shared base class --------------------------------------------------------------------------------------
def _arniqa(**kw):
    from iqa_bench.methods.arniqa import ARNIQA

    return ARNIQA(BACKBONE, ARNIQA_DIST, OPT, **kw)


def test_to_plain_resolves_configs_and_keeps_the_rest():
    cfg = OmegaConf.create({"a": 2, "b": "${a}", "c": [1, "${a}"]})
    plain = to_plain(cfg)
    assert plain == {"a": 2, "b": 2, "c": [1, 2]} and type(plain) is dict and type(plain["c"]) is list
    lst = to_plain(cfg.c)
    assert lst == [1, 2] and type(lst) is list
    d = {"x": 1}
    assert to_plain(d) is d and to_plain(None) is None


def test_uint8_to_float():
    x = torch.tensor([0, 51, 255], dtype=torch.uint8)
    y = uint8_to_float(x)
    assert y.dtype == torch.float32 and y.tolist() == pytest.approx([0.0, 0.2, 1.0])


def test_base_defaults_features_and_checkpoint_class():
    m = _arniqa()
    assert m.seed == 0 and m.scheduler_cfg is None and m.optimizer_cfg == OPT
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    m.eval()
    f = m.features(x)
    torch.testing.assert_close(f, torch.nn.functional.normalize(m.backbone(x), dim=1))
    assert f.shape == (3, m.feature_dim) and m.feature_dim == m.backbone.feature_dim == 64
    ckpt = {}
    m.on_save_checkpoint(ckpt)
    assert ckpt == {"iqa_bench_method": "iqa_bench.methods.arniqa.ARNIQA"}
    assert PretrainMethod(BACKBONE, ARNIQA_DIST, OPT).seed == 0
    base = PretrainMethod(BACKBONE, ARNIQA_DIST, OPT, seed=5)
    assert base.sample_grid({}) is None and base.seed == 5 and base.sample_format == ""
    with pytest.raises(NotImplementedError):
        base.prepare_batch({}, torch.Generator())


class _FakeTrainer:
    def __init__(self, training: bool) -> None:
        self.training, self.global_step = training, 0


def test_step_generator_and_micro_batches_follow_the_global_step():
    m = _arniqa(seed=7)
    trainer = _FakeTrainer(training=True)
    m._trainer = trainer
    seen = []
    m.prepare_batch = lambda batch, generator: seen.append(generator.initial_seed()) or ("prepared", batch)
    for step in (0, 0, 0, 1, 1, 4):
        trainer.global_step = step
        assert m.on_after_batch_transfer("raw", 0) == ("prepared", "raw")
    micro = [0, 1, 2, 0, 1, 0]
    assert seen == [mix_seed(7, s, k, 0) for s, k in zip((0, 0, 0, 1, 1, 4), micro)]
    assert len(set(seen)) == 6
    g = m.step_generator(torch.device("cpu"), 3)
    assert g.initial_seed() == mix_seed(7, 4, 3, 0) and g.device.type == "cpu"
    assert m.step_generator(torch.device("cpu")).initial_seed() == mix_seed(7, 4, 0, 0)
    trainer.training = False  # validation / prediction batches are left as they are
    assert m.on_after_batch_transfer("raw", 0) == "raw" and len(seen) == 6
    m._trainer = None
    assert m.on_after_batch_transfer("raw", 0) == "raw"


def test_base_configure_optimizers_trains_only_trainable_parameters():
    m = _arniqa()
    frozen = next(m.backbone.parameters())
    frozen.requires_grad_(False)
    opt = m.configure_optimizers()
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["lr"] == 1e-3
    m.optimizer_cfg = {"name": "sgd", "lr": 0.05, "momentum": 0.5}  # the method's optimiser config is used
    sgd = m.configure_optimizers()
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["lr"] == 0.05
    assert sgd.param_groups[0]["momentum"] == 0.5
    trained = {id(p) for g in opt.param_groups for p in g["params"]}
    assert id(frozen) not in trained
    assert trained == {id(p) for p in m.parameters() if p.requires_grad}
    m.scheduler_cfg = {"name": "cosine", "total_steps": 4, "min_lr_factor": 0.5}
    got = m.configure_optimizers()
    assert set(got) == {"optimizer", "lr_scheduler"} and got["lr_scheduler"]["interval"] == "step"
    sched = got["lr_scheduler"]["scheduler"]
    assert sched.optimizer is got["optimizer"] and sched.lr_lambdas[0](4) == pytest.approx(0.5)
    m.scheduler_cfg = {"name": "none"}
    assert isinstance(m.configure_optimizers(), torch.optim.SGD)


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


LADDER = {"_target_": "iqa_bench.distortions.RankIQALadder", "setting": "live"}


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


# -- Re-IQA ---------------------------------------------------------------------------------------------------
def _reiqa(**kw):
    from iqa_bench.methods.reiqa import ReIQA

    args = {"queue_size": 40, "n_aug": 2, "projector_hidden_dim": 16, "projector_out_dim": 8}
    args.update(kw)
    return ReIQA(BACKBONE, ARNIQA_DIST, OPT, None, 3, **args)


def _regions(n=2, patch=16, seed=1):
    from iqa_bench.data.pretrain import reiqa_region_size

    g = torch.Generator().manual_seed(seed)
    r = reiqa_region_size(patch)
    return {k: torch.randint(0, 256, (n, 3, r, r), generator=g, dtype=torch.uint8) for k in ("full", "half")}


def test_patch_size_of_region_inverts_the_region_size():
    from iqa_bench.data.pretrain import reiqa_region_size
    from iqa_bench.methods.reiqa import patch_size_of_region

    for p in range(1, 300):
        assert patch_size_of_region(reiqa_region_size(p)) == p
    with pytest.raises(ValueError, match=r"^5 is not a Re-IQA region size$"):
        patch_size_of_region(5)


def test_overlap_offsets_transpose():
    from iqa_bench.methods.reiqa import overlap_offsets

    cpu = torch.device("cpu")
    plain = overlap_offsets(300, 40, torch.Generator().manual_seed(0), cpu)
    assert plain.dtype == torch.long and plain.shape == (300, 2)
    assert bool((plain[:, 0] >= 28).all()) and bool((plain[:, 0] < 36).all())  # y in [0.7P, 0.9P)
    assert int(plain.max()) <= 36
    flipped = overlap_offsets(300, 40, torch.Generator().manual_seed(0), cpu, transpose_prob=1.0)
    assert torch.equal(flipped, plain.flip(1))
    half = overlap_offsets(300, 40, torch.Generator().manual_seed(0), cpu, transpose_prob=0.5)
    swapped = (half != plain).any(dim=1)
    assert torch.equal(half[swapped], plain[swapped].flip(1)) and torch.equal(half[~swapped], plain[~swapped])
    assert 0.35 < swapped.float().mean() < 0.65
    # x starts at 0 (the lower bound is clamped at 0, not 1), also where the upper bound is far from 0
    assert bool(((plain[:, 1] == 0) & (plain[:, 0] <= 32)).any())
    torch.manual_seed(123)  # every draw comes from the given generator, none from the global one
    again = overlap_offsets(300, 40, torch.Generator().manual_seed(0), cpu, transpose_prob=0.5)
    assert torch.equal(again, half)


def test_reiqa_defaults_and_hyperparameters():
    from iqa_bench.losses.infonce_queue import KeyQueue
    from iqa_bench.methods.reiqa import ReIQA

    m = ReIQA(BACKBONE, ARNIQA_DIST, OPT, n_aug=1)
    assert (m.temperature, m.momentum, m.n_aug, m.include_pristine, m.random_swap) == (
        0.2,
        0.999,
        1,
        True,
        True,
    )
    assert (m.offset_transpose_prob, m.shuffle_bn_groups, m.intra_image_negatives) == (0.0, 1, False)
    assert m.queue.queue.shape == (65536, 128) and m.content is None and not m.chunk_sampler
    assert m.projector[0].out_features == 64 and m.projector[2].out_features == 128  # hidden = backbone dim
    hp = dict(m.hparams)
    assert hp["temperature"] == 0.2 and hp["queue_size"] == 65536 and hp["momentum"] == 0.999
    assert hp["n_aug"] == 1 and hp["include_pristine"] is True and hp["random_swap"] is True
    assert (
        hp["offset_transpose_prob"] == 0.0 and hp["shuffle_bn_groups"] == 1 and hp["content_encoder"] is None
    )
    assert hp["intra_image_negatives"] is False and hp["projector_hidden_dim"] is None
    assert hp["projector_out_dim"] == 128 and hp["seed"] == 0 and hp["distortion"] == ARNIQA_DIST
    assert hp["backbone"] == BACKBONE and hp["optimizer"] == OPT and hp["scheduler"] is None
    sched = {"name": "cosine", "total_steps": 3}
    with_sched = ReIQA(BACKBONE, ARNIQA_DIST, OPT, sched, n_aug=1, queue_size=4)
    assert with_sched.scheduler_cfg == sched and with_sched.hparams["scheduler"] == sched
    s = _reiqa(
        temperature=0.3,
        momentum=0.5,
        include_pristine=False,
        random_swap=False,
        shuffle_bn_groups=2,
        offset_transpose_prob=0.25,
        intra_image_negatives=True,
    )
    assert (s.temperature, s.momentum, s.include_pristine, s.random_swap) == (0.3, 0.5, False, False)
    assert (s.shuffle_bn_groups, s.offset_transpose_prob, s.intra_image_negatives) == (2, 0.25, True)
    assert s.hparams["queue_size"] == 40 and s.hparams["projector_hidden_dim"] == 16
    assert torch.equal(s.queue.queue, KeyQueue(40, 8, seed=3).queue)  # seeded by the run seed
    assert not torch.equal(s.queue.queue, KeyQueue(40, 8, seed=0).queue)
    for online, key in s.momentum_pairs:  # the key encoder starts as a frozen copy
        for po, pk in zip(online.parameters(), key.parameters()):
            assert torch.equal(po, pk) and po is not pk and not pk.requires_grad and po.requires_grad
    assert [(a is s.backbone, b is s.key_backbone) for a, b in s.momentum_pairs][0] == (True, True)
    assert s.momentum_pairs[1] == (s.projector, s.key_projector)


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"temperature": 0.0}, r"method\.temperature must be > 0, got 0\.0"),
        ({"queue_size": 0}, r"method\.queue_size must be >= 1, got 0"),
        ({"momentum": 1.0}, r"method\.momentum must be in \[0, 1\), got 1\.0"),
        ({"momentum": -0.1}, r"method\.momentum must be in \[0, 1\)"),
        ({"n_aug": -1}, r"method\.n_aug must be null or >= 0 \(>= 1 with include_pristine=false\), got -1"),
        ({"n_aug": 0, "include_pristine": False}, r"method\.n_aug must be null or >= 0"),
        ({"offset_transpose_prob": 1.5}, r"method\.offset_transpose_prob must be in \[0, 1\], got 1\.5"),
        ({"offset_transpose_prob": -0.5}, r"method\.offset_transpose_prob must be in \[0, 1\]"),
        ({"shuffle_bn_groups": 0}, r"method\.shuffle_bn_groups must be >= 1, got 0"),
        ({"n_aug": None}, r"^method\.n_aug must be set when the distortion sampler is not distortion=reiqa$"),
    ],
)
def test_reiqa_checks(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        _reiqa(**kw)


def test_reiqa_check_boundaries_and_samplers():
    from iqa_bench.methods.reiqa import ReIQA

    ok = _reiqa(queue_size=1, momentum=0.0, n_aug=0, offset_transpose_prob=1.0, shuffle_bn_groups=1)
    assert ok.queue.size == 1 and ok.momentum == 0.0 and ok.n_aug == 0
    assert _reiqa(n_aug=1, include_pristine=False).n_aug == 1
    assert _reiqa(offset_transpose_prob=0.0).offset_transpose_prob == 0.0
    with pytest.raises(
        ConfigError,
        match=r"method ReIQA needs distortion=reiqa \(ReIQASampler\) or a plan sampler .*got RankIQALadder",
    ):
        ReIQA(BACKBONE, LADDER, OPT, n_aug=1)
    chunk = {
        "_target_": "iqa_bench.distortions.ReIQASampler",
        "n_aug": 3,
        "names": ["imdarken", "imbrighten", "immeanshift"],
    }
    assert ReIQA(BACKBONE, chunk, OPT, n_aug=3).n_aug == 3
    with pytest.raises(ConfigError, match=r"^method\.n_aug=4 exceeds distortion\.n_aug=3$"):
        ReIQA(BACKBONE, chunk, OPT, n_aug=4)
    msg = (
        "method.content_encoder.weights: set it to the content encoder's weights file (an ImageNet MoCo-v2 "
        "ResNet-50 checkpoint), or drop the content encoder with method.content_encoder=null"
    )
    with pytest.raises(ConfigError) as err:
        _reiqa(content_encoder={"name": "tiny", "weights": "???"})
    assert str(err.value) == msg
    with pytest.raises(ConfigError, match=r"method\.content_encoder\.weights: set it"):
        _reiqa(content_encoder={"name": "tiny", "weights": ""})
    c = _reiqa(content_encoder=OmegaConf.create({"name": "tiny", "widths": [4, 4, 4, 8]}))
    assert (
        c.content is not None
        and not c.content.training
        and c.hparams["content_encoder"]["widths"] == [4, 4, 4, 8]
    )
    assert all(not p.requires_grad for p in c.content.parameters()) and c.feature_dim == 64 + 8


def test_reiqa_chunk_plan_versions():
    from iqa_bench.methods.reiqa import ReIQA

    two_steps = dict(ARNIQA_DIST, max_distortions=2, names=["brighten", "darken", "jpeg"])
    m = ReIQA(BACKBONE, two_steps, OPT, n_aug=3, queue_size=4)
    plan = m.chunk_plan(2, torch.Generator().manual_seed(5), torch.device("cpu"))
    drawn = m.sampler.sample(6, generator=torch.Generator().manual_seed(5), device=torch.device("cpu"))
    types, levels = plan.type_ids.view(2, 4, -1), plan.levels.view(2, 4, -1)
    assert plan.type_ids.dtype == torch.long and types.shape[-1] == drawn.type_ids.shape[-1]
    assert bool((types[:, 0] == -1).all()) and bool((levels[:, 0] == 0).all())  # version 0 pristine
    assert torch.equal(types[:, 1:], drawn.type_ids.view(2, 3, -1))
    assert torch.equal(levels[:, 1:], drawn.levels.view(2, 3, -1))
    assert types.shape[-1] == 2
    np_ = ReIQA(BACKBONE, two_steps, OPT, n_aug=3, include_pristine=False, queue_size=4).chunk_plan(
        2, torch.Generator().manual_seed(5), torch.device("cpu")
    )
    assert torch.equal(np_.type_ids, drawn.type_ids) and torch.equal(np_.levels, drawn.levels)
    only = _reiqa(n_aug=0).chunk_plan(3, torch.Generator(), torch.device("cpu"))
    assert only.type_ids.tolist() == [[-1]] * 3 and only.levels.tolist() == [[0]] * 3
    assert only.type_ids.dtype == torch.long


def test_reiqa_batch_versions_scales_and_swaps():
    from iqa_bench.methods.reiqa import patch_size_of_region

    m = _reiqa(n_aug=1, random_swap=True)
    batch = _regions(n=2, patch=16)
    g = torch.Generator().manual_seed(0)
    out = m.prepare_batch(batch, g)
    n, v, p = 2, 2, 16
    assert patch_size_of_region(batch["full"].shape[-1]) == p
    assert out["query"].shape == out["key"].shape == (2 * n * v, 3, p, p)
    assert out["offsets"].shape == (2 * n * v, 2)
    assert torch.equal(out["offsets"][0::2], out["offsets"][1::2])  # one geometry per (scale, image)
    regions = torch.cat([batch["full"], batch["half"]]).float() / 255
    firsts, swaps = [], []
    for row in range(2 * n * v):
        y, x = out["offsets"][row].tolist()
        src = regions[row // v]
        p1, p2 = src[:, :p, :p], src[:, y : y + p, x : x + p]
        if row % v == 0:  # the pristine version: the region itself
            q, k = out["query"][row], out["key"][row]
            if torch.equal(q, p1):
                assert torch.equal(k, p2)
                firsts.append(row)
            else:
                assert torch.equal(q, p2) and torch.equal(k, p1)
                swaps.append(row)
    assert firsts and swaps  # both roles occur
    fixed = _reiqa(n_aug=1, random_swap=False).prepare_batch(batch, torch.Generator().manual_seed(0))
    for row in range(0, 2 * n * v, v):
        y, x = fixed["offsets"][row].tolist()
        assert torch.equal(fixed["query"][row], regions[row // v][:, :p, :p])
        assert torch.equal(fixed["key"][row], regions[row // v][:, y : y + p, x : x + p])
    assert fixed["query"].is_contiguous()
    t = _reiqa(n_aug=1, random_swap=False, offset_transpose_prob=1.0).prepare_batch(
        batch, torch.Generator().manual_seed(0)
    )
    assert torch.equal(t["offsets"], fixed["offsets"].flip(1))


def test_reiqa_chunk_sampler_without_pristine():
    from iqa_bench.methods.reiqa import ReIQA

    chunk = {
        "_target_": "iqa_bench.distortions.ReIQASampler",
        "n_aug": 3,
        "names": ["imdarken", "imbrighten", "immeanshift"],
    }
    m = ReIQA(BACKBONE, chunk, OPT, n_aug=2, include_pristine=False, random_swap=False, queue_size=8)
    batch = _regions(n=2, patch=16)
    full, half = batch["full"].float() / 255, batch["half"].float() / 255
    regions, plan = m.distorted_chunks(full, half, torch.Generator().manual_seed(0))
    assert regions.shape == (2 * 2 * 2, 3, 31, 31) and plan.type_ids.shape == (4, 2)
    torch.testing.assert_close(plan.type_ids[:2], plan.type_ids[2:])  # the same distortions at both scales
    m.include_pristine = True  # the same draws with the pristine version kept: it is dropped, nothing else
    kept, plan_kept = m.distorted_chunks(full, half, torch.Generator().manual_seed(0))
    assert torch.equal(plan_kept.type_ids, plan.type_ids)
    kept = kept.view(4, 3, 3, 31, 31)
    assert torch.equal(kept[:, 1:].reshape(8, 3, 31, 31), regions)
    assert torch.equal(kept[:, 0], torch.cat([full, half]))


def test_reiqa_key_encoder_shuffle_groups_keep_the_row_order():
    m = _reiqa(shuffle_bn_groups=3).eval()
    x = torch.rand(7, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    want = m.key_projector(m.key_backbone(x))
    torch.manual_seed(0)
    torch.testing.assert_close(m.embed_key(x), want, rtol=1e-5, atol=1e-6)
    m.shuffle_bn_groups = 50  # more groups than rows: one row per group
    torch.testing.assert_close(m.embed_key(x), want, rtol=1e-5, atol=1e-6)
    m.train()  # batch statistics: the groups change the keys
    m.shuffle_bn_groups = 1
    one = m.embed_key(x)
    torch.testing.assert_close(one, m.key_projector(m.key_backbone(x)))
    m.shuffle_bn_groups = 2
    assert not torch.allclose(m.embed_key(x), one, atol=1e-4)
    torch.testing.assert_close(m.embed_query(x), m.projector(m.backbone(x)))


def test_reiqa_step_loss_queue_and_logs():
    from iqa_bench.losses.infonce_queue import infonce_queue

    for intra in (False, True):
        m = _reiqa(temperature=0.35, intra_image_negatives=intra).eval()
        logged = _capture_logs(m)
        batch = m.prepare_batch(_regions(n=2, patch=16), torch.Generator().manual_seed(0))
        queue = m.queue.queue.clone()
        loss = m.training_step(batch, 0)
        with torch.no_grad():
            q, k = m.embed_query(batch["query"]), m.embed_key(batch["key"])
        extra = m.intra_negatives(k) if intra else None
        want, acc = infonce_queue(q, k, queue, 0.35, extra)
        torch.testing.assert_close(loss, want)
        assert abs(infonce_queue(q, k, queue, 0.2, extra)[0].item() - loss.item()) > 1e-4
        if intra:
            assert abs(infonce_queue(q, k, queue, 0.35)[0].item() - loss.item()) > 1e-5
        torch.testing.assert_close(m.queue.queue[:12], torch.nn.functional.normalize(k, dim=1))
        torch.testing.assert_close(m.queue.queue[12:], queue[12:])
        assert int(m.queue.ptr) == 12
        assert logged["train/loss"] == (loss, {"prog_bar": True, "batch_size": 12})
        assert logged["train/acc"][0].item() == acc.item() and logged["train/acc"][1] == {"batch_size": 12}


def test_reiqa_intra_negatives_per_version():
    m = _reiqa(n_aug=2, include_pristine=False)  # V = 2
    k = torch.arange(8, dtype=torch.float32)[:, None].repeat(1, 3)
    assert m.intra_negatives(k)[:, 0, 0].tolist() == [1.0, 0.0, 3.0, 2.0, 5.0, 4.0, 7.0, 6.0]
    assert _reiqa(n_aug=1, include_pristine=False).intra_negatives(k) is None
    assert _reiqa(n_aug=1).intra_negatives(k).shape == (8, 1, 3)


def test_reiqa_ema_runs_once_per_optimiser_step():
    m = _reiqa(momentum=0.75)
    for p in m.backbone.parameters():
        p.data.add_(1.0)
    key0 = [p.clone() for p in m.key_backbone.parameters()]
    trainer = _FakeTrainer(training=True)
    m._trainer = trainer
    m.on_train_batch_end(None, None, 0)  # step 0: no optimiser step yet
    assert all(torch.equal(a, b) for a, b in zip(key0, m.key_backbone.parameters()))
    trainer.global_step = 1
    m.on_train_batch_end(None, None, 0)
    m.on_train_batch_end(None, None, 1)  # an accumulation micro-batch of the same step: no second update
    for a, b, o in zip(key0, m.key_backbone.parameters(), m.backbone.parameters()):
        torch.testing.assert_close(b, 0.75 * a + 0.25 * o.detach())
    head = [p.clone() for p in m.key_projector.parameters()]
    m.projector[0].weight.data.add_(2.0)
    trainer.global_step = 2
    m.on_train_batch_end(None, None, 0)
    torch.testing.assert_close(
        m.key_projector[0].weight, 0.75 * head[0] + 0.25 * m.projector[0].weight.detach()
    )


def test_reiqa_features_content_then_quality(tmp_path):
    m = _reiqa(content_encoder={"name": "tiny", "widths": [4, 4, 4, 8]}).eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    norm = torch.nn.functional.normalize
    want = norm(torch.cat([norm(m.content(x), dim=1), norm(m.backbone(x), dim=1)], dim=1), dim=1)
    torch.testing.assert_close(m.features(x), want)
    m.train()
    assert m.backbone.training and not m.content.training and m.train(False) is m and not m.backbone.training
    plain = _reiqa().eval()
    torch.testing.assert_close(plain.features(x), norm(plain.backbone(x), dim=1))


# -- ARNIQA -----------------------------------------------------------------------------------------------------
def test_arniqa_defaults_embedding_and_captions():
    from iqa_bench.distortions import DistortionPlan, names

    m = _arniqa()
    assert m.temperature == 0.1 and m.hparams["temperature"] == 0.1
    assert m.projector[0].in_features == 64 and m.projector[0].out_features == 64
    assert m.projector[2].out_features == 128 and m.hparams["projector_out_dim"] == 128
    assert m.hparams["projector_hidden_dim"] is None and m.hparams["distortion"] == ARNIQA_DIST
    assert m.hparams["optimizer"] == OPT and m.hparams["seed"] == 0 and m.hparams["scheduler"] is None
    assert m.hparams["backbone"] == BACKBONE
    sched = {"name": "cosine", "total_steps": 3}
    with_sched = _arniqa(scheduler=sched)
    assert with_sched.scheduler_cfg == sched and with_sched.hparams["scheduler"] == sched
    s = _arniqa(projector_hidden_dim=12, projector_out_dim=5, temperature=0.5, seed=4)
    assert s.projector[0].out_features == 12 and s.projector[2].out_features == 5 and s.temperature == 0.5
    assert s.hparams["projector_hidden_dim"] == 12 and s.hparams["seed"] == 4
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    s.eval()
    torch.testing.assert_close(s.embed(x), s.projector(torch.nn.functional.normalize(s.backbone(x), dim=1)))
    all_names = names()
    j, b = all_names.index("jpeg"), all_names.index("gaublur")
    plan = DistortionPlan(torch.tensor([[-1, -1], [j, -1], [b, j]]), torch.tensor([[0, 0], [2, 0], [3, 1]]))
    views = torch.rand(3, 3, 8, 8)
    grid, captions = m.sample_grid({"plan": plan, "a_full": views})
    assert grid is views and captions == ["pristine", "jpeg@2", "gaublur@3 + jpeg@1"]


def test_arniqa_step_logs_its_batch_size():
    m = _arniqa().eval()
    logged = {}
    m.log = lambda name, value, **kw: logged.__setitem__(name, kw)
    views = {
        k: torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(i))
        for i, k in enumerate(("a_full", "a_half", "b_full", "b_half"))
    }
    m.training_step(views, 0)
    assert logged == {"train/loss": {"prog_bar": True, "batch_size": 3}}


# -- baselines --------------------------------------------------------------------------------------------------
def test_init_label():
    from iqa_bench.methods.baselines import IMAGENET, RANDOM, WEIGHTS, init_label

    assert (RANDOM, IMAGENET, WEIGHTS) == ("init=random", "init=imagenet", "init=weights")
    assert init_label({"weights": "/w.pt", "pretrained": True}) == WEIGHTS
    assert init_label({"weights": None, "pretrained": True}) == IMAGENET
    assert init_label({"weights": "", "pretrained": False}) == RANDOM
    assert init_label({}) == RANDOM


def test_init_baselines_random_build_is_seeded_and_leaves_the_rng_alone():
    from iqa_bench.methods.baselines import init_baselines

    cfg = OmegaConf.create(
        {
            "seed": 11,
            "backbone": {"name": "tiny", "pretrained": False, "weights": "/some/file.pt"},
            "evaluator": {},
            "method": {"x": 1},
        }
    )
    method = _arniqa().train()
    built = []

    def build(c):
        built.append((c.backbone.pretrained, c.backbone.weights, torch.rand(1).item()))
        return _arniqa().train()

    torch.manual_seed(0)
    before = torch.rand(1).item()
    torch.manual_seed(0)
    base = init_baselines(cfg, method, build=build)
    assert torch.rand(1).item() == before  # the training run draws the same numbers
    assert list(base) == ["init=weights", "init=random"]
    torch.manual_seed(11)
    assert built == [(False, None, torch.rand(1).item())]  # under the run seed, without weights
    assert cfg.backbone.weights == "/some/file.pt"  # the caller's config is untouched
    assert not base["init=weights"].training and not base["init=random"].training
    assert base["init=weights"] is not method and method.training and method.backbone.training  # a deep copy
    assert base["init=weights"].backbone is not method.backbone
    cfg.seed = None
    del cfg["seed"]
    built.clear()
    init_baselines(cfg, method, build=build)
    torch.manual_seed(0)
    assert built[0][2] == torch.rand(1).item()  # no seed in the config: 0
    cfg.evaluator.baseline_random_init = True
    assert list(init_baselines(cfg, method, build=build)) == ["init=weights", "init=random"]


def test_reiqa_batches_draw_only_from_the_step_generator():
    from iqa_bench.methods.reiqa import ReIQA

    chunk = {"_target_": "iqa_bench.distortions.ReIQASampler", "n_aug": 2}
    chunk["names"] = ["imdarken", "imbrighten", "imnoisegauss"]
    noisy = dict(ARNIQA_DIST, names=["whitenoise"])
    for m in (
        ReIQA(BACKBONE, noisy, OPT, n_aug=2, queue_size=8, offset_transpose_prob=0.5),
        ReIQA(BACKBONE, chunk, OPT, queue_size=8, offset_transpose_prob=0.5),
        _reiqa(n_aug=0),
    ):
        batch = _regions(n=3, patch=16)
        torch.manual_seed(0)
        first = m.prepare_batch(batch, torch.Generator().manual_seed(4))
        torch.manual_seed(1)
        again = m.prepare_batch(batch, torch.Generator().manual_seed(4))
        for key in ("query", "key", "offsets"):
            assert torch.equal(first[key], again[key]), key
        other = m.prepare_batch(batch, torch.Generator().manual_seed(5))
        assert not torch.equal(first["query"], other["query"])
