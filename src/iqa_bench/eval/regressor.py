"""The deployed regressor of an evaluation run: feature standardisation + ridge weights, saved for `predict`.

File format (`<name>.safetensors`, written atomically): float64 tensors `coef`, `mean`, `scale` (standardised
ridge, see `ridge.RidgeModel`) and, in the safetensors metadata under the key `iqa_bench`, a JSON object with
`format` ("iqa_bench.regressor/1"), `intercept`, `alpha` and how the features were made (`scales`, `crop_size`,
`feature_dim`) and by what (`method`, `backbone`, `ckpt`, `dataset`). A human-readable copy of that metadata is
written next to it as `<name>.json`. No pickle is involved in saving or loading.

    reg = load_regressor("runs/.../regressors/pretrained__koniq10k.safetensors")
    feats, item_ids = extract_features({"m": encoder}, images, reg.scales, reg.crop_size)
    scores = reg.predict_items(feats["m"], item_ids)   # one score per image (mean over its crops)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iqa_bench.errors import UserError
from iqa_bench.eval.ridge import RidgeModel
from iqa_bench.utils.atomic import atomic_write_json, atomic_write_with

__all__ = ["REGRESSOR_FORMAT", "Regressor", "apply_regressor", "load_regressor", "save_regressor"]

REGRESSOR_FORMAT = "iqa_bench.regressor/1"


@dataclass
class Regressor:
    """A loaded regressor: `model` (RidgeModel) plus `meta` (scales, crop_size, method, ...)."""

    model: RidgeModel
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def scales(self) -> list[float]:
        return [float(s) for s in self.meta.get("scales", [1.0])]

    @property
    def crop_size(self) -> int | None:
        c = self.meta.get("crop_size")
        return None if c is None else int(c)

    def predict(self, features: Any) -> np.ndarray:
        """Row predictions: features (R, D) -> (R,) float64."""
        return self.model.predict(features)

    def predict_items(self, features: Any, item_ids: Any | None = None) -> np.ndarray:
        """Per-item predictions: the mean over the rows of each item (e.g. 5 crops), items in sorted id order."""
        return apply_regressor(self, features, item_ids)


def save_regressor(path: str | os.PathLike[str], model: RidgeModel, meta: Mapping[str, Any]) -> Path:
    """Write `model` + `meta` (JSON-able) to `path` (.safetensors) and `path.with_suffix('.json')`, atomically."""
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    info = {"format": REGRESSOR_FORMAT, "intercept": model.intercept_, "alpha": model.alpha, **dict(meta)}
    info["feature_dim"] = model.n_features
    tensors = {
        "coef": torch.from_numpy(np.ascontiguousarray(model.coef_)),
        "mean": torch.from_numpy(np.ascontiguousarray(model.mean_)),
        "scale": torch.from_numpy(np.ascontiguousarray(model.scale_)),
    }
    text = json.dumps(info, default=str)
    atomic_write_with(path, lambda tmp: save_file(tensors, tmp, metadata={"iqa_bench": text}))
    atomic_write_json(path.with_suffix(".json"), json.loads(text))
    return path


def load_regressor(path: str | os.PathLike[str]) -> Regressor:
    """Read a regressor written by `save_regressor`; `UserError` naming the file if it is missing or invalid."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(f"regressor: file not found: {path}")
    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = json.loads((fh.metadata() or {})["iqa_bench"])
            arrays = {k: fh.get_tensor(k) for k in ("coef", "mean", "scale")}
        if meta.get("format") != REGRESSOR_FORMAT:
            raise ValueError(f"unknown format {meta.get('format')!r}")
        model = RidgeModel(
            coef_=arrays["coef"],
            intercept_=float(meta["intercept"]),
            mean_=arrays["mean"],
            scale_=arrays["scale"],
            alpha=float(meta["alpha"]),
        )
    except Exception as exc:
        raise UserError(
            f"regressor: {path} is not an iqa_bench regressor ({type(exc).__name__}: {exc})"
        ) from None
    return Regressor(model, meta)


def apply_regressor(reg: Regressor | RidgeModel, features: Any, item_ids: Any | None = None) -> np.ndarray:
    """Predict with `reg`; with `item_ids` (R,) the rows of each item are averaged -> (n_items,) in the order of
    `np.unique(item_ids)`. Raises ValueError when the feature dimension does not match."""
    model = reg.model if isinstance(reg, Regressor) else reg
    pred = model.predict(features)
    if item_ids is None:
        return pred
    ids = np.asarray(item_ids)
    if ids.shape != pred.shape:
        raise ValueError(f"item_ids must have shape {pred.shape}, got {ids.shape}")
    _, inv = np.unique(ids, return_inverse=True)
    inv = inv.reshape(-1)
    return np.bincount(inv, weights=pred) / np.bincount(inv)
