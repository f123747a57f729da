"""`evaluate`: checkpoint loading, CLI errors, result files, the feature cache, cross-dataset, saved regressors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from iqa_bench.data.eval_sets import EvalSet
from iqa_bench.errors import ConfigError
from iqa_bench.eval.cache import FeatureCache, dataset_fingerprint
from iqa_bench.eval.features import extract_features
from iqa_bench.eval.regressor import apply_regressor, load_regressor, save_regressor
from iqa_bench.eval.results import RESULT_COLUMNS
from iqa_bench.eval.ridge import fit_ridge
from iqa_bench.eval.runner import RidgeEvaluator
from iqa_bench.utils.instantiate import instantiate
from iqa_bench.utils.resolvers import CONF_DIR, PROJECT_ROOT

TINY_EVAL = [
    "data.eval.builtin_synthetic.distortions=[gaublur,whitenoise]",
    "data.eval.builtin_synthetic.levels=[1,5]",
    "evaluator.n_splits=3",
    "evaluator.num_alphas=7",
    "evaluator.batch_size=48",
    "evaluator.progress=false",
]


# ------------------------------------------------------------------------------------------------- fakes
class FakeSet(EvalSet):
    """`n_refs` x `per_ref` small images whose brightness and noise depend on a hidden quality."""

    def __init__(self, name: str, n_refs: int = 8, per_ref: int = 4, size: int = 24, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        n = n_refs * per_ref
        self.quality = rng.uniform(0, 1, n)
        self.size, self.seed = size, seed
        super().__init__(
            name=name,
            scores=self.quality * 10 + 1,
            refs=np.repeat(np.arange(n_refs), per_ref),
            labels=[f"{name}_{i}" for i in range(n)],
        )

    def __getitem__(self, i: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1000 + i)
        base = torch.full((3, self.size, self.size), 60.0 + 150.0 * float(self.quality[i]))
        noise = torch.randn(3, self.size, self.size, generator=g) * 40 * (1 - float(self.quality[i]))
        return (base + noise).clamp(0, 255).to(torch.uint8)


class CountingEncoder(torch.nn.Module):
    """features = per-channel mean and std (quality-revealing); counts the images it has seen."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += x.shape[0]
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)


def _rows(run_dir):
    return list(csv.DictReader((run_dir / "results.csv").open()))


# ---------------------------------------------------------------------------------- cache, cross, regressor
def test_feature_cache_reuses_features_and_keys_on_settings(tmp_path):
    sets = {"a": FakeSet("a")}
    enc = CountingEncoder()
    ev = RidgeEvaluator(scales=(1.0, 0.5), n_splits=3, num_alphas=5, cache_dir=str(tmp_path / "c"))
    rows1 = ev.run({"m": enc}, sets, encoder_keys={"m": {"ckpt": "x"}})
    assert enc.calls == 2 * len(sets["a"])  # two scales
    enc.calls = 0
    ev2 = RidgeEvaluator(scales=(1.0, 0.5), n_splits=3, num_alphas=5, cache_dir=str(tmp_path / "c"))
    rows2 = ev2.run({"m": enc}, sets, encoder_keys={"m": {"ckpt": "x"}})
    assert enc.calls == 0  # second run: no encoder call
    assert [r["srcc"] for r in rows1] == [r["srcc"] for r in rows2]
    # another scale set, another checkpoint key, or no key at all -> extracted again
    RidgeEvaluator(scales=(1.0,), n_splits=3, num_alphas=5, cache_dir=str(tmp_path / "c")).run(
        {"m": enc}, sets, encoder_keys={"m": {"ckpt": "x"}}
    )
    assert enc.calls == len(sets["a"])
    enc.calls = 0
    ev2.run({"m": enc}, sets, encoder_keys={"m": {"ckpt": "y"}})
    ev2.run({"m": enc}, sets)
    assert enc.calls == 4 * len(sets["a"])
    # the dataset's fingerprint follows its content
    assert dataset_fingerprint(FakeSet("a")) == dataset_fingerprint(FakeSet("a"))
    assert dataset_fingerprint(FakeSet("a")) != dataset_fingerprint(FakeSet("a", seed=1))


def test_corrupt_cache_entry_is_recomputed(tmp_path):
    cache = FeatureCache(tmp_path)
    key = cache.key({"ckpt": 1}, "d", (1.0,), None)
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_bytes(b"not an npz")
    assert cache.load(key) is None
    cache.save(key, np.ones((3, 2), np.float32), np.arange(3), {})
    f, ids = cache.load(key)
    assert f.shape == (3, 2) and ids.tolist() == [0, 1, 2]


@pytest.mark.parametrize("crop_size", [None, 16])
def test_evaluator_splits_are_reference_disjoint(crop_size):
    """Every split's test set is a union of whole reference groups: no content of a test image is seen in train
    or val (a runner that dropped the set's reference ids would split image by image)."""
    ds = FakeSet("a", n_refs=10, per_ref=4)
    ev = RidgeEvaluator(scales=(1.0,), crop_size=crop_size, n_splits=5, ratios=(0.6, 0.2, 0.2), num_alphas=3)
    rows = ev.run({"m": CountingEncoder()}, {"a": ds})
    pred = ev.predictions[("m", "a")]
    assert sorted(set(pred["split"])) == list(range(5))
    for s in range(5):
        test_items = {i for i, sp in zip(pred["item"], pred["split"]) if sp == s}
        test_refs = {int(ds.refs[i]) for i in test_items}
        whole_groups = {i for i in range(len(ds)) if int(ds.refs[i]) in test_refs}
        assert test_items == whole_groups, f"split {s}: test set cuts through a reference group"
        assert len(test_refs) == 2  # 20 % of the 10 references
    assert [r["n_test"] for r in rows if r["split"] != "median"] == [8] * 5


def test_cross_dataset_rows_and_regressor():
    sets = {n: FakeSet(n, seed=i) for i, n in enumerate(["a", "b", "c"])}
    ev = RidgeEvaluator(scales=(1.0,), num_alphas=9, train_on="a", test_on=["b", "c"])
    rows = ev.run({"m": CountingEncoder()}, sets)
    assert [(r["dataset"], r["train_on"], r["split"], r["protocol"]) for r in rows] == [
        ("b", "a", "full", "ridge_cross"),
        ("c", "a", "full", "ridge_cross"),
    ]
    for r in rows:
        assert r["srcc"] > 0.8 and r["n_test"] == len(sets["b"]) and r["alpha"] > 0
    assert set(ev.regressors) == {("m", "a")}
    assert len(ev.predictions[("m", "b")]["pred"]) == len(sets["b"])
    # test_on defaults to every other set; a set that is not loaded is a config error naming the keys
    assert {
        r["dataset"]
        for r in RidgeEvaluator(scales=(1.0,), num_alphas=5, train_on="a").run({"m": CountingEncoder()}, sets)
    } == {"b", "c"}
    with pytest.raises(ConfigError, match="train_on/test_on.*koniq"):
        RidgeEvaluator(train_on="a", test_on=["koniq"]).run({"m": CountingEncoder()}, sets)
    with pytest.raises(ConfigError, match="test_on needs evaluator.train_on"):
        RidgeEvaluator(test_on=["b"])


def test_regressor_round_trip_and_item_averaging(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 6)).astype(np.float32)
    y = X @ rng.standard_normal(6) + 3
    model = fit_ridge(X, y, 0.5)
    path = save_regressor(tmp_path / "r.safetensors", model, {"scales": [1.0, 0.5], "crop_size": 224})
    reg = load_regressor(path)
    assert reg.scales == [1.0, 0.5] and reg.crop_size == 224 and reg.meta["feature_dim"] == 6
    np.testing.assert_allclose(reg.predict(X), model.predict(X), rtol=1e-12)
    ids = np.repeat(np.arange(8), 5)
    per_item = reg.predict_items(X, ids)
    np.testing.assert_allclose(per_item, model.predict(X).reshape(8, 5).mean(1), rtol=1e-12)
    assert json.loads((tmp_path / "r.json").read_text())["alpha"] == 0.5
    assert apply_regressor(model, X).shape == (40,)
    (tmp_path / "bad.safetensors").write_bytes(b"junk")
    from iqa_bench.errors import UserError

    with pytest.raises(UserError, match="bad.safetensors"):
        load_regressor(tmp_path / "bad.safetensors")
    with pytest.raises(UserError, match="not found"):
        load_regressor(tmp_path / "missing.safetensors")


# ----------------------------------------------------------------------------------------------- the CLI
def _cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "iqa_bench.evaluate", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=timeout,
    )


def test_cli_missing_checkpoint_is_one_line_error(tmp_path):
    res = _cli(f"ckpt={tmp_path}/nope.ckpt", f"hydra.run.dir={tmp_path}/run")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith("error: ckpt: checkpoint not found")
    assert "Traceback" not in res.stderr


def test_cli_end_to_end_then_cached_rerun(trained_run, tmp_path, compose_cfg, monkeypatch):
    ckpt, method = trained_run
    run_dir = tmp_path / "eval"
    cache = tmp_path / "featcache"
    res = _cli(f"ckpt={ckpt}", *TINY_EVAL, f"evaluator.cache_dir={cache}", f"hydra.run.dir={run_dir}")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = _rows(run_dir)
    assert list(rows[0]) == list(RESULT_COLUMNS)
    assert len(rows) == 3 + 1
    for r in rows:
        assert r["method"] == "arniqa" and r["backbone"] == "tiny" and r["ckpt"] == str(ckpt)
        assert r["dataset"] == "builtin_synthetic" and r["protocol"] == "ridge" and float(r["alpha"]) > 0
    assert f"| {ckpt} | builtin_synthetic |" in res.stdout
    reg = load_regressor(run_dir / "regressors" / "ckpt__builtin_synthetic.safetensors")
    assert reg.meta["ckpt"] == str(ckpt) and reg.scales == [1.0, 0.5]
    preds = list(csv.DictReader((run_dir / "predictions" / "ckpt__builtin_synthetic.csv").open()))
    assert {p["split"] for p in preds} == {"0", "1", "2"} and preds[0]["label"].startswith("kodim")
    # each split's metrics are those of its written predictions; the summary row holds their medians
    from iqa_bench.eval.metrics import krcc, plcc, srcc

    per_split = {}
    for r in rows[:-1]:
        p = [(float(x["pred"]), float(x["mos"])) for x in preds if x["split"] == r["split"]]
        pred, mos = np.array(p).T
        per_split[r["split"]] = (srcc(pred, mos), plcc(pred, mos), krcc(pred, mos))
        assert [float(r[k]) for k in ("srcc", "plcc", "krcc")] == pytest.approx(
            per_split[r["split"]], abs=1e-5
        )
    assert rows[-1]["split"] == "median"
    assert float(rows[-1]["srcc"]) == pytest.approx(
        float(np.median([v[0] for v in per_split.values()])), abs=1e-5
    )
    assert not list(run_dir.rglob(".*.tmp"))

    # the loaded module is the saved one
    from iqa_bench.checkpoints import load_method_checkpoint
    from iqa_bench.evaluate import evaluate

    cfg = compose_cfg([f"ckpt={ckpt}", *TINY_EVAL, f"evaluator.cache_dir={cache}"], config_name="evaluate")
    loaded, info = load_method_checkpoint(ckpt, cfg)
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(loaded.features(x), method.eval().features(x))
    assert info["target"].endswith("ARNIQA")

    # the regressor reproduces the saved features' fit: features from the cache -> regressor -> finite scores
    feats, ids = extract_features({"m": loaded}, _tiny_set(cfg), reg.scales, reg.crop_size)
    assert np.isfinite(reg.predict_items(feats["m"], ids)).all()

    # re-run in-process with another split count: features come from the cache, the encoder is never called
    from iqa_bench.methods.base import PretrainMethod

    def boom(self, images):
        raise AssertionError("encoder called although its features are cached")

    monkeypatch.setattr(PretrainMethod, "features", boom)
    cfg = compose_cfg(
        [f"ckpt={ckpt}", *TINY_EVAL, "evaluator.n_splits=4", f"evaluator.cache_dir={cache}"],
        config_name="evaluate",
    )
    out = evaluate(cfg)
    assert len([r for r in out["rows"] if r["split"] != "median"]) == 4


def _tiny_set(cfg):
    from iqa_bench.runs import build_eval_sets

    return build_eval_sets(cfg)["builtin_synthetic"]


def test_random_init_is_seeded_and_labelled(compose_cfg, tmp_path, monkeypatch):
    """ckpt=random: rows labelled random_init, regressor saved; cross-dataset through the config keys."""
    from iqa_bench import evaluate as ev_mod

    fake = {"a": FakeSet("a"), "b": FakeSet("b", seed=1)}
    monkeypatch.setattr(ev_mod, "build_eval_sets", lambda cfg: fake)
    cfg = compose_cfg(
        [
            "ckpt=random",
            "evaluator.train_on=a",
            "evaluator.test_on=[b]",
            "evaluator.num_alphas=5",
            f"evaluator.cache_dir={tmp_path}/c",
            "evaluator.progress=false",
            "evaluator.scales=[1.0]",
        ],
        config_name="evaluate",
    )
    monkeypatch.setattr(ev_mod, "dataset_fingerprint", lambda ds, conf=None: ds.name)
    out = ev_mod.evaluate(cfg)
    rows = _rows(out["run_dir"])
    assert [(r["ckpt"], r["dataset"], r["train_on"], r["split"]) for r in rows] == [
        ("init=random", "b", "a", "full")
    ]
    assert (out["run_dir"] / "regressors" / "init-random__a.safetensors").is_file()
    assert (out["run_dir"] / "predictions" / "init-random__b.csv").is_file()


def test_finetune_evaluator_through_evaluate(compose_cfg, monkeypatch):
    from iqa_bench import evaluate as ev_mod

    monkeypatch.setattr(ev_mod, "build_eval_sets", lambda cfg: {"a": FakeSet("a", size=32)})
    monkeypatch.setattr(ev_mod, "dataset_fingerprint", lambda ds, conf=None: ds.name)
    cfg = compose_cfg(
        [
            "ckpt=random",
            "evaluator=finetune",
            "evaluator.n_splits=2",
            "evaluator.epochs=1",
            "evaluator.crop_size=32",
            "evaluator.val_crops=1",
            "evaluator.test_crops=2",
        ],
        config_name="evaluate",
    )
    out = ev_mod.evaluate(cfg)
    rows = _rows(out["run_dir"])
    assert [(r["protocol"], r["split"], r["alpha"]) for r in rows] == [
        ("finetune", "0", ""),
        ("finetune", "1", ""),
        ("finetune", "median", ""),
    ]
    assert (out["run_dir"] / "predictions" / "init-random__a.csv").is_file()
    assert not (out["run_dir"] / "regressors").exists()


@pytest.mark.parametrize("method", sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml")))
def test_every_method_checkpoint_round_trips(compose_cfg, tmp_path, method):
    """A checkpoint outside a run dir: class from `method=`, arguments from its hyper-parameters."""
    from iqa_bench.checkpoints import load_method_checkpoint

    cfg = compose_cfg(["ckpt=random", f"method={method}"], config_name="evaluate")
    module = instantiate(cfg.method)
    path = tmp_path / "m.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    loaded, info = load_method_checkpoint(path, cfg)
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(loaded.features(x), module.eval().features(x))
    assert info["method"] == method and info["backbone"] == "tiny"
