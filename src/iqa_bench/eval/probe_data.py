"""Input checking and row/item bookkeeping of the split protocols (ridge probe, cross-dataset).

Features arrive as rows (one per image, or one per crop); `Items` maps rows to items (images), so splits are made
over items and an item's prediction is the mean over its rows. Every check raises `ValueError` naming the argument
and the first bad row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from iqa_bench.eval.ridge import as_features
from iqa_bench.eval.splits import PARTS

__all__ = ["Items", "check_data", "check_splits", "first_bad_row", "items_of"]


def first_bad_row(a: np.ndarray) -> int | None:
    ok = np.isfinite(a) if a.ndim == 1 else np.isfinite(a).all(axis=1)
    return None if ok.all() else int(np.flatnonzero(~ok)[0])


def check_data(features: Any, scores: Any, prefix: str = "") -> tuple[np.ndarray, np.ndarray]:
    """-> (X (N, D) float32/64, y (N,) float64); ValueError naming `features`/`scores` and the first bad row."""
    X = as_features(features, f"{prefix}features")
    if hasattr(scores, "detach"):
        scores = scores.detach().cpu().numpy()
    y = np.asarray(scores, dtype=np.float64)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.shape != (X.shape[0],):
        raise ValueError(
            f"{prefix}scores must have shape ({X.shape[0]},) to match {prefix}features {X.shape}, "
            f"got {y.shape}"
        )
    bad = first_bad_row(X)
    if bad is not None:
        raise ValueError(f"{prefix}features contain NaN/inf (first bad row {bad})")
    bad = first_bad_row(y)
    if bad is not None:
        raise ValueError(f"{prefix}scores contain NaN/inf (first bad row {bad})")
    return X, y


@dataclass
class Items:
    """Row <-> item bookkeeping: item_of_row (N,) dense item index; ids (n_items,); scores (n_items,)."""

    item_of_row: np.ndarray
    ids: np.ndarray
    scores: np.ndarray
    groups: np.ndarray | None
    single_row: bool

    @property
    def n(self) -> int:
        return int(self.ids.size)

    def rows(self, items: np.ndarray) -> np.ndarray:
        """Sorted row indices of the given (sorted) item indices."""
        if self.single_row:
            return items
        return np.flatnonzero(np.isin(self.item_of_row, items))

    def mean_over_items(self, pred_rows: np.ndarray, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(..., len(rows)) row predictions -> (..., len(items)) mean per item, items in `items` order."""
        if self.single_row:
            return pred_rows
        pos = np.searchsorted(items, self.item_of_row[rows])
        order = np.argsort(pos, kind="stable")
        counts = np.bincount(pos, minlength=items.size)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        return np.add.reduceat(pred_rows[..., order], starts, axis=-1) / counts


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (messages print `'a'`, not `np.str_('a')`); others as they are."""
    return value.item() if isinstance(value, np.generic) else value


def items_of(y: np.ndarray, groups: Any, item_ids: Any) -> Items:
    n = y.size
    g = None
    if groups is not None:
        g = np.asarray(groups)
        if g.shape != (n,):
            raise ValueError(f"groups must have shape ({n},) (one reference id per row), got {g.shape}")
        if g.dtype.kind == "f" and np.isnan(g).any():
            raise ValueError(f"groups contain NaN (first bad row {int(np.flatnonzero(np.isnan(g))[0])})")
    if item_ids is None:
        return Items(np.arange(n), np.arange(n), y, g, True)
    ids = np.asarray(item_ids)
    if ids.shape != (n,):
        raise ValueError(f"item_ids must have shape ({n},) (one item id per row), got {ids.shape}")
    uniq, first, inv = np.unique(ids, return_index=True, return_inverse=True)
    inv = inv.reshape(-1)
    bad = np.flatnonzero(y != y[first][inv])
    if bad.size:
        raise ValueError(
            f"scores must be equal on all rows of an item; row {int(bad[0])} differs (item "
            f"{_plain(uniq[inv[bad[0]]])!r})"
        )
    g_item = None
    if g is not None:
        bad = np.flatnonzero(g != g[first][inv])
        if bad.size:
            raise ValueError(
                f"groups must be equal on all rows of an item; row {int(bad[0])} differs (item "
                f"{_plain(uniq[inv[bad[0]]])!r})"
            )
        g_item = g[first]
    return Items(inv, uniq, y[first], g_item, bool(np.array_equal(inv, np.arange(n))))


def check_splits(splits: Sequence[Mapping[str, Any]], n_items: int) -> list[dict[str, np.ndarray]]:
    """Predefined splits -> sorted int64 index arrays; ValueError for a missing part, an index out of range
    (e.g. ARNIQA's -1 padding) or overlapping parts."""
    out = []
    if len(splits) == 0:
        raise ValueError("splits must contain at least one split")
    for i, sp in enumerate(splits):
        parts = {}
        for k in PARTS:
            if k not in sp:
                raise ValueError(f"splits[{i}] lacks the {k!r} part")
            idx = np.asarray(sp[k])
            if idx.size and (idx.dtype.kind not in "iu" or idx.ndim != 1):
                raise ValueError(f"splits[{i}][{k!r}] must be a 1-D integer index array")
            idx = np.sort(idx.astype(np.int64))
            if idx.size and (idx[0] < 0 or idx[-1] >= n_items):
                raise ValueError(
                    f"splits[{i}][{k!r}] has indices outside [0, {n_items}) (padding such as -1 must "
                    "be removed)"
                )
            if np.any(np.diff(idx) == 0):
                raise ValueError(f"splits[{i}][{k!r}] repeats an index")
            parts[k] = idx
        allidx = np.concatenate(list(parts.values()))
        if np.unique(allidx).size != allidx.size:
            raise ValueError(f"splits[{i}]: train, val and test overlap")
        out.append(parts)
    return out
