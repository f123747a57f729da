"""Backbones: timm models (pretrained=false by default) and `tiny`, a small CNN for CPU runs and tests.

A `Backbone` takes float images in [0, 1] `(B, 3, H, W)` (any H, W ≥ 16), applies the model's own input
normalisation inside (a timm model's `pretrained_cfg` mean/std; ImageNet's for `tiny`), and returns globally
average-pooled features `(B, feature_dim)`.
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
    last stage `(B, widths[-1])` with `pool="last"`, or the concatenated average pools of every stage
    `(B, sum(widths))` with `pool="stages"` (a 4-stage CNN this small keeps most of its quality-sensitive signal
    in the early stages; pooling them all roughly doubles probe SRCC on the built-in evaluation set).
    """

    POOLS = ("last", "stages")

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128), pool: str = "last") -> None:
        super().__init__()
        if pool not in self.POOLS:
            raise ConfigError(f"backbone.pool: {pool!r} is not one of {list(self.POOLS)}")
        self.widths = tuple(int(w) for w in widths)
        self.pool = pool
        self.out_dim = sum(self.widths) if pool == "stages" else self.widths[-1]
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
        stages = self.forward_stages(x)
        if self.pool == "last":
            return stages[-1].mean(dim=(2, 3))
        return torch.cat([f.mean(dim=(2, 3)) for f in stages], dim=1)


class Backbone(nn.Module):
    """Feature extractor: input normalisation, then `tiny` or any timm model without its classifier.

    Args:
        name: "tiny" or a timm model name, optionally with its pretrained tag (e.g. "resnet50.tv_in1k" =
            torchvision's ImageNet V1 weights, "resnet18", "vgg16.tv_in1k").
        pretrained: ask timm for its pretrained weights (needs the network or a populated HF cache).
        drop_rate: timm's `drop_rate` (dropout in the model's pre-logits/head; VGG-16: 0.5 after fc6 and after fc7,
            as the Caffe VGG-16 RankIQA trains); active in training mode only. Must be 0 for `tiny`.
        weights: path of a local state dict (`.safetensors`, `.pt`/`.pth` read with `weights_only=True`).
        widths: stage widths of `tiny` (None = its default; ignored for timm models).
        pool: `tiny` only: "last" (pooled last stage) or "stages" (concatenated pools of every stage).
        channels_last: use channels_last memory format (faster on GPUs).
    """

    def __init__(
        self,
        name: str = "tiny",
        pretrained: bool = False,
        weights: str | None = None,
        widths: tuple[int, ...] | None = None,
        channels_last: bool = False,
        pool: str = "last",
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.name = name
        if not 0.0 <= float(drop_rate) < 1.0:
            raise ConfigError(f"backbone.drop_rate must be in [0, 1), got {drop_rate}")
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        if name == "tiny":
            if pretrained:
                raise ConfigError("backbone.pretrained: the 'tiny' backbone has no pretrained weights")
            if drop_rate:
                raise ConfigError("backbone.drop_rate: the 'tiny' backbone has no dropout")
            self.body: nn.Module = TinyCNN(tuple(widths), pool) if widths else TinyCNN(pool=pool)
            self.feature_dim = self.body.out_dim
        else:
            if pool != "last":
                raise ConfigError(f"backbone.pool: {pool!r} is only available for the 'tiny' backbone")
            self.body = _create_timm(name, pretrained, float(drop_rate))
            mean, std = normalisation_of(self.body)
            # pooled output size: head_hidden_size where timm keeps a pre-logits block (VGG: fc6/fc7 -> 4096)
            self.feature_dim = int(getattr(self.body, "head_hidden_size", None) or self.body.num_features)
        self.register_buffer(
            "mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        if weights:
            load_local_weights(self.body, weights)
        self.channels_last = channels_last
        if channels_last:
            self.body = self.body.to(memory_format=torch.channels_last)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x`: float `(B, 3, H, W)` in [0, 1] -> pooled features `(B, feature_dim)`."""
        return self.body(self._prepare(x))

    # -- multi-level taps (MLF) ------------------------------------------------------------------------------
    @property
    def level_channels_all(self) -> list[int]:
        """Channels of every tappable level, shallow to deep (tiny: its stages; timm: `feature_info`)."""
        if isinstance(self.body, TinyCNN):
            return list(self.body.widths)
        return [int(info["num_chs"]) for info in self.body.feature_info]

    def resolve_levels(self, indices: list[int] | tuple[int, ...]) -> list[int]:
        """Level indices (negative = from the deepest) -> sorted-as-given non-negative indices; `ConfigError` if
        one is out of range or repeated."""
        n = len(self.level_channels_all)
        out = []
        for i in indices:
            j = int(i) + n if int(i) < 0 else int(i)
            if not 0 <= j < n:
                raise ConfigError(
                    f"method.stages: level {i} is out of range for backbone {self.name!r} ({n} levels)"
                )
            out.append(j)
        if not out or len(set(out)) != len(out):
            raise ConfigError(
                f"method.stages must be a non-empty list of distinct levels, got {list(indices)}"
            )
        return out

    def level_channels(self, indices: list[int] | tuple[int, ...]) -> list[int]:
        """Channels of the tapped levels `indices`."""
        chans = self.level_channels_all
        return [chans[j] for j in self.resolve_levels(indices)]

    def forward_levels(self, x: torch.Tensor, indices: list[int] | tuple[int, ...]) -> list[torch.Tensor]:
        """Feature maps `(B, C_l, H_l, W_l)` of the levels `indices` (in the given order).

        tiny: `TinyCNN.forward_stages`; timm: `forward_intermediates` (timm >= 1.0), else forward hooks on the
        `feature_info` modules. `forward` is unaffected."""
        idx = self.resolve_levels(indices)
        x = self._prepare(x)
        if isinstance(self.body, TinyCNN):
            stages = self.body.forward_stages(x)
            return [stages[j] for j in idx]
        if hasattr(self.body, "forward_intermediates"):
            order = sorted(set(idx))
            maps = self.body.forward_intermediates(x, indices=order, intermediates_only=True)
            by_level = dict(zip(order, maps))
            return [by_level[j] for j in idx]
        return self._forward_levels_hooks(x, idx)

    def _forward_levels_hooks(self, x: torch.Tensor, idx: list[int]) -> list[torch.Tensor]:
        modules = dict(self.body.named_modules())
        names = [self.body.feature_info[j]["module"] for j in idx]
        captured: dict[str, torch.Tensor] = {}
        handles = [
            modules[n].register_forward_hook(lambda _m, _i, out, n=n: captured.__setitem__(n, out))
            for n in names
        ]
        try:
            self.body(x)
        finally:
            for h in handles:
                h.remove()
        return [captured[n] for n in names]


def normalisation_of(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per RGB channel that `model`'s weights expect (timm `pretrained_cfg`; ImageNet's if absent)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    mean, std = tuple(cfg.get("mean") or IMAGENET_MEAN), tuple(cfg.get("std") or IMAGENET_STD)
    if len(mean) != 3 or len(std) != 3:  # a grey-scale model: the same value for the 3 channels
        mean, std = (float(mean[0]),) * 3, (float(std[0]),) * 3
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def _create_timm(name: str, pretrained: bool, drop_rate: float = 0.0) -> nn.Module:
    import timm

    if not timm.is_model(name):
        raise ConfigError(f"backbone.name: unknown model {name!r} (use 'tiny' or a timm model name)")
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=0, drop_rate=drop_rate)
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

    Keys with a leading 'module.'/'backbone.'/'body.' prefix, or MoCo's 'encoder_q.'/'encoder.' (Re-IQA's released
    encoders, MoCo-v2 checkpoints), are accepted; a classifier head ('fc.', 'head.', 'classifier.') and MoCo's key
    encoder and queue are ignored. Missing or unexpected keys raise `UserError` naming the file.
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
    for key in ("state_dict", "model"):  # Lightning / MoCo / Re-IQA training checkpoints wrap the weights
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    cleaned = {}
    for k, v in state.items():
        for prefix in ("module.", "encoder_q.", "encoder.", "backbone.body.", "backbone.", "body."):
            if k.startswith(prefix):
                k = k[len(prefix) :]
        if k.split(".")[0] in ("fc", "head", "classifier", "encoder_k", "queue", "queue_ptr"):
            continue
        cleaned[k] = v
    result = module.load_state_dict(cleaned, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise UserError(
            f"backbone.weights: {path} does not match the backbone (missing {list(result.missing_keys)[:5]}, "
            f"unexpected {list(result.unexpected_keys)[:5]})"
        )
    log.info("loaded backbone weights from %s", path)
