"""RankIQA, stage 1: learning from rankings with an "efficient Siamese" network (Liu et al., ICCV 2017).

Batch of N crops -> a distortion ladder per crop (`distortion=rankiqa_live|rankiqa_tid`: one distortion type per
crop, levels 0 = pristine ... K-1 = strongest, drawn on the batch's device). One shared backbone + a scalar score
head (higher = better) scores all N·K images in one pass; the hinge `max(0, m − (s_better − s_worse))` is applied
to every ordered pair inside each ladder (never across ladders), summed and divided by the number of images
(the RankIQA/MLF papers and code). Stage 2 (fine-tuning on MOS) is the evaluator's job.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from iqa_bench.errors import ConfigError
from iqa_bench.losses.ranking import REDUCTIONS, ladder_ranking_hinge
from iqa_bench.methods.base import PretrainMethod, to_plain, uint8_to_float
from iqa_bench.methods.optim import build_optimizer, build_scheduler
from iqa_bench.models.heads import score_head


def normalised_margin(raw_margin: float = 10.0, std: tuple[float, ...] = (0.229, 0.224, 0.225)) -> float:
    """RankIQA's hinge margin (10, tuned for raw 0–255 inputs) in the units of normalised inputs.

    Normalised inputs are `(x/255 − mean)/std`, i.e. raw pixels divided by `255·std` (plus an offset). A ReLU
    network without biases is positively homogeneous, so its scores shrink by the same factor; the margin is
    rescaled by it: 10 / (255 · 0.226) ≈ 0.1735 with ImageNet's std. (Biases make this approximate.)"""
    return float(raw_margin) / (255.0 * sum(std) / len(std))


def independent_crops(views: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """`views (N, K, C, H, W)` -> an independent random `size × size` crop of every view, `(N, K, C, size, size)`."""
    n, k, c, h, w = views.shape
    if size > min(h, w):
        raise ConfigError(
            f"method.level_crop={size} is larger than the worker crop {h}x{w} (data.pretrain.crop_size)"
        )
    flat = views.reshape(n * k, c, h, w)
    top = torch.randint(0, h - size + 1, (n * k,), generator=generator, device=views.device)
    left = torch.randint(0, w - size + 1, (n * k,), generator=generator, device=views.device)
    ar = torch.arange(size, device=views.device)
    rows = (top[:, None] + ar)[:, :, None]
    cols = (left[:, None] + ar)[:, None, :]
    idx = torch.arange(n * k, device=views.device)[:, None, None]
    out = flat.permute(0, 2, 3, 1)[idx, rows, cols].permute(0, 3, 1, 2)
    return out.reshape(n, k, c, size, size).contiguous()


class RankIQA(PretrainMethod):
    """RankIQA ranking pretraining.

    Args (beyond `PretrainMethod`'s):
        margin: hinge margin on the raw score (paper: 10 for raw 0–255 inputs; ≈ 0.1735 for the normalised inputs
            used here, see `normalised_margin`; the paper experiments use the latter).
        reduction: "sum_over_batch" (paper: sum over pairs / number of images), "mean_over_pairs" or "sum".
        head_hidden_dim: None = linear score head on the pooled features (paper: VGG fc8_m, 4096 -> 1, on top of
            the fc6/fc7 that timm's VGG keeps in its body); an int adds a hidden layer.
        head_dropout: dropout before the score layer(s).
        head_lr_mult: learning-rate multiplier of the new (head) layers (paper: 10).
        level_crop: None = every level of a ladder shows the whole worker crop; an int c = each (crop, level) view
            gets its own independent random c×c crop of the distorted worker crop (the official data layer draws
            an independent 224 crop per image and level; use data.pretrain.crop_size > c).
    """

    sample_format = "ladder"

    def __init__(
        self,
        backbone: dict,
        distortion: dict,
        optimizer: dict,
        scheduler: dict | None = None,
        seed: int = 0,
        margin: float = 10.0,
        reduction: str = "sum_over_batch",
        head_hidden_dim: int | None = None,
        head_dropout: float = 0.0,
        head_lr_mult: float = 10.0,
        level_crop: int | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(backbone, distortion, optimizer, scheduler, seed)
        extra = {
            k: to_plain(v) for k, v in extra.items()
        }  # plain lists in the checkpoint (weights_only loads)
        if reduction not in REDUCTIONS:
            raise ConfigError(f"method.reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if margin <= 0:
            raise ConfigError(f"method.margin must be > 0, got {margin}")
        if head_lr_mult <= 0:
            raise ConfigError(f"method.head_lr_mult must be > 0, got {head_lr_mult}")
        if not callable(self.sampler) or not hasattr(self.sampler, "num_levels"):
            raise ConfigError(
                f"method {type(self).__name__} needs a distortion ladder (distortion=rankiqa_live or rankiqa_tid), "
                f"got {type(self.sampler).__name__}"
            )
        self.margin = float(margin)
        self.reduction = reduction
        self.head_lr_mult = float(head_lr_mult)
        if level_crop is not None and int(level_crop) < 16:
            raise ConfigError(f"method.level_crop must be null or >= 16, got {level_crop}")
        self.level_crop = int(level_crop) if level_crop is not None else None
        hp = {
            "backbone": self.backbone_cfg,
            "distortion": self.distortion_cfg,
            "optimizer": self.optimizer_cfg,
            "scheduler": self.scheduler_cfg,
            "seed": self.seed,
            "margin": self.margin,
            "reduction": reduction,
            "head_hidden_dim": head_hidden_dim,
            "head_dropout": head_dropout,
            "head_lr_mult": self.head_lr_mult,
            "level_crop": self.level_crop,
            **extra,
        }
        self.save_hyperparameters(hp)
        self.build_head(head_hidden_dim=head_hidden_dim, head_dropout=head_dropout, **extra)

    def build_head(self, head_hidden_dim: int | None, head_dropout: float, **extra: Any) -> None:
        if extra:
            raise TypeError(f"unexpected arguments: {sorted(extra)}")
        self.head = score_head(self.feature_dim, head_hidden_dim, head_dropout)

    def new_modules(self) -> list[nn.Module]:
        """Modules trained with `head_lr_mult` × lr."""
        return [self.head]

    # -- model ----------------------------------------------------------------------------------------------------
    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Images `(M, 3, H, W)` in [0, 1] -> quality scores `(M,)` (higher = better)."""
        return self.head(self.backbone(x)).squeeze(1)

    # -- data -----------------------------------------------------------------------------------------------------
    def prepare_batch(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, Any]:
        """uint8 {"image": (N,3,c,c)} -> {"views": float (N, K, 3, c, c) ladder (0 = pristine), "type_ids": (N,)}."""
        images = uint8_to_float(batch["image"])
        views, type_ids = self.sampler(images, generator)
        if self.level_crop is not None:
            views = independent_crops(views, self.level_crop, generator)
        return {"views": views, "type_ids": type_ids}

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        views = batch["views"]
        n, k = views.shape[:2]
        scores = self.score(views.flatten(0, 1)).float().view(n, k)
        loss = ladder_ranking_hinge(scores, self.margin, self.reduction)
        with torch.no_grad():
            upper = torch.ones(k, k, dtype=torch.bool, device=scores.device).triu(1)
            correct = (scores[:, :, None] > scores[:, None, :])[:, upper].float().mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log("train/pair_acc", correct, batch_size=n)
        return loss

    # -- optimisation -----------------------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        new_ids = {id(p) for m in self.new_modules() for p in m.parameters()}
        base = [p for p in self.parameters() if p.requires_grad and id(p) not in new_ids]
        new = [p for p in self.parameters() if p.requires_grad and id(p) in new_ids]
        lr = float(self.optimizer_cfg.get("lr", 1e-3))
        groups = [{"params": base}, {"params": new, "lr": lr * self.head_lr_mult}]
        optimizer = build_optimizer([g for g in groups if g["params"]], **self.optimizer_cfg)
        scheduler = build_scheduler(optimizer, **(self.scheduler_cfg or {"name": "none"}))
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
