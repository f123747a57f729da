"""Evaluator faults: undecodable images are excluded (also from cached runs), duplicates by resolved path,
degenerate score sets fail before extraction, huge scores keep correct metrics, NaN cache entries are named."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from iqa_bench.data.datasets.csv_folder import CsvFolder
from iqa_bench.errors import UserError
from iqa_bench.eval.cache import FeatureCache
from iqa_bench.eval.metrics import all_metrics
from iqa_bench.eval.protocol import ridge_probe
from iqa_bench.eval.runner import RidgeEvaluator


def _folder(root: Path, n: int = 30, scores: list[float] | None = None, refs: bool = False) -> Path:
    """n grey-level PNGs whose brightness follows the score, and scores.csv (path,mos[,ref])."""
    root.mkdir(parents=True, exist_ok=True)
    scores = list(np.linspace(0.0, 1.0, n)) if scores is None else scores
    rng = np.random.default_rng(0)
    lines = ["path,mos" + (",ref" if refs else "")]
    for i, s in enumerate(scores):
        v = int(40 + 170 * s) + rng.integers(-3, 4, (20, 24, 3))
        Image.fromarray(np.clip(v, 0, 255).astype(np.uint8)).save(root / f"im{i}.png")
        lines.append(f"im{i}.png,{s}" + (",r0" if refs else ""))
    (root / "scores.csv").write_text("\n".join(lines) + "\n")
    return root


class _Enc:
    calls = 0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        _Enc.calls += 1
        return torch.stack([x.mean((1, 2, 3)), x.std((1, 2, 3)), x[:, 1].mean((1, 2))], dim=1)


class _NoCall:
    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - must not run
        raise AssertionError("features were extracted")


def _ev(tmp_path: Path, **kw) -> RidgeEvaluator:
    return RidgeEvaluator(scales=[1.0], n_splits=3, num_alphas=9, cache_dir=str(tmp_path / "cache"), **kw)


def test_undecodable_image_is_excluded_counted_and_warned_from_the_cache_too(tmp_path, caplog):
    root = _folder(tmp_path / "set")
    data = (root / "im7.png").read_bytes()
    (root / "im7.png").write_bytes(data[: len(data) // 2])  # a valid header, truncated pixels
    keys = {"m": {"ckpt": "x"}}
    for run in range(2):  # the second run reads the feature cache and decodes nothing
        ds = CsvFolder(root)
        calls = _Enc.calls
        with caplog.at_level(logging.WARNING):
            caplog.clear()
            ev = _ev(tmp_path)
            rows = ev.run({"m": _Enc()}, {"s": ds}, encoder_keys=keys)
        assert (_Enc.calls > calls) == (run == 0)
        assert "1 image(s) could not be decoded and are excluded" in caplog.text and "im7.png" in caplog.text
        med = [r for r in rows if r["split"] == "median"][0]
        assert med["n_excluded"] == 1 and ev.excluded == {"s": 1}
        assert all(r["n_train"] + r["n_val"] + r["n_test"] == 29 for r in rows if r["split"] != "median")
        pred = ev.predictions[("m", "s")]
        assert (
            7 not in pred["item"] and set(pred["item"]) <= set(range(30)) and "im7.png" not in pred["label"]
        )
        np.testing.assert_allclose(pred["mos"], ds.scores[pred["item"]])  # items are dataset indices
        assert med["srcc"] > 0.9  # the placeholder (grey, with its real score) would drag this down


def test_duplicate_by_relative_and_absolute_path_or_symlink(tmp_path):
    root = _folder(tmp_path / "set", n=4)
    (root / "scores.csv").write_text(f"path,mos\nim0.png,1\nim1.png,2\n{root / 'im0.png'},3\n")
    with pytest.raises(UserError, match=r"duplicate image .*im0\.png.*line 2 and scores\.csv line 4"):
        CsvFolder(root)
    (root / "link.png").symlink_to(root / "im1.png")
    (root / "scores.csv").write_text("path,mos\nim0.png,1\nim1.png,2\nlink.png,3\n")
    with pytest.raises(
        UserError, match=r"duplicate image 'link\.png' is the same file as the one at scores\.csv line 3"
    ):
        CsvFolder(root)


def test_all_equal_scores_fail_before_any_extraction(tmp_path):
    ds = CsvFolder(_folder(tmp_path / "set", scores=[3.0] * 30))
    with pytest.raises(UserError, match=r"^s: all 30 scores are equal \(3\); SRCC/PLCC are undefined"):
        _ev(tmp_path).run({"m": _NoCall()}, {"s": ds})


def test_too_few_rows_for_the_split_protocol_fail_before_any_extraction(tmp_path):
    ds = CsvFolder(_folder(tmp_path / "one_ref", n=3, refs=True))
    with pytest.raises(UserError, match=r"^s: reference-disjoint split impossible: 1 group"):
        _ev(tmp_path).run({"m": _NoCall()}, {"s": ds})
    small = CsvFolder(_folder(tmp_path / "small", n=6))
    with pytest.raises(
        UserError, match=r"^s: split 0 would have 1 validation and 1 test image\(s\) out of 6"
    ):
        _ev(tmp_path).run({"m": _NoCall()}, {"s": small})


def test_scores_near_the_float64_limit_keep_correct_metrics():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 8))
    y = X[:, 0] + 0.3 * rng.normal(size=300)
    base = ridge_probe(X, y, n_splits=3).summary
    huge = ridge_probe(X, y * 1e300, n_splits=3).summary
    tiny = ridge_probe(X, y * 1e-300, n_splits=3).summary
    for k in ("srcc", "plcc", "plcc_logistic", "krcc"):
        assert huge[k] == pytest.approx(base[k], abs=1e-9), k
        assert tiny[k] == pytest.approx(base[k], abs=1e-9), k
    m = all_metrics(y * 1e300, (y + 0.1 * X[:, 1]) * 1e300)
    ref = all_metrics(y, y + 0.1 * X[:, 1])
    assert m["plcc"] == pytest.approx(ref["plcc"], abs=1e-12) and m["plcc"] > 0.9


def test_nan_in_the_feature_cache_names_the_file(tmp_path):
    ds = CsvFolder(_folder(tmp_path / "set"))
    keys = {"m": {"ckpt": "x"}}
    _ev(tmp_path).run({"m": _Enc()}, {"s": ds}, encoder_keys=keys)
    (entry,) = (tmp_path / "cache").rglob("*.npz")
    with np.load(entry) as z:
        feats, ids = z["features"].copy(), z["item_ids"]
    feats[4, 1] = np.nan
    FeatureCache(tmp_path / "cache").save(entry.stem, feats, ids, {})
    with pytest.raises(
        UserError, match=rf"^feature cache {entry} holds NaN/inf features \(1 row\(s\), first row 4\)"
    ):
        _ev(tmp_path).run({"m": _Enc()}, {"s": ds}, encoder_keys=keys)
