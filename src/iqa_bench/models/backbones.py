"""Backbones: timm models (pretrained=false by default) and `tiny`, a small CNN for CPU runs and tests.

A `Backbone` takes float images in [0, 1] `(B, 3, H, W)` (any H, W ≥ 16), applies ImageNet normalisation inside,
and returns globally average-pooled features `(B, feature_dim)`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from iqa_bench.errors import ConfigError, UserError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class TinyCNN(nn.Module):
    """A 4-stage CNN (stride 16 overall), ~0.3 M parameters with the default widths.

    `forward_stages(x)` returns the feature map of every stage (for multi-level methods); `forward(x)` the pooled
    last stage `(B, widths[-1])`.
    """

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        self.widths = tuple(int(w) for w in widths)
        stages = []
        cin = 3
        for i, w in enumerate(self.widths):
            blocks = [_conv_bn(cin, w, 2)] + ([_conv_bn(w, w, 1)] if i > 0 else [])
            stages.append(nn.Sequential(*blocks))
            cin = w
        self.stages = nn.ModuleList(stages)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_stages(x)[-1].mean(dim=(2, 3))


class Backbone(nn.Module):
    """Feature extractor: ImageNet normalisation, then `tiny` or any timm model without its classifier.

    Args:
        name: "tiny" or a timm model name (e.g. "resnet50", "resnet18", "vgg16").
        pretrained: ask timm for its pretrained weights (needs the network or a populated HF cache).
        weights: path of a local state dict (`.safetensors`, `.pt`/`.pth` read with `weights_only=True`).
        widths: stage widths of `tiny` (None = its default; ignored for timm models).
        channels_last: use channels_last memory format (faster on GPUs).
    """

    def __init__(
        self,
        name: str = "tiny",
        pretrained: bool = False,
        weights: str | None = None,
        widths: tuple[int, ...] | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.name = name
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if name == "tiny":
            if pretrained:
                raise ConfigError("backbone.pretrained: the 'tiny' backbone has no pretrained weights")
            self.body: nn.Module = TinyCNN(tuple(widths)) if widths else TinyCNN()
            self.feature_dim = self.body.widths[-1]
        else:
            self.body = _create_timm(name, pretrained)
            self.feature_dim = int(self.body.num_features)
        if weights:
            load_local_weights(self.body, weights)
        self.channels_last = channels_last
        if channels_last:
            self.body = self.body.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x`: float `(B, 3, H, W)` in [0, 1] -> pooled features `(B, feature_dim)`."""
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.body(x)


def _create_timm(name: str, pretrained: bool) -> nn.Module:
    import timm

    if not timm.is_model(name):
        raise ConfigError(f"backbone.name: unknown model {name!r} (use 'tiny' or a timm model name)")
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=0)
    except Exception as exc:  # network/HF-hub failures surface as many exception types
        if not pretrained:
            raise
        raise UserError(
            f"backbone.pretrained=true: could not obtain pretrained weights for {name!r} "
            f"({type(exc).__name__}); this machine is probably offline. Download them where you have a network, "
            f"then run with backbone.pretrained=false backbone.weights=/path/to/weights.safetensors"
        ) from None


def load_local_weights(module: nn.Module, path: str | Path) -> None:
    """Load a local state dict into `module` safely (safetensors, or `torch.load(weights_only=True)`).

    Keys with a leading 'backbone.'/'body.'/'module.' prefix are accepted; a classifier head ('fc.', 'head.',
    'classifier.') is ignored. Missing or unexpected keys raise `UserError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"backbone.weights: file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"backbone.weights: cannot read {path} ({type(exc).__name__}: {exc})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    cleaned = {}
    for k, v in state.items():
        for prefix in ("module.", "backbone.body.", "backbone.", "body."):
            if k.startswith(prefix):
                k = k[len(prefix) :]
        if k.split(".")[0] in ("fc", "head", "classifier"):
            continue
        cleaned[k] = v
    result = module.load_state_dict(cleaned, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise UserError(
            f"backbone.weights: {path} does not match the backbone (missing {list(result.missing_keys)[:5]}, "
            f"unexpected {list(result.unexpected_keys)[:5]})"
        )
    log.info("loaded backbone weights from %s", path)
