"""Optimisers, learning-rate schedules and the shared base class of the methods: every argument the builders pass on,
the LARS update rule, the per-step generator (small CPU models, no trainer)."""

from __future__ import annotations

import math

import pytest
import torch
from _wiring import ARNIQA_DIST, BACKBONE, OPT, _arniqa, _FakeTrainer
from omegaconf import OmegaConf

from iqa_bench.data.sampling import mix_seed
from iqa_bench.errors import ConfigError
from iqa_bench.methods.base import PretrainMethod, to_plain, uint8_to_float
from iqa_bench.methods.optim import LARS, build_optimizer, build_scheduler, lr_factor

pytestmark = pytest.mark.filterwarnings(r"ignore:You are trying to `self.log\(\)`")


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
