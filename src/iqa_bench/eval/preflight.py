"""Checks of an evaluation set against the split protocol, run before any feature is extracted.

A set whose scores are all equal (correlations undefined) or that is too small for the protocol's splits (fewer
references than non-empty parts, fewer than 2 validation or test images in a split) stops the run with one line
naming the set, instead of failing after a long feature extraction or producing empty metrics.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from iqa_bench.errors import UserError
from iqa_bench.eval.official_splits import official_split
from iqa_bench.eval.splits import make_splits

__all__ = ["check_protocol_data"]


def check_protocol_data(
    name: str,
    scores: np.ndarray,
    refs: np.ndarray | None,
    n_items: int,
    ev: Any,
    parts: np.ndarray | None = None,
) -> None:
    """`UserError` unless set `name` (scores (N,), refs (N,) or None, official `parts` (N,) or None) suits
    evaluator `ev` (`RidgeEvaluator` settings: n_splits, ratios, seed, splits, train_on, val_fraction).
    `n_items <= 0` checks the scores only (a cross-dataset test set, or a re-check after excluding undecodable
    images)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size and float(np.ptp(s)) == 0.0:
        raise UserError(
            f"{name}: all {s.size} scores are equal ({s[0]:g}); SRCC/PLCC are undefined: check the score file"
        )
    if n_items <= 0:
        return
    if ev.train_on is not None:  # the set the regressor is fitted on: alpha is chosen on a held-out part
        vf = float(ev.val_fraction)
        plans = _splits(name, n_items, refs, 1, (1.0 - vf, vf, 0.0), ev.seed)
        if plans[0]["val"].size < 2:
            raise UserError(
                f"{name}: the held-out part (evaluator.val_fraction={vf:g}) has {plans[0]['val'].size} image(s), "
                "the protocol needs >= 2; use more images or a larger val_fraction"
            )
        return
    if ev.splits == "official" and parts is not None:
        official_split(parts, refs, ev.ratios, ev.seed, name)
        return
    plans = _splits(name, n_items, refs, ev.n_splits, tuple(ev.ratios), ev.seed)
    for i, sp in enumerate(plans):
        if sp["val"].size < 2 or sp["test"].size < 2:
            raise UserError(
                f"{name}: split {i} would have {sp['val'].size} validation and {sp['test'].size} test image(s) "
                f"out of {n_items}; the protocol needs >= 2 of each (more images or larger evaluator.ratios)"
            )


def _splits(name: str, n: int, refs: np.ndarray | None, k: int, ratios: tuple[float, ...], seed: int) -> list:
    try:
        return make_splits(n, refs, k, ratios, seed)
    except ValueError as exc:
        raise UserError(f"{name}: {exc}") from None
