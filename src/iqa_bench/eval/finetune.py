"""Finetuning evaluator (`evaluator=finetune`): a regression head on the encoder, trained per split by
`lightning.Trainer`.

RankIQA's protocol on the project's splits:

* the same seeded, reference-disjoint train/val/test splits as the ridge probe (`eval/splits.make_splits`);
* a head (`models.heads.score_head`: Linear, or a small MLP) on the encoder's `features`, standardised with
  fixed statistics of the train images (one seeded crop each, initial encoder); the encoder is frozen
  (`freeze_backbone: true`, the default) or trained too (`freeze_backbone: false`, with its own `backbone_lr`, as
  RankIQA's stage 2); BatchNorm statistics stay frozen (the encoder is kept in eval mode), which is what small
  finetuning batches need;
* targets are the train part's scores standardised with the train mean/std (predictions are mapped back);
  loss L2 (RankIQA's EuclideanLoss) or smooth-L1;
* training images: `train_crops` random `crop_size` crops per image and epoch (RankIQA: one 224 crop, batch 30);
* model selection: after every epoch the val SRCC (mean prediction over `val_crops` random crops) is computed and
  the best epoch's weights are kept;
* test prediction: the mean over `test_crops` random crops (RankIQA: 30). All crops are seeded (RankIQA's were
  not), so a run is reproducible.

The per-split training is a `FinetuneModule` (`eval/finetune_module.py`) fitted by a `lightning.Trainer` on the
device the evaluator is given (`precision` e.g. bf16-mixed on a GPU; `progress` shows Lightning's progress bar;
`log_dir` writes each split's train loss / val SRCC with a CSVLogger).

Rows are the ridge evaluator's (one per split + a 'median' row with IQRs), with protocol 'finetune' and no alpha.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from iqa_bench.eval.finetune_data import image_store, random_crops
from iqa_bench.eval.finetune_module import FinetuneModule, KeepBest
from iqa_bench.eval.metrics import all_metrics
from iqa_bench.eval.protocol import summarise_splits
from iqa_bench.eval.runner import _labels
from iqa_bench.eval.splits import make_splits
from iqa_bench.models.heads import score_head
from iqa_bench.utils.config_check import check

__all__ = ["FinetuneEvaluator", "random_crops"]

log = logging.getLogger(__name__)

LOSSES = ("l2", "smooth_l1")
PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "64-true")


@dataclass
class FinetuneEvaluator:
    """Regression head (+ optionally the encoder) trained per split; see the module docstring.

    Args:
        n_splits, ratios, seed: the splits (as the ridge evaluator).
        freeze_backbone: True (default) = only the head trains; False = the encoder trains too, with
            `backbone_lr` (RankIQA+FT, RankIQA's stage 2).
        head_hidden_dim: None = Linear head; an int = Linear -> ReLU -> Dropout(dropout) -> Linear.
        loss: 'l2' | 'smooth_l1' (on standardised scores).
        epochs, batch_size (images per step), lr (head), backbone_lr, weight_decay: AdamW training.
        crop_size, train_crops, val_crops, test_crops: random crops per image (train per epoch, val, test).
        num_workers: data loader workers (0 keeps decoded images in memory up to `max_cache_mb`).
        max_cache_mb: in-memory image store limit (the store is off beyond it: images are decoded per epoch).
        baseline_random_init: also evaluate the encoder at its random initialisation (train.py).
        precision: Lightning precision ('32-true', 'bf16-mixed', ...).
        progress: Lightning's progress bar and one INFO line per epoch.
        log_dir: None, or a folder where a CSVLogger writes each split's train loss and val SRCC.
        num_alphas, alpha_min, alpha_max: ignored (ridge-only; accepted so ridge-tuned experiments compose).
    """

    n_splits: int = 10
    ratios: Sequence[float] = (0.7, 0.1, 0.2)
    seed: int = 0
    freeze_backbone: bool = True
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
    precision: str = "32-true"
    progress: bool = False
    log_dir: str | None = None
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
            ("evaluator.precision", str(self.precision) in PRECISIONS, f"one of {PRECISIONS}"),
        ]
        check((key, ok, want, getattr(self, key.split(".")[1])) for key, ok, want in checks)

    # ---------------------------------------------------------------------------------------------- helpers
    def _trainer(self, device: torch.device, name: str, s: int, keep: KeepBest) -> L.Trainer:
        if device.type == "cuda":
            accelerator, devices = "gpu", [device.index or 0]
        else:
            accelerator, devices = device.type, 1
        logger: Any = False
        if self.log_dir:
            logger = L.pytorch.loggers.CSVLogger(self.log_dir, name=name, version=f"split{s}")
        return L.Trainer(
            accelerator=accelerator,
            devices=devices,
            precision=str(self.precision),  # type: ignore[arg-type]
            max_epochs=self.epochs,
            logger=logger,
            callbacks=[keep],
            enable_checkpointing=False,
            enable_progress_bar=self.progress,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            reload_dataloaders_every_n_epochs=1,
            log_every_n_steps=1,
            default_root_dir=self.log_dir,
        )

    def _fit_split(
        self,
        encoder: nn.Module,
        ds: Any,
        split: Mapping[str, np.ndarray],
        s: int,
        store: Any,
        device: Any,
        name: str,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Train on split `s`; returns (test predictions in score units, {"val_srcc", "best_epoch"})."""
        device = torch.device(device)
        torch.manual_seed(self.seed * 1_000_003 + s)
        enc = copy.deepcopy(encoder).to(device).eval()
        feature_dim = getattr(enc, "feature_dim", None)
        if feature_dim is None:
            with torch.no_grad():
                x = torch.zeros(1, 3, self.crop_size, self.crop_size, device=device)
                feature_dim = int(enc.features(x).shape[1])
        head = score_head(int(feature_dim), self.head_hidden_dim, self.dropout)
        module = FinetuneModule(enc, head, int(feature_dim), ds, dict(split), self, s, store)
        keep = KeepBest()
        trainer = self._trainer(device, name, s, keep)
        trainer.fit(module)
        keep.restore(module)
        out = trainer.predict(module)
        pos = np.concatenate([p for p, _ in out])  # type: ignore[union-attr]
        pred = np.empty(len(split["test"]), dtype=np.float64)
        pred[pos] = np.concatenate([v for _, v in out])  # type: ignore[union-attr]
        if self.progress:
            log.info("finetune split %d: best epoch %d, val SRCC %.4f", s, keep.best_epoch, keep.val_srcc)
        return pred, {"val_srcc": keep.val_srcc, "best_epoch": keep.best_epoch}

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
            store = image_store(ds, self.num_workers, self.max_cache_mb)
            scores = np.asarray(ds.scores, dtype=np.float64)
            for enc_name, enc in encoders.items():
                per_split: list[dict[str, Any]] = []
                pred_cols: dict[str, list[Any]] = {"split": [], "item": [], "pred": [], "mos": []}
                for s, sp in enumerate(splits):
                    log.info("finetuning %s on %s, split %d/%d", enc_name, ds_name, s + 1, len(splits))
                    with _quiet_lightning():
                        pred, info = self._fit_split(enc, ds, sp, s, store, device, f"{enc_name}-{ds_name}")
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


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's per-Trainer banner lines ('GPU available', 'TPU available') and data-loader hints are noise
    when one evaluation builds n_splits x encoders x datasets Trainers."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.WARNING)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
            warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
            warnings.filterwarnings(
                "ignore", message=".*LeafSpec.*"
            )  # torch pytree deprecation inside Lightning
            # intended: the encoder (and a dropout-free head) stay in eval mode, see FinetuneModule.train
            warnings.filterwarnings(
                "ignore", message=".*module\\(s\\) in eval mode at the start of training.*"
            )
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
