"""`RidgeEvaluator` wiring: every constructor check at its boundary, every setting reaching the feature extraction
and the probe (results equal to a direct `ridge_probe` / `cross_dataset_fit` on the same features), reference ids
reaching the split, undecodable images excluded and named, predictions mapped back to dataset items."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
import torch

from iqa_bench.data.eval_sets import EvalSet
from iqa_bench.errors import ConfigError, UserError
from iqa_bench.eval import metrics as metrics_mod
from iqa_bench.eval import runner as runner_mod
from iqa_bench.eval.cache import FeatureCache
from iqa_bench.eval.cross import cross_dataset_fit
from iqa_bench.eval.features import extract_features
from iqa_bench.eval.protocol import fit_final_regressor, ridge_probe
from iqa_bench.eval.runner import RidgeEvaluator


class _Set(EvalSet):
    """`n_refs` x `per_ref` 12x12 images whose brightness and noise follow a hidden quality; `failed` items are
    reported by `failed_items()` (as an on-disk set reports images it could not decode)."""

    def __init__(
        self,
        name: str,
        n_refs: int = 8,
        per_ref: int = 4,
        seed: int = 0,
        failed: tuple[int, ...] = (),
        refs: bool = True,
        labels: bool = True,
        scores: np.ndarray | None = None,
    ) -> None:
        n = n_refs * per_ref
        self.quality = np.random.default_rng(seed).uniform(0, 1, n)
        self.seed, self.failed = seed, list(failed)
        super().__init__(
            name=name,
            scores=self.quality * 10 + 1 if scores is None else np.asarray(scores, dtype=np.float64),
            refs=np.repeat(np.arange(n_refs), per_ref) if refs else None,
            labels=[f"{name}_{i}" for i in range(n)] if labels else None,  # type: ignore[arg-type]
        )

    def __getitem__(self, i: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1000 + i)
        q = float(self.quality[i])
        img = torch.full((3, 12, 12), 60.0 + 150.0 * q) + torch.randn(3, 12, 12, generator=g) * 40 * (1 - q)
        return img.clamp(0, 255).to(torch.uint8)

    def failed_items(self) -> list[int]:
        return self.failed


class _Enc:
    """Per-channel mean and std: features that reveal the hidden quality."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)


@pytest.fixture(autouse=True)
def _fast_logistic_plcc(monkeypatch) -> None:
    """The logistic PLCC's curve fit dominates the run time on these tiny test sets and is not what this file
    checks: plain PLCC stands in for it (for the evaluator and for the reference computations alike)."""
    monkeypatch.setattr(metrics_mod, "_plcc_logistic", metrics_mod._pearson)


def _median(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return next(r for r in rows if r["split"] == "median")


# ------------------------------------------------------------------------------------------- constructor
@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"scales": ()}, "evaluator.scales must be positive numbers, got ()"),
        ({"scales": (1.0, 0.0)}, "evaluator.scales must be positive numbers, got (1.0, 0.0)"),
        ({"crop_size": 15}, "evaluator.crop_size must be null or >= 16, got 15"),
        ({"n_splits": 0}, "evaluator.n_splits must be >= 1, got 0"),
        (
            {"ratios": (0.5, 0.5)},
            "evaluator.ratios must be three positive fractions summing to 1, got (0.5, 0.5)",
        ),
        ({"ratios": (0.7, 0.3, 0.0)}, "evaluator.ratios must be three positive fractions"),
        ({"ratios": (0.7, 0.1, 0.7)}, "evaluator.ratios must be three positive fractions"),
        ({"ratios": (0.7, 0.1, 0.2 + 3e-6)}, "evaluator.ratios must be three positive fractions"),
        ({"alpha_min": 0.0}, "evaluator.alpha_min must be 0 < alpha_min <= alpha_max, got 0.0"),
        (
            {"alpha_min": 10.0, "alpha_max": 1.0},
            "evaluator.alpha_min must be 0 < alpha_min <= alpha_max, got 10.0",
        ),
        ({"num_alphas": 0}, "evaluator.num_alphas must be >= 1, got 0"),
        ({"batch_size": 0}, "evaluator.batch_size must be >= 1, got 0"),
        ({"num_workers": -1}, "evaluator.num_workers must be >= 0, got -1"),
        ({"val_fraction": 0.0}, "evaluator.val_fraction must be in (0, 1), got 0.0"),
        ({"val_fraction": 1.0}, "evaluator.val_fraction must be in (0, 1), got 1.0"),
        ({"splits": "offical"}, "evaluator.splits must be one of ['random', 'official'], got 'offical'"),
        ({"grid_edge": "wide"}, "evaluator.grid_edge must be one of ['widen', 'error', 'warn'], got 'wide'"),
        ({"max_widen": -1}, "evaluator.max_widen must be >= 0, got -1"),
        ({"test_on": ["b"]}, "evaluator.test_on needs evaluator.train_on (the set to fit the regressor on)"),
    ],
)
def test_bad_settings_are_refused_naming_the_key_and_value(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        RidgeEvaluator(**kw)
    assert str(err.value).startswith(message)


def test_boundary_settings_are_accepted() -> None:
    ev = RidgeEvaluator(
        scales=(0.25,),
        crop_size=16,
        n_splits=1,
        ratios=(0.7, 0.1, 0.2 + 5e-7),
        alpha_min=2.0,
        alpha_max=2.0,
        num_alphas=1,
        batch_size=1,
        num_workers=0,
        val_fraction=0.999,
        max_widen=0,
        train_on="a",
        test_on="b",
    )
    assert ev.test_on == ["b"]  # a single name becomes a list
    assert ev.alphas.tolist() == [2.0]
    assert RidgeEvaluator(val_fraction=0.001).val_fraction == 0.001


def test_alpha_grid_is_log_spaced_between_the_bounds() -> None:
    a = RidgeEvaluator(alpha_min=1e-2, alpha_max=1e2, num_alphas=5).alphas
    np.testing.assert_allclose(a, [1e-2, 1e-1, 1.0, 1e1, 1e2], rtol=1e-12)


# ----------------------------------------------------------------------------------- settings reach the probe
def test_every_setting_reaches_the_probe_and_the_regressor() -> None:
    """Rows equal a direct `ridge_probe` with the same (non-default) settings on the extracted features; the
    reference ids are the groups; the deployed regressor is the refit at the chosen alpha."""
    ds = _Set("a", n_refs=10, per_ref=4)
    kw = dict(n_splits=3, ratios=(0.6, 0.2, 0.2), seed=5, standardize=False)
    ev = RidgeEvaluator(
        scales=(1.0, 0.5), alpha_min=1e-3, alpha_max=1e1, num_alphas=6, grid_edge="warn", **kw
    )
    rows = ev.run({"m": _Enc()}, {"a": ds})
    x, ids = extract_features({"m": _Enc()}, ds, scales=(1.0, 0.5))
    ref = ridge_probe(
        x["m"],
        ds.scores,
        ds.refs,
        alphas=np.geomspace(1e-3, 1e1, 6),
        grid_edge="warn",
        **kw,  # type: ignore[arg-type]
    )
    per_split = [r for r in rows if r["split"] != "median"]
    assert [r["split"] for r in per_split] == [0, 1, 2]
    for got, want in zip(per_split, ref.per_split):
        for k in ("srcc", "plcc", "krcc", "alpha", "val_srcc", "n_train", "n_val", "n_test"):
            assert got[k] == pytest.approx(want[k], rel=1e-9, abs=1e-12), k
    med = _median(rows)
    assert med["srcc"] == pytest.approx(ref.summary["srcc"], abs=1e-12) and med["n_splits"] == 3
    for r in rows:
        assert (r["encoder"], r["dataset"], r["protocol"], r["train_on"], r["splits"], r["n_excluded"]) == (
            "m",
            "a",
            "ridge",
            "",
            "random",
            0,
        )
    assert ev.results[("m", "a")].alpha == ref.alpha
    want = fit_final_regressor(x["m"], ds.scores, ref.alpha, standardize=False).predict(x["m"])
    np.testing.assert_allclose(ev.regressors[("m", "a")].predict(x["m"]), want, rtol=1e-9)
    # the test predictions are the probe's, mapped to dataset items, labels and scores
    pred = ev.predictions[("m", "a")]
    for s, (items, p, target) in enumerate(ref.test_predictions):
        sel = [i for i, sp in enumerate(pred["split"]) if sp == s]
        assert [pred["item"][i] for i in sel] == items.tolist()
        np.testing.assert_allclose([pred["pred"][i] for i in sel], p, rtol=1e-9)
        np.testing.assert_allclose([pred["mos"][i] for i in sel], target)
    assert pred["label"] == [f"a_{i}" for i in pred["item"]]


def test_grid_policy_reaches_the_probe_and_its_errors_name_set_and_encoder(monkeypatch) -> None:
    seen: list[dict[str, Any]] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return ridge_probe(*args, **kwargs)

    monkeypatch.setattr(runner_mod, "ridge_probe", spy)
    ev = RidgeEvaluator(
        scales=(1.0,), n_splits=2, num_alphas=3, grid_edge="error", max_widen=7, fit_regressor=False
    )
    try:
        ev.run({"m": _Enc()}, {"a": _Set("a")})
    except UserError as exc:  # an edge pick: the policy's one line, prefixed by set and encoder
        assert str(exc).startswith("a/m: the best median val SRCC")
    assert seen[0]["grid_edge"] == "error" and seen[0]["max_widen"] == 7 and seen[0]["context"] == "a/m: "
    assert seen[0]["item_ids"] is None and seen[0]["splits"] is None
    assert ev.regressors == {}


def test_crops_make_items_of_the_rows_and_map_predictions_to_dataset_items() -> None:
    ds = _Set("a", n_refs=10, per_ref=3, failed=(4,))
    ev = RidgeEvaluator(
        scales=(1.0,), crop_size=16, n_splits=2, ratios=(0.6, 0.2, 0.2), num_alphas=4, grid_edge="warn"
    )
    rows = ev.run({"m": _Enc()}, {"a": ds})
    pred = ev.predictions[("m", "a")]
    assert all(r["n_excluded"] == 1 for r in rows)
    items = pred["item"]
    assert 4 not in items and len(items) == len(set(zip(items, pred["split"])))  # one row per image and split
    np.testing.assert_allclose(pred["mos"], ds.scores[items])
    assert pred["label"] == [f"a_{i}" for i in items]
    for s in (
        0,
        1,
    ):  # reference-disjoint: a test reference appears nowhere else in the split's test rows' refs
        test_refs = {int(ds.refs[i]) for i, sp in zip(items, pred["split"]) if sp == s}
        assert {i for i in range(30) if int(ds.refs[i]) in test_refs} - {4} == {
            i for i, sp in zip(items, pred["split"]) if sp == s
        }
    assert [r["n_test"] for r in rows if r["split"] != "median"] == [
        len([sp for sp in pred["split"] if sp == s]) for s in (0, 1)
    ]


# --------------------------------------------------------------------------------------- feature extraction
def test_extraction_settings_reach_the_cached_extractor(monkeypatch, tmp_path) -> None:
    seen: list[dict[str, Any]] = []
    real = runner_mod.extract_cached

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(runner_mod, "extract_cached", spy)
    common = dict(n_splits=2, num_alphas=3, grid_edge="warn", fit_regressor=False)
    ev = RidgeEvaluator(
        scales=(1.0, 0.5),
        crop_size=16,
        batch_size=7,
        num_workers=0,
        cache_dir=str(tmp_path / "c"),
        progress=True,
        **common,
    )
    ev.run(
        {"m": _Enc()}, {"a": _Set("a")}, "cpu", encoder_keys={"m": "k"}, dataset_keys={"a": "dsk", "b": "x"}
    )
    kw = seen[-1]
    assert (kw["scales"], kw["crop_size"], kw["batch_size"], kw["num_workers"], kw["device"]) == (
        (1.0, 0.5),
        16,
        7,
        0,
        "cpu",
    )
    assert kw["encoder_keys"] == {"m": "k"} and kw["dataset_key"] == "dsk" and kw["progress"] == "a"
    assert isinstance(kw["cache"], FeatureCache) and kw["cache"].root == tmp_path / "c"
    key = FeatureCache(tmp_path / "c").key("k", "dsk", (1.0, 0.5), 16)  # the entry is under the given keys
    assert FeatureCache(tmp_path / "c").path(key).is_file()
    RidgeEvaluator(scales=(1.0,), **common).run({"m": _Enc()}, {"a": _Set("a")})
    assert seen[-1]["cache"] is None and seen[-1]["progress"] is False and seen[-1]["dataset_key"] is None


def test_undecodable_images_are_excluded_and_named(caplog) -> None:
    ds = _Set("a", n_refs=10, per_ref=4, failed=(1, 3, 5, 7, 9, 11))
    ev = RidgeEvaluator(scales=(1.0,), n_splits=2, num_alphas=3, grid_edge="warn")
    with caplog.at_level(logging.WARNING, logger="iqa_bench.eval.runner"):
        rows = ev.run({"m": _Enc()}, {"a": ds})
    msg = "a: 6 image(s) could not be decoded and are excluded from the evaluation (e.g. a_1, a_3, a_5, a_7, a_9)"
    assert msg in caplog.text and "a_11" not in caplog.text
    assert ev.excluded == {"a": 6} and all(r["n_excluded"] == 6 for r in rows)
    pred = ev.predictions[("m", "a")]
    assert not set(pred["item"]) & {1, 3, 5, 7, 9, 11}
    np.testing.assert_allclose(pred["mos"], ds.scores[pred["item"]])
    assert all(r["n_train"] + r["n_val"] + r["n_test"] == 34 for r in rows if r["split"] != "median")
    # without labels, images are named by index (in the warning and in the predictions)
    caplog.clear()
    nolab = _Set("b", n_refs=10, per_ref=4, failed=(2,), labels=False)
    with caplog.at_level(logging.WARNING, logger="iqa_bench.eval.runner"):
        ev.run({"m": _Enc()}, {"b": nolab})
    assert "b: 1 image(s) could not be decoded and are excluded from the evaluation (e.g. 2)" in caplog.text
    pred = ev.predictions[("m", "b")]
    assert pred["label"] == [str(i) for i in pred["item"]]


def test_scores_are_checked_again_after_exclusion_and_probe_errors_name_the_set() -> None:
    scores = np.r_[np.full(30, 3.0), [1.0, 2.0]]  # the two distinct scores are both undecodable
    flat = _Set("a", n_refs=8, per_ref=4, failed=(30, 31), scores=scores)
    ev = RidgeEvaluator(scales=(1.0,), n_splits=2, num_alphas=3, grid_edge="warn")
    with pytest.raises(UserError, match=r"^a: all 30 scores are equal \(3\)"):
        ev.run({"m": _Enc()}, {"a": flat})
    # 10 images pass the preflight (2 val, 2 test); without the 3 undecodable ones a split is too small
    small = _Set("s", n_refs=10, per_ref=1, failed=(0, 1, 2), refs=False)
    ev = RidgeEvaluator(scales=(1.0,), n_splits=1, ratios=(0.6, 0.2, 0.2), num_alphas=3, grid_edge="warn")
    with pytest.raises(UserError, match=r"^s/m: split 0 has 1 val and 1 test item\(s\)"):
        ev.run({"m": _Enc()}, {"s": small})


# ------------------------------------------------------------------------------------------------ cross mode
def test_cross_dataset_settings_groups_and_item_mapping(monkeypatch, tmp_path) -> None:
    seen: list[dict[str, Any]] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append({"args": args, **kwargs})
        return cross_dataset_fit(*args, **kwargs)

    monkeypatch.setattr(runner_mod, "cross_dataset_fit", spy)
    sets = {
        "a": _Set("a", n_refs=10, per_ref=4, failed=(0,)),
        "b": _Set("b", n_refs=2, per_ref=2, seed=1, failed=(1,)),
    }
    kw = dict(val_fraction=0.25, seed=3, cache_dir=str(tmp_path))
    ev = RidgeEvaluator(scales=(1.0,), num_alphas=4, grid_edge="warn", max_widen=5, train_on="a", **kw)  # type: ignore[arg-type]
    # "b" (4 images) is too small for splits: only its scores are checked
    rows = ev.run({"m": _Enc()}, sets, encoder_keys={"m": "k"}, dataset_keys={"a": "ka", "b": "kb"})
    for dk in ("ka", "kb"):  # both sets' features cached under the given keys
        assert FeatureCache(tmp_path).path(FeatureCache(tmp_path).key("k", dk, (1.0,), None)).is_file()
    assert [
        (r["encoder"], r["dataset"], r["train_on"], r["protocol"], r["split"], r["n_train"], r["n_excluded"])
        for r in rows
    ] == [("m", "b", "a", "ridge_cross", "full", 39, 1)]
    s = seen[0]
    assert s["train_groups"].tolist() == sets["a"].refs[1:].tolist() and s["train_item_ids"] is None
    assert (s["grid_edge"], s["max_widen"], s["context"], s["standardize"]) == ("warn", 5, "a/m: ", True)
    assert s["args"][3].tolist() == np.geomspace(1e-3, 1e3, 4).tolist() and s["args"][4:] == (0.25, 3)
    x = {n: extract_features({"m": _Enc()}, ds, scales=(1.0,))[0]["m"] for n, ds in sets.items()}
    keep_a, keep_b = np.arange(1, 40), np.array([0, 2, 3])
    ref = cross_dataset_fit(
        x["a"][keep_a],
        sets["a"].scores[keep_a],
        {"b": (x["b"][keep_b], sets["b"].scores[keep_b])},
        np.geomspace(1e-3, 1e3, 4),
        0.25,
        3,
        train_groups=sets["a"].refs[keep_a],
        grid_edge="warn",
    )
    assert rows[0]["srcc"] == pytest.approx(ref.metrics["b"]["srcc"], abs=1e-12)
    assert rows[0]["alpha"] == ref.alpha
    pred = ev.predictions[("m", "b")]
    # rows mapped back past the excluded one
    assert pred["item"] == [0, 2, 3] and pred["split"] == ["full"] * 3
    assert pred["label"] == ["b_0", "b_2", "b_3"]
    np.testing.assert_allclose(pred["mos"], sets["b"].scores[[0, 2, 3]])
    np.testing.assert_allclose(pred["pred"], ref.predictions["b"][1], rtol=1e-9)
    assert set(ev.regressors) == {("m", "a")}
    np.testing.assert_allclose(
        ev.regressors[("m", "a")].predict(x["b"]), ref.model.predict(x["b"]), rtol=1e-9
    )


def test_cross_dataset_with_crops_passes_item_ids_and_test_on_defaults(monkeypatch) -> None:
    seen: list[dict[str, Any]] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append({"test_sets": args[2], **kwargs})
        return cross_dataset_fit(*args, **kwargs)

    monkeypatch.setattr(runner_mod, "cross_dataset_fit", spy)
    sets = {
        "a": _Set("a", n_refs=10, per_ref=2, refs=False),  # no references: the held-out part is by image
        "b": _Set("b", n_refs=3, per_ref=2, seed=1),
        "c": _Set("c", seed=2),
    }
    ev = RidgeEvaluator(
        scales=(1.0,), crop_size=16, num_alphas=3, grid_edge="warn", train_on="a", fit_regressor=False
    )
    rows = ev.run({"m": _Enc()}, sets)
    assert [r["dataset"] for r in rows] == ["b", "c"] and ev.regressors == {}
    assert seen[0]["train_item_ids"].tolist() == np.repeat(np.arange(20), 5).tolist()
    assert seen[0]["train_groups"] is None
    assert seen[0]["test_sets"]["b"][2].tolist() == np.repeat(np.arange(6), 5).tolist()
    assert ev.predictions[("m", "b")]["item"] == list(range(6))
    assert rows[0]["n_train"] == 20 and rows[0]["n_test"] == 6


def test_cross_dataset_set_errors() -> None:
    sets = {"a": _Set("a"), "b": _Set("b", seed=1)}
    with pytest.raises(ConfigError) as err:
        RidgeEvaluator(scales=(1.0,), train_on="a", test_on=["b", "koniq"]).run({"m": _Enc()}, sets)
    assert str(err.value) == (
        "evaluator.train_on/test_on: ['koniq'] not among the evaluation sets ['a', 'b'] (add them to data/eval=[...])"
    )
    with pytest.raises(
        ConfigError, match=r"^evaluator.test_on: no set to test on \(give evaluator.test_on=\[...\]\)$"
    ):
        RidgeEvaluator(scales=(1.0,), train_on="a").run({"m": _Enc()}, {"a": sets["a"]})
    tiny = {"a": _Set("a", n_refs=4, per_ref=1), "b": sets["b"]}  # 4 images: a held-out part of 1 image
    with pytest.raises(UserError, match=r"^a: the held-out part \(evaluator.val_fraction=0.1\) has 1 image"):
        RidgeEvaluator(scales=(1.0,), train_on="a").run({"m": _Enc()}, tiny)
