"""Choosing the ridge penalty on validation, and making sure the alpha grid brackets the choice.

`select_alpha` is ARNIQA's rule: the alpha with the best MEDIAN val SRCC over splits (first one on ties, like the
official `np.argmax`); that median curve decides the chosen alpha, so it is the one that must be bracketed.
`open_edges` lists the grid edges where the curve reaches its maximum (ties included): the optimum may lie beyond.
`GRID_EDGE_POLICIES`:

* 'widen': extend the grid by 3 decades beyond each open edge (`widen_grid`, at the grid's own log spacing) and
  refit. An edge whose extension does not raise the best val SRCC is a plateau (the ridge limit: ordinary least
  squares below, a scaled correlation regressor above) and is closed. Still open after `max_widen` widenings:
  one-line `UserError`.
* 'error': one-line `UserError` as soon as an edge is open.
* 'warn': keep the pick, with a warning naming the edge (the official protocol, whose grid is fixed).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence

import numpy as np

from iqa_bench.errors import UserError
from iqa_bench.eval.metrics import srcc_rows
from iqa_bench.eval.probe_data import Items
from iqa_bench.eval.ridge_splits import SplitRidgePaths, fit_split_paths

__all__ = [
    "GRID_EDGE_POLICIES",
    "WIDEN_DECADES",
    "fit_and_select",
    "open_edges",
    "select_alpha",
    "widen_grid",
]

log = logging.getLogger(__name__)

GRID_EDGE_POLICIES = ("widen", "error", "warn")
WIDEN_DECADES = 3.0  # each widening adds this many decades of alphas beyond the edge that was hit
_TIE = 1e-12  # val SRCC differences below this are ties (identical rankings give identical SRCC)


def select_alpha(val_srcc: np.ndarray, alphas: np.ndarray) -> tuple[int, np.ndarray]:
    """(index of the alpha with the best median val SRCC over splits, the (A,) medians) for `val_srcc` (S, A).

    nan entries (a split whose val scores or predictions are constant) are ignored; if no alpha has a finite
    median the largest alpha is taken with a warning. Ties go to the first alpha of the grid (ARNIQA's argmax)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan columns
        med = np.nanmedian(val_srcc, axis=0)
    if not np.isfinite(med).any():
        warnings.warn(
            "val SRCC is undefined for every alpha (constant val scores or predictions); "
            "using the largest alpha",
            RuntimeWarning,
            stacklevel=3,
        )
        return int(np.argmax(alphas)), med
    return int(np.argmax(np.where(np.isfinite(med), med, -np.inf))), med


def open_edges(curve: np.ndarray, alphas: np.ndarray) -> list[str]:
    """The grid edges ('low': smallest alpha, 'high': largest) at which the curve (A,) reaches its maximum (ties
    within 1e-12 count): the optimum may lie beyond them. Empty for an all-nan curve or fewer than 3 alphas."""
    c = np.where(np.isfinite(curve), curve, -np.inf)
    top = float(c.max()) if c.size else -math.inf
    if alphas.size < 3 or not math.isfinite(top):
        return []
    lo, hi = int(np.argmin(alphas)), int(np.argmax(alphas))
    return [side for side, i in (("low", lo), ("high", hi)) if c[i] >= top - _TIE]


def widen_grid(alphas: np.ndarray, side: str, decades: float = WIDEN_DECADES) -> np.ndarray:
    """The ascending grid extended by `decades` decades below ('low') or above ('high') at its median log spacing
    (the original alphas are kept exactly)."""
    a = np.sort(alphas)
    ratio = float(np.exp(np.median(np.diff(np.log(a))))) if a.size > 1 else 10.0
    # 1e-9: ceil(3 * ln 10 / ln 1000) would be ceil(1.0000000000000002) = 2 steps instead of 1
    n_add = max(1, math.ceil(decades * math.log(10.0) / math.log(ratio) - 1e-9))
    steps = ratio ** np.arange(1, n_add + 1, dtype=np.float64)
    if side == "low":
        return np.concatenate([(a[0] / steps)[::-1], a])
    return np.concatenate([a, a[-1] * steps])


def edge_message(context: str, sides: Sequence[str], alphas: np.ndarray, widened: int) -> str:
    """The one-line message of an unbracketed optimum (error or warning)."""
    edges = " and ".join(
        f"{'smallest' if s == 'low' else 'largest'} alpha {alphas.min() if s == 'low' else alphas.max():.3g}"
        for s in sides
    )
    grid = f"[{alphas.min():.3g}, {alphas.max():.3g}]"
    more = f" after widening it {widened} time(s)" if widened else ""
    return (
        f"{context}the best median val SRCC is reached at the {edges} of the alpha grid {grid}{more}, so the grid "
        "may not bracket the optimum; set evaluator.alpha_min/alpha_max (or evaluator.max_widen)"
    )


def check_policy(grid_edge: str, max_widen: int) -> None:
    """`UserError` for an unknown `grid_edge` policy or a negative `max_widen`."""
    if grid_edge not in GRID_EDGE_POLICIES:
        raise UserError(f"evaluator.grid_edge must be one of {list(GRID_EDGE_POLICIES)}, got {grid_edge!r}")
    if int(max_widen) < 0:
        raise UserError(f"evaluator.max_widen must be >= 0, got {max_widen!r}")


def val_srcc_curve(paths: SplitRidgePaths, s: int, items: Items, val_items: np.ndarray) -> np.ndarray:
    """(A,) val SRCC of split `s` for every alpha (item predictions = mean over the item's rows)."""
    rows = items.rows(val_items)
    pred = items.mean_over_items(paths.predict(s, rows), rows, val_items)
    return srcc_rows(pred, items.scores[val_items])


def fit_and_select(
    X: np.ndarray,
    y: np.ndarray,
    items: Items,
    splits: Sequence[dict[str, np.ndarray]],
    alphas: np.ndarray,
    *,
    solver: str = "auto",
    standardize: bool = True,
    grid_edge: str = "warn",
    max_widen: int = 3,
    context: str = "",
) -> tuple[SplitRidgePaths, np.ndarray, int, np.ndarray, np.ndarray]:
    """Fit every split's ridge path on its train items, score val SRCC, choose alpha (`select_alpha`) and apply
    the grid-edge policy (module docstring). Returns (paths, val SRCC (S, A), best index, median curve (A,), the
    grid actually used (A',), possibly widened). `UserError` (one line, prefixed by `context`) when the policy
    fails; test items are never looked at."""
    check_policy(grid_edge, max_widen)
    widened = 0
    closed: set[str] = set()
    previous: dict[str, tuple[float, float]] = {}  # side -> (best median val SRCC before widening, old edge)
    while True:
        rows = [items.rows(sp["train"]) for sp in splits]
        paths = fit_split_paths(X, y, rows, alphas, solver=solver, standardize=standardize)
        val_srcc = np.stack([val_srcc_curve(paths, s, items, sp["val"]) for s, sp in enumerate(splits)])
        best, med = select_alpha(val_srcc, alphas)
        for side, (top, edge) in previous.items():  # did the extension beyond `edge` improve anything?
            ext = alphas < edge if side == "low" else alphas > edge
            gain = np.nanmax(np.where(np.isfinite(med[ext]), med[ext], -np.inf)) if ext.any() else -np.inf
            if not gain > top + _TIE:
                closed.add(side)
        sides = [s for s in open_edges(med, alphas) if s not in closed]
        if not sides:
            return paths, val_srcc, best, med, alphas
        msg = edge_message(context, sides, alphas, widened)
        if grid_edge == "warn":
            log.warning("%s", msg)
            return paths, val_srcc, best, med, alphas
        if grid_edge == "error" or widened >= int(max_widen):
            raise UserError(msg)
        top = float(np.nanmax(med))
        previous = {s: (top, float(alphas.min() if s == "low" else alphas.max())) for s in sides}
        for side in sides:
            alphas = widen_grid(alphas, side)
        widened += 1
        log.info(
            "%sbest median val SRCC on the alpha grid's edge (%s): widened to [%.3g, %.3g]",
            context,
            "/".join(sides),
            alphas.min(),
            alphas.max(),
        )
