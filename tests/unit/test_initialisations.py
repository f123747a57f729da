"""Initialisations as the papers used them: ARNIQA's torchvision V1 ResNet-50 tag, VGG-16 with dropout 0.5 after
fc6 and fc7, each timm model's own input normalisation, and baselines named for what they are."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from iqa_bench.models.backbones import IMAGENET_MEAN, Backbone
from iqa_bench.utils.instantiate import instantiate


def test_arniqa_paper_uses_torchvision_v1_resnet50(compose_cfg):
    cfg = compose_cfg(["experiment=arniqa_paper", "backbone.pretrained=false", "trainer=cpu"])
    assert cfg.backbone.name == "resnet50.tv_in1k"
    bb = Backbone(**{**cfg.backbone, "channels_last": False})
    assert bb.body.pretrained_cfg["tag"] == "tv_in1k"
    assert "resnet50-0676ba61" in bb.body.pretrained_cfg["url"]  # torchvision's IMAGENET1K_V1 file


@pytest.mark.parametrize("experiment", ["rankiqa_live", "rankiqa_tid", "mlf_live"])
def test_vgg16_experiments_ask_for_dropout(compose_cfg, experiment):
    cfg = compose_cfg([f"experiment={experiment}", "backbone.pretrained=false", "trainer=cpu"])
    assert cfg.backbone.name.split(".")[0] == "vgg16"
    assert cfg.backbone.drop_rate == 0.5


def test_vgg16_trains_with_dropout_after_fc6_and_fc7():
    bb = Backbone("vgg16.tv_in1k", drop_rate=0.5)
    body = bb.body
    assert [m.p for m in body.modules() if isinstance(m, nn.Dropout)] == [0.5, 0.5]
    assert body.pre_logits.drop.p == 0.5  # after fc6 (+ReLU)
    assert body.head.drop.p == 0.5  # after fc7 (+ReLU), before the removed fc8
    x = torch.rand(2, 3, 64, 64)
    bb.eval()
    with torch.no_grad():
        a, b = bb(x), bb(x)
        torch.testing.assert_close(a, b)  # no dropout in eval mode (frozen features)
        bb.train()
        c = bb(x)
    # ReLU zeroes ~half of fc7 in eval; dropout then zeroes about half of the rest (0.5 -> 0.75)
    assert (c == 0).float().mean() > (a == 0).float().mean() + 0.15


def test_each_timm_model_uses_its_own_normalisation():
    vit = Backbone("vit_tiny_patch16_224.augreg_in21k")  # pretrained_cfg mean/std = 0.5
    torch.testing.assert_close(vit.mean.flatten(), torch.full((3,), 0.5))
    torch.testing.assert_close(vit.std.flatten(), torch.full((3,), 0.5))
    r18 = Backbone("resnet18")
    torch.testing.assert_close(r18.mean.flatten(), torch.tensor(IMAGENET_MEAN))
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(vit._prepare(x), (x - 0.5) / 0.5)


def test_drop_rate_on_tiny_is_a_config_error():
    from iqa_bench.errors import ConfigError

    with pytest.raises(ConfigError, match="backbone.drop_rate"):
        Backbone("tiny", drop_rate=0.5)


def test_baselines_are_named_for_their_initialisation(compose_cfg):
    from iqa_bench.methods.baselines import init_baselines

    cfg = compose_cfg(["experiment=smoke"])
    method = instantiate(cfg.method)
    base = init_baselines(cfg, method)
    assert list(base) == ["init=random"]
    torch.testing.assert_close(  # a copy of the method before training
        base["init=random"].state_dict()["backbone.body.stages.0.0.0.weight"],
        method.state_dict()["backbone.body.stages.0.0.0.weight"],
    )

    cfg = compose_cfg(["experiment=smoke", "backbone=resnet18", "backbone.pretrained=true"])
    # pretend timm loaded weights (offline here): the method as built is the ImageNet initialisation
    cfg.backbone.pretrained = False
    method = instantiate(cfg.method)
    cfg.backbone.pretrained = True
    base = init_baselines(cfg, method, build=lambda c: instantiate(c.method))
    assert list(base) == ["init=imagenet", "init=random"]
    w = "backbone.body.conv1.weight"
    torch.testing.assert_close(base["init=imagenet"].state_dict()[w], method.state_dict()[w])
    assert not torch.equal(base["init=random"].state_dict()[w], method.state_dict()[w])
    assert base["init=random"].backbone_cfg["pretrained"] is False
    cfg.evaluator.baseline_random_init = False
    assert init_baselines(cfg, method) == {}
