"""Shared LightningModule of every pretraining method.

It owns the backbone, the distortion sampler, optimiser/scheduler construction from config, the per-step seeded
generator used for distortions, and the feature API used by the evaluator. A method subclass adds its heads,
`prepare_batch` (distort the uint8 crops on the batch's device) and `training_step` (its loss from `losses/`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from iqa_bench.data.sampling import mix_seed
from iqa_bench.losses.distributed import world_info
from iqa_bench.methods.optim import build_optimizer, build_scheduler
from iqa_bench.models.backbones import Backbone
from iqa_bench.utils.instantiate import instantiate


def to_plain(cfg: Any) -> Any:
    """DictConfig/ListConfig -> plain dict/list (resolved); anything else unchanged."""
    if isinstance(cfg, DictConfig) or OmegaConf.is_list(cfg):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


class PretrainMethod(L.LightningModule):
    """Base class. Subclasses set `sample_format` (which pretraining sample the datamodule must yield).

    Args:
        backbone: kwargs of `Backbone` (name, pretrained, weights, widths, channels_last).
        distortion: config of the distortion sampler (`_target_` + kwargs), instantiated with Hydra.
        optimizer: kwargs of `optim.build_optimizer` (name, lr, weight_decay, momentum, betas).
        scheduler: kwargs of `optim.build_scheduler` (name, total_steps, warmup_steps, ...) or None.
        seed: base seed of the per-step distortion generator.
    """

    sample_format: ClassVar[str] = ""

    def __init__(
        self,
        backbone: dict,
        distortion: dict,
        optimizer: dict,
        scheduler: dict | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.backbone_cfg = to_plain(backbone)
        self.distortion_cfg = to_plain(distortion)
        self.optimizer_cfg = to_plain(optimizer)
        self.scheduler_cfg = to_plain(scheduler)
        self.seed = int(seed)
        self.backbone = Backbone(**self.backbone_cfg)
        self.sampler = instantiate(self.distortion_cfg)

    # -- feature API (used by the evaluator for every method) -----------------------------------------------------
    @property
    def feature_dim(self) -> int:
        """Dimension D of `features`."""
        return self.backbone.feature_dim

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Frozen-evaluation features: float images `(B, 3, H, W)` in [0, 1] -> L2-normalised `(B, D)`."""
        return F.normalize(self.backbone(images).float(), dim=1)

    # -- distortions on the batch's device -----------------------------------------------------------------------
    def step_generator(self, device: torch.device, micro_batch: int = 0) -> torch.Generator:
        """A generator on `device` seeded by (seed, global_step, micro_batch, rank): distortions are reproducible, the
        micro-batches of one accumulated optimiser step draw different plans, noise and crops, and a resumed run
        draws exactly what an uninterrupted one would (checkpoints are written after complete optimiser steps, so a
        resumed run starts at micro-batch 0 of its step)."""
        rank, _ = world_info()
        return torch.Generator(device=device).manual_seed(
            mix_seed(self.seed, int(self.global_step), int(micro_batch), rank)
        )

    def micro_batch_index(self) -> int:
        """Index of the current training batch within its optimiser step (0 .. accumulate_grad_batches − 1):
        counts the batches seen since `global_step` last changed."""
        step = int(self.global_step)
        if step != getattr(self, "_micro_step", None):
            self._micro_step, self._micro = step, 0
        else:
            self._micro += 1
        return self._micro

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self._trainer is not None and self.trainer.training:
            batch = self.prepare_batch(batch, self.step_generator(self.device, self.micro_batch_index()))
        return batch

    def prepare_batch(self, batch: Any, generator: torch.Generator) -> Any:
        """Turn the uint8 batch into distorted float views (method-specific)."""
        raise NotImplementedError

    def sample_grid(self, batch: Any) -> tuple[torch.Tensor, list[str]] | None:
        """For logging: distorted training images `(K, 3, h, w)` in [0, 1] from a prepared batch, with one
        caption per image naming its distortions and levels (e.g. "gaublur@3 + jpeg@2"); None = nothing to show."""
        return None

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the method class, so `evaluate`/`predict` can rebuild any method from the checkpoint alone."""
        checkpoint["iqa_bench_method"] = f"{type(self).__module__}.{type(self).__qualname__}"

    # -- optimisation ------------------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = build_optimizer(params, **self.optimizer_cfg)
        scheduler = build_scheduler(optimizer, **(self.scheduler_cfg or {"name": "none"}))
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


def uint8_to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [0, 1] (same shape, same device)."""
    return x.float().div_(255.0)
