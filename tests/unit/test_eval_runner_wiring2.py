"""`RidgeEvaluator` wiring, continued (see test_eval_runner_wiring.py): the alpha grid and standardisation with an
interior best alpha, the extraction log line, probe errors wrapped with set and encoder, the size preflight of the
10-split protocol."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from test_eval_runner_wiring import _Enc, _fast_logistic_plcc, _Set  # noqa: F401 (fixture)

from iqa_bench.errors import UserError
from iqa_bench.eval import runner as runner_mod
from iqa_bench.eval.features import extract_features
from iqa_bench.eval.official_splits import split_for
from iqa_bench.eval.preflight import check_protocol_data
from iqa_bench.eval.protocol import fit_final_regressor, ridge_probe
from iqa_bench.eval.runner import RidgeEvaluator


@pytest.mark.parametrize("standardize", [True, False])
def test_alpha_grid_and_standardisation_reach_the_probe(standardize: bool) -> None:
    """A grid that does not reach down to the default's 1e-3 (where these features' best alpha would lie): every
    chosen alpha is one of the evaluator's own grid, and the rows equal a direct `ridge_probe` with the same
    standardisation (standardised and raw features give different predictions)."""
    ds = _Set("a", n_refs=10, per_ref=4)
    grid = np.geomspace(0.05, 20.0, 5)
    ev = RidgeEvaluator(
        scales=(1.0,),
        n_splits=2,
        alpha_min=0.05,
        alpha_max=20.0,
        num_alphas=5,
        grid_edge="warn",
        standardize=standardize,
    )
    rows = ev.run({"m": _Enc()}, {"a": ds})
    x = extract_features({"m": _Enc()}, ds, scales=(1.0,))[0]["m"]
    ref = ridge_probe(
        x, ds.scores, ds.refs, n_splits=2, alphas=grid, grid_edge="warn", standardize=standardize
    )
    other = ridge_probe(
        x, ds.scores, ds.refs, n_splits=2, alphas=grid, grid_edge="warn", standardize=not standardize
    )
    per_split = [r for r in rows if r["split"] != "median"]
    assert all(np.isclose(grid, r["alpha"], rtol=1e-12).any() for r in per_split)
    got = ev.predictions[("m", "a")]["pred"]
    want = np.concatenate([p for _, p, _ in ref.test_predictions])
    np.testing.assert_allclose(got, want, rtol=1e-9)
    assert not np.allclose(got, np.concatenate([p for _, p, _ in other.test_predictions]), rtol=1e-6)
    want = fit_final_regressor(x, ds.scores, ref.alpha, standardize=standardize).predict(x)
    np.testing.assert_allclose(ev.regressors[("m", "a")].predict(x), want, rtol=1e-9)


def test_feature_extraction_is_logged(caplog) -> None:
    ev = RidgeEvaluator(scales=(1.0,), n_splits=2, num_alphas=3, grid_edge="warn", fit_regressor=False)
    with caplog.at_level(logging.INFO, logger="iqa_bench.eval.runner"):
        ev.run({"m": _Enc(), "n": _Enc()}, {"a": _Set("a", n_refs=5, per_ref=2)})
    assert "features of 10 images of a for ['m', 'n']" in caplog.messages


def test_probe_value_errors_become_one_line_user_errors(monkeypatch) -> None:
    def bad(*args, **kwargs):
        raise ValueError("features contain NaN")

    monkeypatch.setattr(runner_mod, "ridge_probe", bad)
    ev = RidgeEvaluator(scales=(1.0,), n_splits=2, num_alphas=3)
    with pytest.raises(UserError) as err:
        ev.run({"enc": _Enc()}, {"set": _Set("set")})
    assert str(err.value) == "set/enc: features contain NaN"
    assert err.value.__cause__ is None and err.value.__suppress_context__


def _record_extraction(monkeypatch) -> list[str]:
    extracted: list[str] = []
    real = runner_mod.extract_cached

    def spy(encoders, ds, **kw):
        extracted.append(ds.name)
        return real(encoders, ds, **kw)

    monkeypatch.setattr(runner_mod, "extract_cached", spy)
    return extracted


def test_sets_too_small_for_the_splits_are_refused_before_extraction(monkeypatch) -> None:
    """Outside the cross-dataset protocol every set's size is checked against the splits (not only its scores),
    before any feature is extracted."""
    extracted = _record_extraction(monkeypatch)
    ev = RidgeEvaluator(scales=(1.0,), n_splits=1, ratios=(0.6, 0.2, 0.2), num_alphas=3, grid_edge="warn")
    sets = {"a": _Set("a", n_refs=10, per_ref=1, refs=False), "s": _Set("s", n_refs=5, per_ref=1, refs=False)}
    with pytest.raises(UserError) as err:
        ev.run({"m": _Enc()}, sets)
    assert str(err.value) == (
        "s: split 0 would have 1 validation and 1 test image(s) out of 5; the protocol needs >= 2 of each "
        "(more images or larger evaluator.ratios)"
    )
    assert extracted == []


class _Plain:
    """A set that is not an `EvalSet`: scores, images and undecodable items, refs unless `refs=False`, no `labels`
    or `parts` attribute."""

    def __init__(self, inner: _Set, refs: bool = True) -> None:
        self.inner, self.scores = inner, inner.scores
        if refs:
            self.refs = inner.refs

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int):
        return self.inner[i]

    def failed_items(self) -> list[int]:
        return self.inner.failed_items()


def test_sets_without_a_labels_attribute_name_images_by_index(caplog) -> None:
    ds = _Plain(_Set("a", n_refs=10, per_ref=4, failed=(3,)))
    ev = RidgeEvaluator(scales=(1.0,), n_splits=2, num_alphas=3, grid_edge="warn", fit_regressor=False)
    with caplog.at_level(logging.WARNING, logger="iqa_bench.eval.runner"):
        ev.run({"m": _Enc()}, {"p": ds})  # type: ignore[dict-item]
    assert (
        "p: 1 image(s) could not be decoded and are excluded from the evaluation (e.g. 3)" in caplog.messages
    )
    pred = ev.predictions[("m", "p")]
    assert 3 not in pred["item"] and pred["label"] == [str(i) for i in pred["item"]]


def test_references_and_official_parts_are_checked_before_extraction(monkeypatch) -> None:
    extracted = _record_extraction(monkeypatch)
    ev = RidgeEvaluator(scales=(1.0,), n_splits=1, ratios=(0.6, 0.2, 0.2), num_alphas=3, grid_edge="warn")
    two_refs = _Set(
        "r", n_refs=2, per_ref=10
    )  # 20 images: enough by image, not for reference-disjoint splits
    check_protocol_data("r", two_refs.scores, None, len(two_refs), ev)
    with pytest.raises(UserError) as want:
        check_protocol_data("r", two_refs.scores, two_refs.refs, len(two_refs), ev)
    with pytest.raises(UserError) as err:
        ev.run({"m": _Enc()}, {"r": two_refs})
    assert str(err.value) == str(want.value)
    official = RidgeEvaluator(scales=(1.0,), splits="official", num_alphas=3, grid_edge="warn")
    no_train = _Set("o", n_refs=10, per_ref=1, refs=False)
    no_train.parts = np.array(["test"] * 10, dtype=object)
    with pytest.raises(UserError) as err:
        official.run({"m": _Enc()}, {"o": no_train})
    assert str(err.value).startswith("o: the official split has 0 train and 10 test image(s)")
    assert extracted == []


def test_official_split_with_crops_equals_a_direct_probe_on_that_split() -> None:
    """The official split is built on the probe's items (the unique image ids under crops), with the evaluator's
    ratios and seed for the validation part carved from the official train part."""
    ds = _Set("a", n_refs=10, per_ref=4)
    ds.parts = np.array(["train"] * 28 + ["test"] * 12, dtype=object)  # references 0-6 / 7-9
    ratios, grid = (0.6, 0.2, 0.2), np.geomspace(1e-3, 1e3, 4)
    ev = RidgeEvaluator(
        scales=(1.0,), crop_size=16, splits="official", ratios=ratios, seed=3, num_alphas=4, grid_edge="warn"
    )
    rows = ev.run({"m": _Enc()}, {"a": ds})
    x, ids = extract_features({"m": _Enc()}, ds, scales=(1.0,), crop_size=16)
    kind, fixed = split_for(ds, ids, True, "official", ratios, 3)
    assert kind == "official" and fixed is not None
    assert split_for(ds, ids, True, "official", ratios, 4)[1][0]["val"].tolist() != fixed[0]["val"].tolist()
    ref = ridge_probe(
        x["m"],
        ds.scores[ids],
        ds.refs[ids],
        ratios=ratios,
        alphas=grid,
        seed=3,
        item_ids=ids,
        splits=fixed,
        grid_edge="warn",
    )
    (got,) = [r for r in rows if r["split"] != "median"]
    assert got["splits"] == "official"
    for k in ("srcc", "plcc", "alpha", "val_srcc", "n_train", "n_val", "n_test"):
        assert got[k] == pytest.approx(ref.per_split[0][k], rel=1e-9, abs=1e-12), k
    assert ev.predictions[("m", "a")]["item"] == ref.items[ref.test_predictions[0][0]].tolist()


def test_cross_dataset_test_sets_need_valid_scores_only(monkeypatch) -> None:
    """A test set of the cross-dataset protocol is not split: 3 images (too few for a held-out part) and no `refs`
    attribute are fine; its scores are still checked before any extraction."""
    ev = RidgeEvaluator(scales=(1.0,), num_alphas=3, grid_edge="warn", train_on="a", fit_regressor=False)
    tiny = _Plain(_Set("b", n_refs=3, per_ref=1, seed=1, refs=False), refs=False)
    with pytest.raises(UserError):  # the same set as the one fitted on: too small
        check_protocol_data("b", tiny.scores, None, len(tiny), ev)
    rows = ev.run({"m": _Enc()}, {"a": _Set("a"), "b": tiny})  # type: ignore[dict-item]
    assert [(r["dataset"], r["n_test"]) for r in rows] == [("b", 3)]
    assert ev.predictions[("m", "b")]["label"] == ["0", "1", "2"]
    extracted = _record_extraction(monkeypatch)
    tiny.scores = np.full(3, 2.0)
    with pytest.raises(UserError, match=r"^b: all 3 scores are equal \(2\)"):
        ev.run({"m": _Enc()}, {"a": _Set("a"), "b": tiny})  # type: ignore[dict-item]
    assert extracted == []
