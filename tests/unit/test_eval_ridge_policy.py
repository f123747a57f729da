"""eval/alpha_grid.py's grid-edge policy loop (`fit_and_select`) and `open_edges`, step by step.

The ridge fits and the val SRCC are replaced by a scripted median curve (a function of the alpha values), so each
test states exactly which grid is fitted, when the grid is widened, when an edge counts as a plateau and what the
messages say. The real fits are covered by test_eval_official.py and test_eval_ridge.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from iqa_bench.errors import UserError
from iqa_bench.eval import alpha_grid
from iqa_bench.eval.alpha_grid import fit_and_select, open_edges, widen_grid
from iqa_bench.eval.probe_data import Items

GRID = np.geomspace(1e-3, 1e1, 5)  # one decade apart: each widening adds exactly 3 points
OFFSETS = (-0.01, 0.0, 0.02)  # per-split offsets around the scripted curve: the median is the curve itself


@dataclass
class Script:
    """Stands in for `fit_split_paths` and `val_srcc_curve`: records every fit and returns curve(alphas)."""

    curve: Callable[[np.ndarray], np.ndarray]
    fits: list[dict[str, Any]] = field(default_factory=list)
    val_items: list[np.ndarray] = field(default_factory=list)

    def fit(self, X: Any, y: Any, rows: list[np.ndarray], alphas: np.ndarray, **kwargs: Any) -> Any:
        self.fits.append({"rows": rows, "alphas": np.array(alphas), **kwargs})
        return self  # the "paths": remembers the grid of the last fit

    def val(self, paths: Script, s: int, items: Items, val_items: np.ndarray) -> np.ndarray:
        self.val_items.append(val_items)
        return self.curve(paths.fits[-1]["alphas"]) + OFFSETS[s]


def _items() -> tuple[Items, list[dict[str, np.ndarray]]]:
    """10 items of 2 rows each and 3 splits over the items."""
    items = Items(np.repeat(np.arange(10), 2), np.arange(10), np.linspace(0, 1, 10), None, False)
    splits = [
        {"train": np.array([0, 1, 2, 3, 4, 5]), "val": np.array([6, 7]), "test": np.array([8, 9])},
        {"train": np.array([2, 3, 4, 5, 6, 7]), "val": np.array([8, 9]), "test": np.array([0, 1])},
        {"train": np.array([0, 1, 6, 7, 8, 9]), "val": np.array([2, 3]), "test": np.array([4, 5])},
    ]
    return items, splits


def _run(monkeypatch: pytest.MonkeyPatch, curve: Callable[[np.ndarray], np.ndarray], **kwargs: Any):
    """fit_and_select on GRID with the scripted curve -> (script, its five return values)."""
    script = Script(curve)
    monkeypatch.setattr(alpha_grid, "fit_split_paths", script.fit)
    monkeypatch.setattr(alpha_grid, "val_srcc_curve", script.val)
    items, splits = _items()
    out = fit_and_select(np.zeros((20, 3)), np.zeros(20), items, splits, GRID, **kwargs)
    return script, out


def _peak(at: float) -> Callable[[np.ndarray], np.ndarray]:
    """A median curve with its maximum (0.9) at alpha `at`, falling off in log alpha."""
    return lambda a: 0.9 - 0.01 * (np.log10(a) - np.log10(at)) ** 2


def _grids(script: Script) -> list[list[float]]:
    """The alpha grids fitted, in order."""
    return [f["alphas"].tolist() for f in script.fits]


# ------------------------------------------------------------------------------------------ inside the grid
def test_an_inside_optimum_is_fitted_once_with_the_defaults(monkeypatch, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="iqa_bench.eval.alpha_grid"):
        script, (paths, val_srcc, best, med, alphas) = _run(monkeypatch, _peak(0.1))
    assert _grids(script) == [GRID.tolist()] and caplog.text == ""
    fit = script.fits[0]
    assert fit["solver"] == "auto" and fit["standardize"] is True  # the defaults reach the fits
    items, splits = _items()
    for rows, sp in zip(fit["rows"], splits):  # the rows of the train items, not the items
        np.testing.assert_array_equal(rows, items.rows(sp["train"]))
    for got, sp in zip(script.val_items, splits):  # val items scored, test items never
        np.testing.assert_array_equal(got, sp["val"])
    assert paths is script and best == 2 and alphas is GRID
    np.testing.assert_allclose(med, _peak(0.1)(GRID), rtol=0, atol=1e-15)
    np.testing.assert_allclose(val_srcc, _peak(0.1)(GRID)[None, :] + np.array(OFFSETS)[:, None], atol=1e-15)


def test_solver_and_standardisation_are_passed_on(monkeypatch) -> None:
    script, _ = _run(monkeypatch, _peak(0.1), solver="exact", standardize=False)
    assert script.fits[0]["solver"] == "exact" and script.fits[0]["standardize"] is False


# ------------------------------------------------------------------------------------------------- widening
@pytest.mark.parametrize(
    "at,side,grid",
    [
        (1e3, "high", [1e-3, 1e-2, 0.1, 1.0, 10.0, 1e2, 1e3, 1e4]),
        (1e-5, "low", [1e-6, 1e-5, 1e-4] + GRID.tolist()),
    ],
)
def test_widening_once_brackets_an_optimum_beyond_one_edge(monkeypatch, caplog, at, side, grid) -> None:
    with caplog.at_level(logging.INFO, logger="iqa_bench.eval.alpha_grid"):
        script, (_, val_srcc, best, med, alphas) = _run(
            monkeypatch, _peak(at), grid_edge="widen", context="LIVE/enc: "
        )
    assert _grids(script) == [GRID.tolist(), pytest.approx(grid, rel=1e-12)]
    np.testing.assert_allclose(alphas, grid, rtol=1e-12)
    assert alphas[best] == pytest.approx(at) and val_srcc.shape == (3, 8)
    np.testing.assert_allclose(med, _peak(at)(alphas), atol=1e-15)
    lo, hi = ("1e-06", "10") if side == "low" else ("0.001", "1e+04")
    assert caplog.messages == [
        f"LIVE/enc: best median val SRCC on the alpha grid's edge ({side}): widened to [{lo}, {hi}]"
    ]


def test_a_flat_curve_widens_both_edges_once_then_stops(monkeypatch, caplog) -> None:
    """Ties at both edges: both are widened together; no gain on either side closes both (ridge limits)."""
    with caplog.at_level(logging.INFO, logger="iqa_bench.eval.alpha_grid"):
        script, (_, _, best, _, alphas) = _run(monkeypatch, lambda a: np.full(a.size, 0.5), grid_edge="widen")
    assert len(script.fits) == 2 and best == 0
    np.testing.assert_allclose(alphas, np.geomspace(1e-6, 1e4, 11), rtol=1e-12)
    assert caplog.messages == [
        "best median val SRCC on the alpha grid's edge (low/high): widened to [1e-06, 1e+04]"
    ]


def test_a_plateau_beyond_the_edge_is_closed_after_one_widening(monkeypatch) -> None:
    """The curve stops rising at the edge (ties only, within 1e-12): the extension gains nothing, so the edge is
    a plateau and the widened grid is kept without an error."""
    script, (_, _, best, med, alphas) = _run(
        monkeypatch, lambda a: 0.5 + 0.1 * np.minimum(np.log10(a), 1.0) + 1e-13 * (a > 10), grid_edge="widen"
    )
    assert len(script.fits) == 2 and alphas.size == 8
    assert alphas[best] == pytest.approx(100.0)  # the pick itself has no tie tolerance: 1e-13 better wins


def test_nan_in_the_extension_is_no_gain(monkeypatch) -> None:
    """A plateau whose extension has an undefined (nan) median: still closed, not widened again."""

    def curve(a: np.ndarray) -> np.ndarray:
        return np.where(np.isclose(a, 1e2), np.nan, 0.5 + 0.1 * np.minimum(np.log10(a), 1.0))

    script, (_, _, best, _, alphas) = _run(monkeypatch, curve, grid_edge="widen")
    assert len(script.fits) == 2 and alphas.size == 8 and alphas[best] == pytest.approx(10.0)


@pytest.mark.parametrize("side", ["high", "low"])
def test_an_ever_rising_curve_fails_after_max_widen_widenings(monkeypatch, side) -> None:
    """Every widening gains (and one interior median is nan): the default max_widen (3) widenings, then a
    one-line UserError naming the edge, the grid and the count."""
    sign = 1.0 if side == "high" else -1.0

    def curve(a: np.ndarray) -> np.ndarray:
        return np.where(np.isclose(a, 0.1), np.nan, 0.01 * sign * np.log10(a))

    script = Script(curve)
    monkeypatch.setattr(alpha_grid, "fit_split_paths", script.fit)
    monkeypatch.setattr(alpha_grid, "val_srcc_curve", script.val)
    items, splits = _items()
    edge, grid = (
        ("largest alpha 1e+10", "[0.001, 1e+10]")
        if side == "high"
        else ("smallest alpha 1e-12", "[1e-12, 10]")
    )
    message = (
        f"the best median val SRCC is reached at the {edge} of the alpha grid {grid} after widening it 3 "
        "time(s), so the grid may not bracket the optimum; set evaluator.alpha_min/alpha_max (or "
        "evaluator.max_widen)"
    )
    with pytest.raises(UserError) as err:
        fit_and_select(np.zeros((20, 3)), np.zeros(20), items, splits, GRID, grid_edge="widen")
    assert str(err.value) == message
    assert [len(g) for g in _grids(script)] == [5, 8, 11, 14]


def test_max_widen_counts_widenings(monkeypatch) -> None:
    rising = lambda a: 0.01 * np.log10(a)  # noqa: E731
    with pytest.raises(UserError, match=r"alpha grid \[0\.001, 10\], so the grid"):
        _run(monkeypatch, rising, grid_edge="widen", max_widen=0)
    with pytest.raises(UserError, match=r"alpha grid \[0\.001, 1e\+04\] after widening it 1 time\(s\)"):
        _run(monkeypatch, rising, grid_edge="widen", max_widen=1)


def test_undefined_val_srcc_everywhere_takes_the_largest_alpha(monkeypatch) -> None:
    """Constant val predictions for every alpha (nan SRCC): a warning, the largest alpha, no edge to widen."""
    with pytest.warns(RuntimeWarning, match=r"using the largest alpha$"):
        script, (_, _, best, med, alphas) = _run(
            monkeypatch, lambda a: np.full(a.size, np.nan), grid_edge="error"
        )
    assert len(script.fits) == 1 and best == 4 and alphas[best] == 10.0 and np.isnan(med).all()


# ----------------------------------------------------------------------------------------- error and warn
def test_error_policy_fails_on_the_first_fit(monkeypatch) -> None:
    with pytest.raises(UserError) as err:
        script, _ = _run(monkeypatch, _peak(1e3), grid_edge="error", context="ds: ")
    assert str(err.value) == (
        "ds: the best median val SRCC is reached at the largest alpha 10 of the alpha grid [0.001, 10], so the "
        "grid may not bracket the optimum; set evaluator.alpha_min/alpha_max (or evaluator.max_widen)"
    )


def test_warn_is_the_default_and_keeps_the_edge_pick(monkeypatch, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="iqa_bench.eval.alpha_grid"):
        script, (_, _, best, _, alphas) = _run(monkeypatch, _peak(1e-5))
    assert len(script.fits) == 1 and alphas is GRID and best == 0
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert caplog.messages == [
        "the best median val SRCC is reached at the smallest alpha 0.001 of the alpha grid [0.001, 10], so the "
        "grid may not bracket the optimum; set evaluator.alpha_min/alpha_max (or evaluator.max_widen)"
    ]


def test_policy_is_checked_before_fitting(monkeypatch) -> None:
    with pytest.raises(UserError, match=r"^evaluator\.grid_edge must be one of"):
        _run(monkeypatch, _peak(0.1), grid_edge="widen-more")
    with pytest.raises(UserError, match=r"^evaluator\.max_widen must be >= 0, got -1$"):
        _run(monkeypatch, _peak(0.1), grid_edge="widen", max_widen=-1)


# ----------------------------------------------------------------------------------------------- open edges
def test_open_edges_needs_three_alphas_and_ignores_nan() -> None:
    three = np.array([0.1, 1.0, 10.0])
    assert open_edges(np.array([0.3, 0.2, 0.1]), three) == ["low"]
    assert open_edges(np.array([0.1, 0.2, 0.3]), three) == ["high"]
    assert open_edges(np.array([0.3, 0.2, 0.3]), three) == ["low", "high"]
    assert open_edges(np.array([0.1, 0.3]), three[:2]) == []
    assert open_edges(np.array([]), np.array([])) == []  # an empty curve has no maximum: no edge, no error
    # nan medians are below everything: neither a nan edge nor a nan elsewhere opens an edge
    assert open_edges(np.array([np.nan, 0.2, 0.5, 0.3]), np.geomspace(0.1, 100, 4)) == []
    assert open_edges(np.array([0.2, np.nan, 0.1, 0.3]), np.geomspace(0.1, 100, 4)) == ["high"]


def test_open_edges_ties_and_unsorted_grids() -> None:
    a = np.geomspace(0.1, 100, 4)
    assert open_edges(np.array([0.5 - 5e-13, 0.1, 0.2, 0.5]), a) == ["low", "high"]  # within 1e-12: a tie
    assert open_edges(np.array([0.5 - 5e-12, 0.1, 0.2, 0.5]), a) == ["high"]
    # a descending grid: index 0 is the largest alpha
    assert open_edges(np.array([0.5, 0.1, 0.2, 0.3]), a[::-1].copy()) == ["high"]
    assert open_edges(np.array([0.1, 0.2, 0.3, 0.5]), a[::-1].copy()) == ["low"]
    assert widen_grid(a[::-1], "low")[0] == pytest.approx(1e-4)  # sorted before widening
