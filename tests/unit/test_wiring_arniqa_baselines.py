"""ARNIQA's defaults and logged batch size, and the initialisation baselines (deep copies under the run seed)."""

from __future__ import annotations

import pytest
import torch
from _wiring import ARNIQA_DIST, BACKBONE, OPT, _arniqa
from omegaconf import OmegaConf

pytestmark = pytest.mark.filterwarnings(r"ignore:You are trying to `self.log\(\)`")


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
