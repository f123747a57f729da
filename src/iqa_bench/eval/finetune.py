"""Finetuning evaluator (`evaluator=finetune`): a regression head on the encoder, trained per split.

RankIQA's protocol (`shared/specs/rankiqa_mlf.md` §A.7-A.8) on the project's splits:

* the same seeded, reference-disjoint train/val/test splits as the ridge probe (`eval/splits.make_splits`);
* a head (`models.heads.score_head`: Linear, or a small MLP) on the encoder's `features`, standardised with
  fixed statistics of the train images (one seeded crop each, initial encoder) (encoder frozen by default;
  `train_backbone=true` also trains the encoder, with its own learning rate); BatchNorm statistics stay frozen
  (the encoder is kept in eval mode), which is what small finetuning batches need;
* targets are the train part's scores standardised with the train mean/std (predictions are mapped back);
  loss L2 (RankIQA's EuclideanLoss) or smooth-L1;
* training images: `train_crops` random `crop_size` crops per image and epoch (RankIQA: one 224 crop, batch 30);
* model selection: after every epoch the val SRCC (mean prediction over `val_crops` random crops) is computed and
  the best epoch's weights are kept;
* test prediction: the mean over `test_crops` random crops (RankIQA: 30). All crops are seeded (RankIQA's were
  not, issue #48), so a run is reproducible.

Rows are the ridge evaluator's (one per split + a 'median' row with IQRs), with protocol 'finetune' and no alpha.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from iqa_bench.errors import ConfigError
from iqa_bench.eval.metrics import all_metrics, srcc
from iqa_bench.eval.protocol import summarise_splits
from iqa_bench.eval.runner import _labels
from iqa_bench.eval.splits import make_splits
from iqa_bench.models.heads import score_head

__all__ = ["FinetuneEvaluator", "random_crops"]

log = logging.getLogger(__name__)

LOSSES = ("l2", "smooth_l1")


def random_crops(img: torch.Tensor, size: int, n: int, rng: np.random.Generator) -> torch.Tensor:
    """`n` random `size` x `size` crops of a `(3, H, W)` image -> `(n, 3, size, size)` (same dtype); an image
    smaller than `size` is zero-padded at the bottom/right first (as the 5-crop evaluation does)."""
    h, w = img.shape[-2:]
    if h < size or w < size:
        img = F.pad(img, (0, max(0, size - w), 0, max(0, size - h)))
        h, w = img.shape[-2:]
    tops = rng.integers(0, h - size + 1, size=n)
    lefts = rng.integers(0, w - size + 1, size=n)
    return torch.stack([img[:, t : t + size, c : c + size] for t, c in zip(tops.tolist(), lefts.tolist())])


class _Crops(Dataset):
    """Item i of `indices` -> (n crops uint8 (n, 3, c, c), position i); crops seeded by (seed, tag, index).
    Decoded images are kept in `store` (a dict shared across epochs) when it is given."""

    def __init__(
        self,
        ds: Any,
        indices: np.ndarray,
        size: int,
        n: int,
        seed: Sequence[int],
        store: dict[int, torch.Tensor] | None,
    ) -> None:
        self.ds, self.indices, self.size, self.n, self.seed, self.store = (
            ds,
            indices,
            size,
            n,
            list(seed),
            store,
        )

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        idx = int(self.indices[i])
        img = self.store.get(idx) if self.store is not None else None
        if img is None:
            img = self.ds[idx]
            if self.store is not None:
                self.store[idx] = img
        rng = np.random.default_rng([*self.seed, idx])
        return random_crops(img, self.size, self.n, rng), i


class _Model(nn.Module):
    """head((features - f_mean) / f_std): the encoder's features standardised with fixed train statistics (L2-
    normalised features have tiny components; a head on them would need huge weights and many steps)."""

    def __init__(self, encoder: nn.Module, head: nn.Module, dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.register_buffer("f_mean", torch.zeros(dim))
        self.register_buffer("f_std", torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = (self.encoder.features(x).float() - self.f_mean) / self.f_std
        return self.head(f).squeeze(1)


@dataclass
class FinetuneEvaluator:
    """Regression head (+ optionally the encoder) trained per split; see the module docstring.

    Args:
        n_splits, ratios, seed: the splits (as the ridge evaluator).
        train_backbone: also train the encoder (RankIQA+FT) with `backbone_lr`; default: frozen encoder.
        head_hidden_dim: None = Linear head; an int = Linear -> ReLU -> Dropout(dropout) -> Linear.
        loss: 'l2' | 'smooth_l1' (on standardised scores).
        epochs, batch_size (images per step), lr (head), backbone_lr, weight_decay: AdamW training.
        crop_size, train_crops, val_crops, test_crops: random crops per image (train per epoch, val, test).
        num_workers: data loader workers (0 keeps decoded images in memory up to `max_cache_mb`).
        max_cache_mb: in-memory image store limit (the store is off beyond it: images are decoded per epoch).
        baseline_random_init: also evaluate the encoder at its random initialisation (train.py).
        progress: log one line per epoch at INFO level.
        num_alphas, alpha_min, alpha_max: ignored (ridge-only; accepted so ridge-tuned experiments compose).
    """

    n_splits: int = 10
    ratios: Sequence[float] = (0.7, 0.1, 0.2)
    seed: int = 0
    train_backbone: bool = False
    head_hidden_dim: int | None = None
    dropout: float = 0.0
    loss: str = "l2"
    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-3
    backbone_lr: float = 1e-5
    weight_decay: float = 1e-4
    crop_size: int = 224
    train_crops: int = 1
    val_crops: int = 5
    test_crops: int = 30
    num_workers: int = 0
    max_cache_mb: float = 1024.0
    baseline_random_init: bool = True
    progress: bool = False
    # ridge-only settings, accepted (and unused) so that experiments tuned for `evaluator=ridge` (e.g.
    # experiment=smoke sets num_alphas) still compose with evaluator=finetune
    num_alphas: int | None = None
    alpha_min: float | None = None
    alpha_max: float | None = None
    results: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict, repr=False)
    predictions: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict, repr=False)
    regressors: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    protocol = "finetune"
    scales = (1.0,)

    def __post_init__(self) -> None:
        checks = [
            ("evaluator.n_splits", self.n_splits >= 1, ">= 1"),
            (
                "evaluator.ratios",
                len(self.ratios) == 3
                and all(r > 0 for r in self.ratios)
                and abs(sum(self.ratios) - 1) < 1e-6,
                "three positive fractions summing to 1",
            ),
            ("evaluator.loss", self.loss in LOSSES, f"one of {LOSSES}"),
            ("evaluator.epochs", self.epochs >= 1, ">= 1"),
            ("evaluator.batch_size", self.batch_size >= 1, ">= 1"),
            ("evaluator.lr", self.lr > 0, "> 0"),
            ("evaluator.backbone_lr", self.backbone_lr >= 0, ">= 0"),
            ("evaluator.crop_size", self.crop_size >= 16, ">= 16"),
            ("evaluator.train_crops", self.train_crops >= 1, ">= 1"),
            ("evaluator.val_crops", self.val_crops >= 1, ">= 1"),
            ("evaluator.test_crops", self.test_crops >= 1, ">= 1"),
            ("evaluator.num_workers", self.num_workers >= 0, ">= 0"),
        ]
        for key, ok, want in checks:
            if not ok:
                raise ConfigError(f"{key} must be {want}, got {getattr(self, key.split('.')[1])!r}")

    # ---------------------------------------------------------------------------------------------- helpers
    def _store(self, ds: Any) -> dict[int, torch.Tensor] | None:
        if self.num_workers > 0 or len(ds) == 0:
            return None
        first = ds[0]
        if first.numel() * first.element_size() * len(ds) > self.max_cache_mb * 2**20:
            return None
        return {0: first}

    def _loader(self, crops: _Crops, shuffle_seed: int | None) -> DataLoader:
        gen = torch.Generator().manual_seed(shuffle_seed) if shuffle_seed is not None else None
        return DataLoader(
            crops,
            batch_size=self.batch_size,
            shuffle=shuffle_seed is not None,
            generator=gen,
            num_workers=self.num_workers,
        )

    @torch.no_grad()
    def _predict(
        self, model: _Model, ds: Any, items: np.ndarray, n: int, seed: Sequence[int], store: Any, device: Any
    ) -> np.ndarray:
        """Mean standardised prediction over `n` seeded random crops, per item of `items` -> (len(items),)."""
        out = np.empty(len(items), dtype=np.float64)
        for crops, pos in self._loader(_Crops(ds, items, self.crop_size, n, seed, store), None):
            b, k = crops.shape[:2]
            x = crops.flatten(0, 1).to(device).float().div_(255.0)
            out[pos.numpy()] = model(x).view(b, k).mean(dim=1).double().cpu().numpy()
        return out

    @torch.no_grad()
    def _feature_stats(
        self, model: _Model, ds: Any, items: np.ndarray, s: int, store: Any, device: Any
    ) -> None:
        """Set the model's feature standardisation from one seeded crop per train image (initial encoder)."""
        total = count = 0
        sq = None
        for crops, _ in self._loader(_Crops(ds, items, self.crop_size, 1, (self.seed, s, 0, 3), store), None):
            f = model.encoder.features(crops.flatten(0, 1).to(device).float().div_(255.0)).double()
            total = total + f.sum(0)
            sq = f.pow(2).sum(0) if sq is None else sq + f.pow(2).sum(0)
            count += f.shape[0]
        mean = total / count
        std = (sq / count - mean.pow(2)).clamp_min(0).sqrt()  # type: ignore[operator]
        model.f_mean.copy_(mean.float())
        model.f_std.copy_(torch.where(std > 1e-8, std, torch.ones_like(std)).float())

    def _fit_split(
        self,
        encoder: nn.Module,
        ds: Any,
        split: Mapping[str, np.ndarray],
        s: int,
        store: Any,
        device: Any,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Train on split `s`; returns (test predictions in score units, info)."""
        torch.manual_seed(self.seed * 1_000_003 + s)
        enc = copy.deepcopy(encoder).to(device).eval()
        for p in enc.parameters():
            p.requires_grad_(self.train_backbone)
        feature_dim = getattr(enc, "feature_dim", None)
        if feature_dim is None:
            with torch.no_grad():
                feature_dim = int(
                    enc.features(torch.zeros(1, 3, self.crop_size, self.crop_size, device=device)).shape[1]
                )
        head = score_head(int(feature_dim), self.head_hidden_dim, self.dropout).to(device)
        model = _Model(enc, head, int(feature_dim))
        self._feature_stats(model, ds, split["train"], s, store, device)
        groups = [{"params": list(head.parameters()), "lr": self.lr}]
        if self.train_backbone and self.backbone_lr > 0:
            groups.append(
                {"params": [p for p in enc.parameters() if p.requires_grad], "lr": self.backbone_lr}
            )
        opt = torch.optim.AdamW(groups, weight_decay=self.weight_decay)
        loss_fn = F.mse_loss if self.loss == "l2" else F.smooth_l1_loss

        scores = np.asarray(ds.scores, dtype=np.float64)
        train, val, test = split["train"], split["val"], split["test"]
        mu, sd = float(scores[train].mean()), float(scores[train].std()) or 1.0
        z = torch.from_numpy((scores[train] - mu) / sd).float()
        best_srcc, best_epoch, best_state = -math.inf, -1, None
        for epoch in range(self.epochs):
            head.train()
            if self.dropout == 0 and not self.train_backbone:
                head.eval()  # nothing stochastic in the head
            crops = _Crops(ds, train, self.crop_size, self.train_crops, (self.seed, s, epoch, 0), store)
            total, count = 0.0, 0
            for x, pos in self._loader(crops, self.seed * 7919 + s * 104_729 + epoch):
                b, k = x.shape[:2]
                x = x.flatten(0, 1).to(device).float().div_(255.0)
                target = z[pos].repeat_interleave(k).to(device)
                with torch.set_grad_enabled(True):
                    loss = loss_fn(model(x), target)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * b
                count += b
            head.eval()
            pv = self._predict(model, ds, val, self.val_crops, (self.seed, s, 0, 1), store, device)
            v = srcc(pv, scores[val]) if np.ptp(pv) > 0 else float("nan")
            if self.progress:
                log.info(
                    "finetune split %d epoch %d: train loss %.4f, val SRCC %.4f", s, epoch, total / count, v
                )
            if best_state is None or (math.isfinite(v) and v > best_srcc):
                best_srcc, best_epoch = (v if math.isfinite(v) else -math.inf), epoch
                trained = model if self.train_backbone else head
                best_state = {k: t.detach().clone() for k, t in trained.state_dict().items()}
        (model if self.train_backbone else head).load_state_dict(best_state)  # type: ignore[arg-type]
        pt = self._predict(model, ds, test, self.test_crops, (self.seed, s, 0, 2), store, device)
        info = {"val_srcc": best_srcc if math.isfinite(best_srcc) else float("nan"), "best_epoch": best_epoch}
        return pt * sd + mu, info

    # --------------------------------------------------------------------------------------------------- run
    def run(
        self,
        encoders: Mapping[str, nn.Module],
        eval_sets: Mapping[str, Any],
        device: str | torch.device = "cpu",
        *,
        encoder_keys: Mapping[str, Any] | None = None,
        dataset_keys: Mapping[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Finetune every encoder on every split of every set; rows as `RidgeEvaluator.run` (keys ignored)."""
        rows: list[dict[str, Any]] = []
        for ds_name, ds in eval_sets.items():
            splits = make_splits(len(ds), ds.refs, self.n_splits, self.ratios, self.seed)
            for i, sp in enumerate(splits):
                if sp["val"].size < 2 or sp["test"].size < 2:
                    raise ValueError(f"{ds_name}: split {i} has fewer than 2 val or test items")
            store = self._store(ds)
            scores = np.asarray(ds.scores, dtype=np.float64)
            for enc_name, enc in encoders.items():
                per_split: list[dict[str, Any]] = []
                pred_cols: dict[str, list[Any]] = {"split": [], "item": [], "pred": [], "mos": []}
                for s, sp in enumerate(splits):
                    log.info("finetuning %s on %s, split %d/%d", enc_name, ds_name, s + 1, len(splits))
                    pred, info = self._fit_split(enc, ds, sp, s, store, device)
                    target = scores[sp["test"]]
                    per_split.append(
                        {
                            "split": s,
                            **all_metrics(pred, target),
                            "val_srcc": info["val_srcc"],
                            "best_epoch": info["best_epoch"],
                            "n_train": int(sp["train"].size),
                            "n_val": int(sp["val"].size),
                            "n_test": int(sp["test"].size),
                        }
                    )
                    pred_cols["split"] += [s] * len(pred)
                    pred_cols["item"] += sp["test"].tolist()
                    pred_cols["pred"] += pred.tolist()
                    pred_cols["mos"] += target.tolist()
                summary = summarise_splits(per_split)
                summary["val_srcc"] = float(np.nanmedian([r["val_srcc"] for r in per_split]))
                self.results[(enc_name, ds_name)] = {"per_split": per_split, "summary": summary}
                self.predictions[(enc_name, ds_name)] = {
                    **pred_cols,
                    "label": _labels(ds, np.asarray(pred_cols["item"], dtype=np.int64)),
                }
                base = {"encoder": enc_name, "dataset": ds_name, "protocol": self.protocol, "train_on": ""}
                rows += [{**base, **r} for r in per_split]
                rows.append({**base, "split": "median", **summary})
        return rows
