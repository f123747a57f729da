"""The LightningModule the finetuning evaluator trains per split (`eval/finetune.py`), and its model selection.

`FinetuneModule` = encoder + scalar head on the encoder's standardised features. `lightning.Trainer` runs the
loop (precision, devices, loggers, progress bar); the module owns the protocol's data (seeded crops per epoch via
`reload_dataloaders_every_n_epochs=1`), the validation SRCC and the test prediction (mean over crops).

Model selection keeps the best epoch's weights in memory (`KeepBest`) rather than with `ModelCheckpoint`: only
the head (plus the encoder when it is trained) is copied, and nothing is written to disk for each of the
n_splits x encoders x datasets short trainings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from iqa_bench.eval.finetune_data import CropSet, crop_loader
from iqa_bench.eval.metrics import srcc

__all__ = ["FinetuneModule", "KeepBest"]


class FinetuneModule(L.LightningModule):
    """head((encoder.features(x) - f_mean) / f_std) trained on standardised scores of one split.

    Args:
        encoder: a module with `features(x (B, 3, H, W) in [0, 1]) -> (B, D)`; it is used as given (the caller
            passes a copy). It stays in eval mode (frozen BatchNorm statistics) even when its weights train.
        head: `(B, D) -> (B, 1)`.
        dim: D, the feature size.
        ds: the evaluation set (uint8 `(3, H, W)` items, `scores` higher = better).
        split: {"train", "val", "test"} -> item indices.
        settings: the `FinetuneEvaluator` (crop sizes/counts, batch size, lrs, loss, workers, seed...).
        split_index: s, part of every crop seed.
        store: decoded-image store shared across epochs and splits (or None).

    Feature statistics (`f_mean`, `f_std`) are fixed from one seeded crop per train image with the initial
    encoder, at the start of fit (L2-normalised features have tiny components; a head on them would need huge
    weights and many steps). Targets: train scores standardised with the train mean/std (`mu`, `sd`).
    """

    def __init__(
        self,
        encoder: nn.Module,
        head: nn.Module,
        dim: int,
        ds: Any,
        split: dict[str, np.ndarray],
        settings: Any,
        split_index: int,
        store: dict[int, torch.Tensor] | None,
    ) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head
        self.register_buffer("f_mean", torch.zeros(dim))
        self.register_buffer("f_std", torch.ones(dim))
        self.ds, self.split, self.cfg, self.s, self.store = ds, split, settings, split_index, store
        self.freeze_backbone = bool(settings.freeze_backbone)
        for p in self.encoder.parameters():
            p.requires_grad_(not self.freeze_backbone)
        scores = np.asarray(ds.scores, dtype=np.float64)
        self.scores = scores
        train = scores[split["train"]]
        self.mu, self.sd = float(train.mean()), float(train.std()) or 1.0
        self.z = torch.from_numpy((train - self.mu) / self.sd).float()
        self.val_srcc = float("nan")
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._stats_done = False

    # ---------------------------------------------------------------------------------------------- model
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: `(B, 3, H, W)` in [0, 1] -> standardised predictions `(B,)` (float32)."""
        f = (self.encoder.features(x).float() - self.f_mean) / self.f_std
        return self.head(f).squeeze(1).float()

    def train(self, mode: bool = True) -> FinetuneModule:
        """Train mode for the head only when it has something stochastic (dropout) or the encoder trains; the
        encoder always stays in eval mode (BatchNorm statistics are not re-estimated on small batches)."""
        super().train(mode)
        self.encoder.eval()
        if mode and self.cfg.dropout == 0 and self.freeze_backbone:
            self.head.eval()
        return self

    def _mean_pred(self, crops: torch.Tensor) -> torch.Tensor:
        """crops `(b, k, 3, c, c)` uint8 -> mean standardised prediction over the k crops, `(b,)` float32."""
        b, k = crops.shape[:2]
        x = crops.flatten(0, 1).float().div_(255.0)
        return self(x).view(b, k).mean(dim=1)

    # ------------------------------------------------------------------------------------------------ data
    def _crops(self, part: str, n: int, seed: Sequence[int]) -> CropSet:
        return CropSet(self.ds, self.split[part], self.cfg.crop_size, n, seed, self.store)

    def train_dataloader(self) -> DataLoader:
        """Fresh crops every epoch (the Trainer reloads this loader each epoch)."""
        e, c = self.current_epoch, self.cfg
        crops = self._crops("train", c.train_crops, (c.seed, self.s, e, 0))
        return crop_loader(crops, c.batch_size, c.num_workers, c.seed * 7919 + self.s * 104_729 + e)

    def val_dataloader(self) -> DataLoader:
        c = self.cfg
        return crop_loader(
            self._crops("val", c.val_crops, (c.seed, self.s, 0, 1)), c.batch_size, c.num_workers
        )

    def predict_dataloader(self) -> DataLoader:
        c = self.cfg
        crops = self._crops("test", c.test_crops, (c.seed, self.s, 0, 2))
        return crop_loader(crops, c.batch_size, c.num_workers)

    # ------------------------------------------------------------------------------------------------ steps
    def on_train_epoch_start(self) -> None:
        self.train()  # re-apply the eval-mode encoder (Lightning restores saved module modes around validation)

    def on_fit_start(self) -> None:
        self.encoder.eval()  # Lightning may hand the module over in train mode
        if self._stats_done:
            return
        c = self.cfg
        total = sq = None
        count = 0
        with torch.no_grad():
            loader = crop_loader(self._crops("train", 1, (c.seed, self.s, 0, 3)), c.batch_size, c.num_workers)
            for crops, _ in loader:
                x = crops.flatten(0, 1).to(self.device).float().div_(255.0)
                f = self.encoder.features(x).double()
                total = f.sum(0) if total is None else total + f.sum(0)
                sq = f.pow(2).sum(0) if sq is None else sq + f.pow(2).sum(0)
                count += f.shape[0]
        mean = total / count  # type: ignore[operator]
        std = (sq / count - mean.pow(2)).clamp_min(0).sqrt()  # type: ignore[operator]
        self.f_mean.copy_(mean.float())
        self.f_std.copy_(torch.where(std > 1e-8, std, torch.ones_like(std)).float())
        self._stats_done = True

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        crops, pos = batch
        k = crops.shape[1]
        x = crops.flatten(0, 1).float().div_(255.0)
        target = self.z.to(self.device)[pos].repeat_interleave(k)
        pred = self(x)
        loss = F.mse_loss(pred, target) if self.cfg.loss == "l2" else F.smooth_l1_loss(pred, target)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=crops.shape[0])
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val = []

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        crops, pos = batch
        self._val.append((pos, self._mean_pred(crops)))

    def on_validation_epoch_end(self) -> None:
        """val SRCC of the mean-over-crops predictions (gathered over devices), logged as `val_srcc`."""
        pos = torch.cat([p for p, _ in self._val]).to(self.device)
        pred = torch.cat([v for _, v in self._val]).float()
        if self.trainer.world_size > 1:
            pos, pred = self.all_gather(pos).flatten(), self.all_gather(pred).flatten()
        order = pos.argsort()
        pv = pred[order].double().cpu().numpy()
        target = self.scores[self.split["val"][pos[order].cpu().numpy()]]
        self.val_srcc = srcc(pv, target) if np.ptp(pv) > 0 else float("nan")
        self.log("val_srcc", self.val_srcc if math.isfinite(self.val_srcc) else -1.0, prog_bar=True)

    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> tuple[Any, Any]:
        """-> (positions (b,), predictions in score units (b,), float64 NumPy)."""
        crops, pos = batch
        pred = self._mean_pred(crops).double().cpu().numpy() * self.sd + self.mu
        return pos.cpu().numpy(), pred

    def configure_optimizers(self) -> torch.optim.Optimizer:
        c = self.cfg
        groups = [{"params": list(self.head.parameters()), "lr": c.lr}]
        if not self.freeze_backbone and c.backbone_lr > 0:
            groups.append(
                {"params": [p for p in self.encoder.parameters() if p.requires_grad], "lr": c.backbone_lr}
            )
        return torch.optim.AdamW(groups, weight_decay=c.weight_decay)


class KeepBest(L.Callback):
    """Keep the weights of the epoch with the highest validation SRCC (the first epoch when every SRCC is nan),
    in memory: the head's, plus the encoder's when it trains. `restore(module)` loads them back."""

    def __init__(self) -> None:
        self.best_srcc, self.best_epoch = -math.inf, -1
        self.state: dict[str, torch.Tensor] | None = None

    def on_validation_end(self, trainer: L.Trainer, module: FinetuneModule) -> None:  # type: ignore[override]
        if trainer.sanity_checking:
            return
        v = module.val_srcc
        if self.state is None or (math.isfinite(v) and v > self.best_srcc):
            self.best_srcc, self.best_epoch = (v if math.isfinite(v) else -math.inf), trainer.current_epoch
            trained = module.head if module.freeze_backbone else module
            self.state = {k: t.detach().clone() for k, t in trained.state_dict().items()}

    def restore(self, module: FinetuneModule) -> None:
        if self.state is not None:
            (module.head if module.freeze_backbone else module).load_state_dict(self.state)

    @property
    def val_srcc(self) -> float:
        return self.best_srcc if math.isfinite(self.best_srcc) else float("nan")
