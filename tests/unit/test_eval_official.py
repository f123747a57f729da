"""The official ARNIQA protocol (raw features, fixed grid) against a plain per-alpha scikit-learn loop, the
grid-edge policy of the standardised variant, official splits, and the sweep objective (validation only)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from scipy import stats

from iqa_bench.data.eval_sets import EvalSet
from iqa_bench.errors import UserError
from iqa_bench.eval.alpha_grid import open_edges, widen_grid
from iqa_bench.eval.official_splits import official_split, split_for
from iqa_bench.eval.protocol import ridge_probe
from iqa_bench.eval.runner import RidgeEvaluator
from iqa_bench.eval.splits import make_splits
from iqa_bench.train import objective

sklearn_linear = pytest.importorskip("sklearn.linear_model")


def _crop_features(n_items: int = 90, crops: int = 5, d: int = 24, seed: int = 0):
    """(X (n_items*crops, d), y per row, item id per row, item scores): ARNIQA-like rows, 5 crops per image,
    features L2-normalised as ARNIQA's (small raw scale, where alpha matters)."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n_items, d))
    X = np.repeat(latent, crops, axis=0) + 0.5 * rng.normal(size=(n_items * crops, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    score = latent[:, :4].sum(axis=1) + 0.8 * rng.normal(size=n_items)
    ids = np.repeat(np.arange(n_items), crops)
    return X, score[ids], ids, score


def _official_loop(X, item_scores, ids, splits, alphas):
    """ARNIQA's test.py written out: Ridge(alpha) per alpha and split on the crops of the train images, val/test
    prediction = mean over an image's crops, alpha = argmax of the median val SRCC, then SRCC/PLCC per split."""
    rows_of = {i: np.flatnonzero(ids == i) for i in np.unique(ids)}

    def fit_predict(alpha, train, other):
        tr = np.concatenate([rows_of[i] for i in train])
        reg = sklearn_linear.Ridge(alpha=alpha).fit(X[tr], item_scores[ids[tr]])
        return np.array([reg.predict(X[rows_of[i]]).mean() for i in other])

    srocc_all = [
        [stats.spearmanr(fit_predict(a, sp["train"], sp["val"]), item_scores[sp["val"]])[0] for sp in splits]
        for a in alphas
    ]
    best = alphas[int(np.argmax([np.median(s) for s in srocc_all]))]
    srcc, plcc = [], []
    for sp in splits:
        pred = fit_predict(best, sp["train"], sp["test"])
        srcc.append(stats.spearmanr(pred, item_scores[sp["test"]])[0])
        plcc.append(stats.pearsonr(pred, item_scores[sp["test"]])[0])
    return best, np.median(srcc), np.median(plcc), srcc


def test_official_protocol_equals_a_plain_sklearn_ridge_loop():
    X, y, ids, item_scores = _crop_features()
    splits = make_splits(len(item_scores), None, n_splits=4, seed=3)
    alphas = np.geomspace(1e-3, 1e3, 100)  # ARNIQA's grid
    best, srcc, plcc, per_split = _official_loop(X, item_scores, ids, splits, alphas)
    res = ridge_probe(
        X.astype(np.float32),
        y,
        item_ids=ids,
        alphas=alphas,
        splits=splits,
        standardize=False,
        grid_edge="warn",
    )
    assert res.alpha == pytest.approx(best, rel=1e-12)
    assert 1e-3 < best < 1e3  # an interior pick: the comparison really exercises the selection
    np.testing.assert_allclose([r["srcc"] for r in res.per_split], per_split, atol=1e-9)
    assert res.summary["srcc"] == pytest.approx(srcc, abs=1e-9)
    assert res.summary["plcc"] == pytest.approx(plcc, abs=1e-6)


def test_standardised_protocol_differs_from_the_official_one_on_the_same_features():
    """Guards the switch itself: on L2-normalised features the two protocols choose different alphas."""
    X, y, ids, _ = _crop_features()
    kw = dict(item_ids=ids, n_splits=4, seed=3, grid_edge="warn")
    raw = ridge_probe(X, y, standardize=False, **kw)
    std = ridge_probe(X, y, standardize=True, **kw)
    assert raw.alpha != std.alpha


# ----------------------------------------------------------------------------------------------- grid edges
def _shrinkage_data(seed: int = 0):
    """Many weak features and a noisy target: strong shrinkage (alpha ~ 1e2) is best on standardised features."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, 60))
    y = X @ rng.normal(size=60) * 0.3 + rng.normal(size=200) * 3
    return X, y


def test_open_edges_and_widening_keep_the_grid_points():
    a = np.geomspace(1e-3, 1e-1, 5)
    assert open_edges(np.array([0.1, 0.2, 0.3, 0.2, 0.1]), a) == []
    assert open_edges(np.array([0.1, 0.2, 0.3, 0.4, 0.5]), a) == ["high"]
    assert open_edges(np.array([0.5, 0.5, 0.5, 0.5, 0.5]), a) == ["low", "high"]
    assert open_edges(np.full(5, np.nan), a) == []
    w = widen_grid(a, "high")
    np.testing.assert_allclose(w[: a.size], a)
    assert w.max() >= 1e2 * 0.999 and np.allclose(np.diff(np.log(w)), np.log(a[1] / a[0]))
    assert widen_grid(a, "low").min() <= 1e-6 * 1.001


def test_edge_pick_fails_with_one_line_under_error_policy():
    X, y = _shrinkage_data()
    with pytest.raises(
        UserError, match=r"^ds/enc: the best median val SRCC .* largest alpha 0\.1 .*alpha_max"
    ):
        ridge_probe(
            X, y, n_splits=5, alphas=np.geomspace(1e-3, 1e-1, 10), grid_edge="error", context="ds/enc: "
        )


def test_widen_brackets_the_optimum_or_fails_when_not_allowed():
    X, y = _shrinkage_data()
    small = np.geomspace(1e-3, 1e-1, 10)
    res = ridge_probe(X, y, n_splits=5, alphas=small, grid_edge="widen")
    assert res.alphas.max() > 1.0 and res.alpha > 0.1  # the chosen alpha lies beyond the given grid ...
    assert open_edges(res.val_srcc, res.alphas) == []  # ... and strictly inside the widened one
    with pytest.raises(UserError, match=r"alpha grid \[0.001, 0.1\], so"):
        ridge_probe(X, y, n_splits=5, alphas=small, grid_edge="widen", max_widen=0)
    full = ridge_probe(X, y, n_splits=5, alphas=np.geomspace(1e-3, 1e5, 60), grid_edge="widen")
    assert full.alphas.size == 60  # already bracketed: the grid is left alone


def test_warn_policy_keeps_the_edge_pick_and_says_so(caplog):
    X, y = _shrinkage_data()
    small = np.geomspace(1e-3, 1e-1, 10)
    with caplog.at_level(logging.WARNING):
        res = ridge_probe(X, y, n_splits=5, alphas=small, grid_edge="warn")
    assert res.alphas.size == 10
    assert "may not bracket the optimum" in caplog.text


# ------------------------------------------------------------------------------------------ official splits
def test_official_split_keeps_test_and_carves_val_from_train():
    parts = np.array(["train"] * 80 + ["test"] * 20 + [None] * 5, dtype=object)
    sp = official_split(parts, None, (0.7, 0.1, 0.2), seed=0)
    np.testing.assert_array_equal(sp["test"], np.arange(80, 100))
    assert sp["val"].size == 10 and sp["train"].size == 70  # 0.1 / 0.8 of the official train part
    assert set(sp["train"]) | set(sp["val"]) == set(range(80)) and not set(sp["train"]) & set(sp["val"])
    given = np.array(["train"] * 6 + ["val"] * 3 + ["test"] * 3, dtype=object)
    sp = official_split(given, None, (0.7, 0.1, 0.2), seed=0)
    np.testing.assert_array_equal(sp["val"], [6, 7, 8])  # an official val part is used as is
    with pytest.raises(UserError, match="official split has 0 train"):
        official_split(np.array(["test"] * 5, dtype=object), None, (0.7, 0.1, 0.2), 0, "x")


class _Toy(EvalSet):
    """Tiny images whose mean brightness is the quality signal; optional official parts."""

    def __init__(self, scores: np.ndarray, parts: np.ndarray | None) -> None:
        rng = np.random.default_rng(1)
        self.bright = scores + 0.3 * rng.normal(size=scores.size)
        super().__init__(
            name="toy", scores=scores, refs=None, labels=[str(i) for i in range(scores.size)], parts=parts
        )

    def __getitem__(self, i: int) -> torch.Tensor:
        v = int(np.clip(128 + 40 * self.bright[i], 0, 255))
        g = torch.Generator().manual_seed(i)
        return (
            (torch.full((3, 16, 16), v) + torch.randint(-5, 6, (3, 16, 16), generator=g)).clamp(0, 255).byte()
        )


class _Enc:
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x.mean((1, 2, 3)), x.std((1, 2, 3)), x[:, 0].mean((1, 2))], dim=1)


def test_split_for_maps_rows_to_dataset_parts():
    parts = np.array(["train", "test", "train", "val", "test"], dtype=object)
    ds = _Toy(np.linspace(0, 1, 5), parts)
    kind, (sp,) = split_for(ds, np.array([0, 1, 2, 3, 4]), False, "official", (0.7, 0.1, 0.2), 0)
    assert kind == "official" and sp["test"].tolist() == [1, 4] and sp["val"].tolist() == [3]
    kind, (sp,) = split_for(ds, np.repeat(np.arange(5), 5), True, "official", (0.7, 0.1, 0.2), 0)
    assert sp["train"].tolist() == [0, 2]
    assert split_for(ds, np.arange(5), False, "random", (0.7, 0.1, 0.2), 0) == ("random", None)
    assert (
        split_for(_Toy(np.zeros(5), None), np.arange(5), False, "official", (0.7, 0.1, 0.2), 0)[0] == "random"
    )


def _rows(ds: EvalSet, splits: str) -> list[dict]:
    ev = RidgeEvaluator(scales=[1.0], splits=splits, n_splits=3, fit_regressor=False, grid_edge="warn")
    rows = ev.run({"pretrained": _Enc()}, {"toy": ds})
    return [{**r, "ckpt": r["encoder"]} for r in rows]


def test_official_split_through_the_evaluator_and_the_objective_ignores_test_labels():
    n = 120
    rng = np.random.default_rng(0)
    scores = rng.uniform(size=n)
    parts = np.array(["train"] * 90 + ["test"] * 30, dtype=object)
    rows = _rows(_Toy(scores, parts), "official")
    med = [r for r in rows if r["split"] == "median"][0]
    assert med["splits"] == "official" and med["n_test"] == 30 and med["n_splits"] == 1
    # the objective is the validation SRCC; scrambling the test labels changes the test SRCC, not the objective
    scrambled = scores.copy()
    scrambled[90:] = rng.permutation(scrambled[90:])[::-1] * 5
    rows2 = _rows(_Toy(scrambled, parts), "official")
    med2 = [r for r in rows2 if r["split"] == "median"][0]
    assert med2["srcc"] != pytest.approx(med["srcc"])
    assert objective(rows2) == objective(rows) == pytest.approx(med["val_srcc"])


def test_arniqa_paper_uses_the_official_protocol(compose_cfg):
    from iqa_bench.utils.instantiate import instantiate

    ev = instantiate(compose_cfg(["experiment=arniqa_paper"]).evaluator)
    assert ev.standardize is False and ev.grid_edge == "warn" and ev.crop_size == 224
    np.testing.assert_allclose(ev.alphas, np.geomspace(1e-3, 1e3, 100))
    assert ev.splits == "official" and list(ev.scales) == [1.0, 0.5]
    default = instantiate(compose_cfg([]).evaluator)
    assert default.standardize is True and default.grid_edge == "widen" and default.splits == "random"
