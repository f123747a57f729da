"""MLF: "Learning from Rankings with Multi-level Features for NR-IQA" — OUR DESIGN (the paper's details are not
public; the RankIQA/MLF papers and code).

RankIQA's batch, ladder and loss, but the score comes from several backbone levels: each tapped feature map is
pooled (avg, or avg ⊕ std), projected to `proj_dim` with LayerNorm, the levels are concatenated and an MLP
(hidden, ReLU, dropout) regresses the score. `method.stages` picks the levels (negative = from the deepest;
tiny: its 4 stages; timm: `feature_info`, e.g. ResNet [-3,-2,-1] = layer2..layer4, VGG-16 [2,3,4] =
conv3_3/conv4_3/conv5_3); `stages=[-1]` is the "last level only" ablation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from iqa_bench.errors import ConfigError
from iqa_bench.methods.rankiqa import RankIQA
from iqa_bench.models.heads import MultiLevelFusionHead

EVAL_FEATURES = ("backbone", "taps")


class MLF(RankIQA):
    """RankIQA with multi-level feature fusion.

    Args (beyond `RankIQA`'s; `head_hidden_dim`/`head_dropout` are the fusion MLP's):
        stages: tapped levels, e.g. [-3, -2, -1].
        proj_dim: per-level projection width (ours: 256).
        level_pool: "avg" or "avg_std".
        eval_features: what `features()` returns: "backbone" (the pooled backbone output, like every other
            method) or "taps" (per-level-normalised pooled taps, concatenated).
    """

    def build_head(
        self,
        head_hidden_dim: int | None,
        head_dropout: float,
        stages: list[int] | tuple[int, ...] = (-3, -2, -1),
        proj_dim: int = 256,
        level_pool: str = "avg",
        eval_features: str = "backbone",
    ) -> None:
        if eval_features not in EVAL_FEATURES:
            raise ConfigError(f"method.eval_features must be one of {EVAL_FEATURES}, got {eval_features!r}")
        if proj_dim < 1:
            raise ConfigError(f"method.proj_dim must be >= 1, got {proj_dim}")
        self.stages = list(self.backbone.resolve_levels(list(stages)))
        self.eval_features = eval_features
        try:
            self.head = MultiLevelFusionHead(
                self.backbone.level_channels(self.stages),
                proj_dim,
                head_hidden_dim or 512,
                head_dropout,
                level_pool,
            )
        except ValueError as exc:
            raise ConfigError(f"method.level_pool: {exc}") from None
        self.unreached = self._freeze_unreached()

    def _freeze_unreached(self) -> list[str]:
        """Freeze backbone parameters the fused score never reaches (layers after the deepest tap, e.g. VGG's
        fc6/fc7 with stages [2, 3, 4]): they cannot learn, and DDP would otherwise fail on unused parameters.
        Found with one dry backward pass in eval mode (no BN statistics change). Returns their names."""
        was_training = self.training
        self.eval()
        params = [(n, p) for n, p in self.backbone.named_parameters() if p.requires_grad]
        x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        grads = torch.autograd.grad(self.score(x).sum(), [p for _, p in params], allow_unused=True)
        self.train(was_training)
        frozen = [n for (n, p), g in zip(params, grads) if g is None]
        for (_n, p), g in zip(params, grads):
            if g is None:
                p.requires_grad_(False)
        return frozen

    def new_modules(self) -> list[nn.Module]:
        return [self.head]

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.forward_levels(x, self.stages))

    @property
    def feature_dim(self) -> int:
        if getattr(self, "eval_features", "backbone") == "taps":
            return sum(self.backbone.level_channels(self.stages))
        return self.backbone.feature_dim

    def features(self, images: torch.Tensor) -> torch.Tensor:
        if self.eval_features == "backbone":
            return super().features(images)
        maps = self.backbone.forward_levels(images, self.stages)
        pooled = [F.normalize(m.float().mean(dim=(2, 3)), dim=1) for m in maps]
        return F.normalize(torch.cat(pooled, dim=1), dim=1)
