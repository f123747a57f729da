"""Paper-setting experiments: Re-IQA's batch/epoch arithmetic, content encoder and whole-image evaluation, LARS,
RankIQA's rescaled margin and the fine-tuning evaluation, ARNIQA's data keys."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from iqa_bench.methods.optim import LARS, build_optimizer
from iqa_bench.methods.rankiqa import normalised_margin
from iqa_bench.models.backbones import Backbone, load_local_weights

PAPER_BATCH, PAPER_EPOCHS, PAPER_IMAGES = 630, 40, 740_000


def test_reiqa_paper_matches_the_papers_batch_epochs_and_evaluation(compose_cfg):
    cfg = compose_cfg(["experiment=reiqa_paper"])
    per_step = cfg.data.pretrain.batch_size * cfg.trainer.devices * cfg.trainer.accumulate_grad_batches
    assert per_step == PAPER_BATCH
    steps_per_epoch = PAPER_IMAGES / PAPER_BATCH
    assert abs(cfg.trainer.max_steps - PAPER_EPOCHS * steps_per_epoch) < 0.01 * cfg.trainer.max_steps
    assert abs(cfg.method.scheduler.warmup_steps - 5 * steps_per_epoch) <= 1
    assert cfg.method.optimizer.name == "lars" and cfg.method.optimizer.lr == 12.0
    assert cfg.method.content_encoder.name == "resnet50"
    assert OmegaConf.is_missing(cfg.method.content_encoder, "weights")  # the user must name the MoCo-v2 file
    assert cfg.evaluator.crop_size is None and list(cfg.evaluator.scales) == [1.0, 0.5]
    assert cfg.method.n_aug is None and cfg.distortion.n_aug == 11
    from iqa_bench.errors import ConfigError
    from iqa_bench.utils.instantiate import instantiate

    with pytest.raises(ConfigError, match="method.content_encoder.weights"):
        instantiate(compose_cfg(["experiment=reiqa_paper", "trainer=cpu"]).method)


def test_reiqa_features_are_content_then_quality_on_whole_images(compose_cfg, tmp_path):
    """With a content encoder (MoCo-style checkpoint), features = content ⊕ quality, and any image size works."""
    from iqa_bench.utils.instantiate import instantiate

    content = Backbone("tiny", widths=[4, 8, 8, 16]).eval()
    ckpt = {"state_dict": {f"module.encoder_q.{k}": v for k, v in content.body.state_dict().items()}}
    ckpt["state_dict"].update({f"module.encoder_k.{k}": v + 1 for k, v in content.body.state_dict().items()})
    ckpt["state_dict"]["module.queue"] = torch.zeros(4, 4)
    path = tmp_path / "moco.pth"
    torch.save(ckpt, path)
    cfg = compose_cfg(
        [
            "method=reiqa",
            "backbone.widths=[8,8,16,16]",
            f"+method.content_encoder={{name: tiny, widths: [4, 8, 8, 16], weights: {path}}}",
        ]
    )
    method = instantiate(cfg.method).eval()
    x = torch.rand(2, 3, 75, 101)  # a whole image, no crop
    f = method.features(x)
    assert f.shape == (2, content.feature_dim + method.backbone.feature_dim)
    want_content = nn.functional.normalize(content(x), dim=1)
    want_quality = nn.functional.normalize(method.backbone(x), dim=1)
    torch.testing.assert_close(f, nn.functional.normalize(torch.cat([want_content, want_quality], 1), dim=1))


def test_moco_checkpoint_loads_into_a_backbone(tmp_path):
    src = Backbone("tiny", widths=[4, 8])
    state = {"model": {f"module.encoder.{k}": v for k, v in src.body.state_dict().items()}}
    state["model"]["module.head.0.weight"] = torch.zeros(2, 2)
    torch.save(state, tmp_path / "reiqa.pth")
    dst = Backbone("tiny", widths=[4, 8])
    load_local_weights(dst.body, tmp_path / "reiqa.pth")
    for k, v in src.body.state_dict().items():
        torch.testing.assert_close(dst.body.state_dict()[k], v)


def _naive_lars_step(p: torch.Tensor, g: torch.Tensor, mu: torch.Tensor, lr, wd, m, eta) -> None:
    if p.ndim > 1:
        g = g + wd * p
        pn, gn = float(p.norm()), float(g.norm())
        g = g * (eta * pn / gn if pn > 0 and gn > 0 else 1.0)
    mu.mul_(m).add_(g)
    p.sub_(lr * mu)


def test_lars_matches_moco_v3_rule():
    torch.manual_seed(0)
    lin = nn.Linear(5, 3)
    opt = build_optimizer(lin.parameters(), name="lars", lr=2.0, weight_decay=0.1, momentum=0.9)
    assert isinstance(opt, LARS)
    ref = [p.detach().clone() for p in lin.parameters()]
    mus = [torch.zeros_like(p) for p in ref]
    for _ in range(3):
        opt.zero_grad()
        x = torch.randn(4, 5)
        lin(x).pow(2).sum().backward()
        grads = [p.grad.clone() for p in lin.parameters()]
        opt.step()
        for p, g, mu in zip(ref, grads, mus):
            _naive_lars_step(p, g, mu, 2.0, 0.1, 0.9, 0.001)
        for p, want in zip(lin.parameters(), ref):
            torch.testing.assert_close(p.detach(), want)


@pytest.mark.parametrize("experiment", ["rankiqa_live", "rankiqa_tid", "mlf_live"])
def test_rankiqa_margin_is_rescaled_for_normalised_inputs(compose_cfg, experiment):
    cfg = compose_cfg([f"experiment={experiment}", "backbone.pretrained=false", "trainer=cpu"])
    assert cfg.method.margin == pytest.approx(normalised_margin(10.0), abs=1e-4)
    # the fine-tuning protocol of the published numbers composes on top (whole network trained)
    ft = compose_cfg(
        [f"experiment={experiment}", "evaluator=finetune", "evaluator.freeze_backbone=false", "trainer=cpu"]
    )
    assert ft.evaluator._target_.endswith("FinetuneEvaluator") and ft.evaluator.freeze_backbone is False


def test_normalised_margin_is_the_raw_margin_of_a_homogeneous_network():
    """A bias-free ReLU scorer on raw 0–255 inputs with margin 10 ranks exactly like the same scorer on normalised
    inputs with `normalised_margin(10)` (the hinge is scaled by 255·std, the active pairs are the same)."""
    torch.manual_seed(0)
    std = (0.25, 0.25, 0.25)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 1, bias=False)
    )
    raw = torch.rand(6, 3, 8, 8) * 255
    normalised = raw / (255 * 0.25)  # mean 0 so that the map is purely multiplicative
    s_raw, s_norm = net(raw).squeeze(1), net(normalised).squeeze(1)
    hinge_raw = (10.0 - (s_raw[:, None] - s_raw[None])).clamp_min(0)
    hinge_norm = (normalised_margin(10.0, std) - (s_norm[:, None] - s_norm[None])).clamp_min(0)
    torch.testing.assert_close(hinge_raw, hinge_norm * 255 * 0.25, rtol=1e-4, atol=1e-3)


def test_arniqa_paper_names_existing_data_keys(compose_cfg):
    from iqa_bench.utils.resolvers import CONF_DIR

    text = (CONF_DIR / "experiment" / "arniqa_paper.yaml").read_text()
    assert "images.root" not in text
    cfg = compose_cfg(["experiment=arniqa_paper", "data/pretrain=kadis700", "trainer=cpu"])
    assert cfg.data.pretrain.images.root == cfg.data.pretrain.path
    assert cfg.data.pretrain.crop_size == 224
