"""The feature cache never serves features of another encoder, dataset or setting: the key recipe (SHA-256 of sorted
JSON), the dataset fingerprint's parts, entries read back as written, stale and broken entries, and
`extract_cached` running exactly the encoders that miss."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from iqa_bench.errors import UserError
from iqa_bench.eval.cache import (
    CACHE_VERSION,
    FeatureCache,
    _simple_attrs,
    checkpoint_key,
    dataset_fingerprint,
    extract_cached,
    stable_hash,
)


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


class _DS:
    """A plain dataset: `n` 8x8 images whose brightness is the index; optional labels, refs, paths, failures."""

    def __init__(
        self, n: int = 4, name: str | None = "d", labels: Any = None, refs: Any = None, **attrs: Any
    ):
        self.name, self.labels, self.refs = name, labels, refs
        self.scores = np.arange(float(n))
        self._failed: list[int] = []
        for k, v in attrs.items():
            setattr(self, k, v)

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.full((3, 8, 8), 10 * i, dtype=torch.uint8)

    def failed_items(self) -> list[int]:
        return self._failed


class _Enc:
    def __init__(self, value: float | None = None) -> None:
        self.calls, self.value = 0, value

    def features(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += x.shape[0]
        f = x.mean(dim=(2, 3))
        if self.value is not None:
            f[1:3, 0] = self.value  # rows 1 and 2 (items 1 and 2 without crops)
        return f


# --------------------------------------------------------------------------------------------------- keys
def test_stable_hash_is_a_sha256_of_sorted_json() -> None:
    obj = {"b": [1, 2.5, "x", None], "a": {"z": True, "y": 0}}
    assert stable_hash(obj) == _sha(obj)[:20] and stable_hash(obj, n=32) == _sha(obj)[:32]
    arr = np.arange(6, dtype=np.int32).reshape(2, 3)
    want = {"x": {"ndarray": hashlib.sha256(arr.tobytes()).hexdigest(), "dtype": "int32"}}
    assert stable_hash({"x": arr}) == _sha(want)[:20]
    assert stable_hash({"x": arr.astype(np.int64)}) != stable_hash({"x": arr})  # the dtype is part of it
    assert stable_hash([np.int64(3), np.float32(0.5)]) == stable_hash([3, 0.5])
    assert stable_hash(Path("/a/b")) == stable_hash("/a/b")

    class R:
        def __repr__(self) -> str:
            return "R()"

    assert stable_hash({"o": R()}) == stable_hash({"o": "R()"})


def test_checkpoint_key_is_resolved_path_size_and_mtime(tmp_path, monkeypatch) -> None:
    (tmp_path / "c.ckpt").write_bytes(b"12345")
    os.utime(tmp_path / "c.ckpt", ns=(1_000_000_007, 2_000_000_011))
    monkeypatch.chdir(tmp_path)
    key = checkpoint_key("c.ckpt")
    assert key == {"path": str(tmp_path.resolve() / "c.ckpt"), "size": 5, "mtime_ns": 2_000_000_011}
    os.utime(tmp_path / "c.ckpt", ns=(1_000_000_007, 2_000_000_012))
    assert checkpoint_key(tmp_path / "c.ckpt") != key


def test_feature_cache_key_recipe_and_path(tmp_path) -> None:
    cache = FeatureCache(tmp_path)
    key = cache.key({"ckpt": "x"}, "dsk", (1, 0.5), 224)
    want = {
        "version": CACHE_VERSION,
        "encoder": {"ckpt": "x"},
        "dataset": "dsk",
        "scales": [1.0, 0.5],
        "crop_size": 224,
    }
    assert key == _sha(want)[:32] and CACHE_VERSION == 1
    others = [
        cache.key({"ckpt": "y"}, "dsk", (1, 0.5), 224),
        cache.key({"ckpt": "x"}, "dsk2", (1, 0.5), 224),
        cache.key({"ckpt": "x"}, "dsk", (1.0,), 224),
        cache.key({"ckpt": "x"}, "dsk", (1, 0.5), None),
    ]
    assert len({key, *others}) == 5
    assert cache.path(key) == tmp_path / key[:2] / f"{key}.npz"


def test_simple_attrs_keep_plain_values_only() -> None:
    ds = _DS(
        _hidden=1, seed=3, flag=True, ratio=0.5, levels=[1, 2], pair=(1, "a"), arr=np.zeros(2), mixed=[1, {}]
    )
    got = _simple_attrs(ds)
    assert got == {"flag": True, "levels": [1, 2], "name": "d", "pair": (1, "a"), "ratio": 0.5, "seed": 3}
    assert list(got) == sorted(got)
    ds.scores, ds.refs, ds.labels = (
        [1.0, 2.0],
        [0, 0],
        ["a", "b"],
    )  # plain lists, hashed elsewhere or not at all
    assert _simple_attrs(ds) == got


def test_dataset_fingerprint_follows_what_makes_the_images(tmp_path) -> None:
    base = dataset_fingerprint(_DS(labels=["a", "b", "c", "d"], refs=np.array([0, 0, 1, 1]), seed=0))
    same = _DS(labels=["a", "b", "c", "d"], refs=np.array([0, 0, 1, 1]), seed=0)
    same.scores = same.scores + 7  # scores do not change the features
    assert dataset_fingerprint(same) == base

    class Sub(_DS):
        pass

    changed = [
        _DS(labels=["a", "b", "c", "e"], refs=np.array([0, 0, 1, 1]), seed=0),
        _DS(labels=["a", "b", "c", "d"], refs=np.array([0, 1, 1, 1]), seed=0),
        _DS(labels=["a", "b", "c", "d"], refs=None, seed=0),
        _DS(labels=["a", "b", "c", "d"], refs=np.array([0, 0, 1, 1]), seed=1),
        _DS(name="e", labels=["a", "b", "c", "d"], refs=np.array([0, 0, 1, 1]), seed=0),
        Sub(labels=["a", "b", "c", "d"], refs=np.array([0, 0, 1, 1]), seed=0),
    ]
    assert base not in {dataset_fingerprint(d) for d in changed}
    longer = _DS(n=5, labels=None)
    assert dataset_fingerprint(longer) != dataset_fingerprint(_DS(n=4, labels=None))
    assert dataset_fingerprint(longer, {"k": 1}) != dataset_fingerprint(longer, {"k": 2})
    assert dataset_fingerprint(longer, {"k": 1}) != dataset_fingerprint(longer)
    del longer.labels, longer.refs  # a set without these attributes is fingerprinted like one with None
    assert dataset_fingerprint(longer) == dataset_fingerprint(_DS(n=5, labels=None, refs=None))


def test_dataset_fingerprint_reads_name_and_type_through_attributes() -> None:
    class Named(_DS):
        """The name as a property (not an instance attribute, so not among the simple attributes)."""

        @property
        def name(self) -> str:  # type: ignore[override]
            return self._n

        @name.setter
        def name(self, value: str) -> None:
            self._n = value

    assert dataset_fingerprint(Named(name="x")) != dataset_fingerprint(Named(name="y"))
    nameless = _DS()
    del nameless.name
    assert dataset_fingerprint(nameless) != dataset_fingerprint(_DS())
    elsewhere = type("_DS", (_DS,), {"__module__": "elsewhere"})  # same qualified name, another module
    assert dataset_fingerprint(elsewhere()) != dataset_fingerprint(_DS())


def test_dataset_fingerprint_follows_image_files(tmp_path) -> None:
    f0, f1 = tmp_path / "0.png", tmp_path / "1.png"
    f0.write_bytes(b"aa")
    f1.write_bytes(b"bb")
    paths = [str(f0), str(tmp_path / "missing.png")]  # a file that vanished is recorded, not an error
    a = dataset_fingerprint(_DS(n=2, paths=paths))
    f0.write_bytes(b"aaa")  # the first file rewritten
    assert dataset_fingerprint(_DS(n=2, paths=paths)) != a
    # labels that are files count as well, the second one too
    lab = dataset_fingerprint(_DS(n=2, labels=[str(f0), str(f1)]))
    f1.write_bytes(b"bbbb")
    assert dataset_fingerprint(_DS(n=2, labels=[str(f0), str(f1)])) != lab
    # `paths` wins over labels: the same labels with other paths are another set
    assert dataset_fingerprint(_DS(n=2, labels=["x", "y"], paths=[str(f0), str(f1)])) != dataset_fingerprint(
        _DS(n=2, labels=["x", "y"], paths=[str(f1), str(f0)])
    )


_PLAIN_SET = """
import numpy as np
class D:
    __module__, __qualname__ = "sets", "D"
    def __init__(self):
        self.name, self.labels, self.refs, self.seed = "d", ["a", "b"], None, 0
    def __len__(self):
        return 2
"""


def test_dataset_fingerprint_is_the_same_in_another_process() -> None:
    """A cache on disk is only useful if a later run computes the same key (nothing hashed by address)."""
    code = (
        _PLAIN_SET + "from iqa_bench.eval.cache import dataset_fingerprint\nprint(dataset_fingerprint(D()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    scope: dict[str, Any] = {}
    exec(_PLAIN_SET, scope)  # the same class here
    assert out.strip() == dataset_fingerprint(scope["D"]())


# ---------------------------------------------------------------------------------------------- entries
def test_entries_read_back_as_written(tmp_path) -> None:
    cache = FeatureCache(tmp_path / "c")
    key = cache.key("e", "d", (1.0,), None)
    assert cache.load(key) is None and cache.load_entry(key) is None
    feats = np.arange(6, dtype=np.float64).reshape(3, 2) / 7
    p = cache.save(key, feats, np.array([0, 1, 2]), {"where": tmp_path, "n": 3}, excluded=[5, 4])
    assert p == cache.path(key)
    f, ids, ex = cache.load_entry(key)
    assert f.dtype == np.float32 and np.allclose(f, feats) and ids.tolist() == [0, 1, 2]
    assert ex.dtype == np.int64 and ex.tolist() == [5, 4]
    assert [a.tolist() for a in cache.load(key)] == [f.tolist(), [0, 1, 2]]
    meta = json.loads(p.with_suffix(".json").read_text())
    assert meta == {"key": key, "shape": [3, 2], "where": str(tmp_path), "n": 3}
    cache.save(key, feats, np.array([0, 1, 2]), {})
    assert cache.load_entry(key)[2].tolist() == []
    with cache.path(key).open("wb") as fh:  # an entry of the first format, without `excluded`
        np.savez(fh, features=feats.astype(np.float32), item_ids=np.arange(3))
    ex = cache.load_entry(key)[2]
    assert ex.dtype == np.int64 and ex.size == 0


def test_broken_and_non_finite_entries(tmp_path, caplog) -> None:
    cache = FeatureCache(tmp_path)
    key = cache.key("e", "d", (1.0,), None)
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_bytes(b"junk")
    with caplog.at_level(logging.WARNING, logger="iqa_bench.eval.cache"):
        assert cache.load_entry(key) is None
    (record,) = caplog.records
    assert record.getMessage().startswith(f"ignoring unreadable feature cache {cache.path(key)} (")
    assert isinstance(record.args[1], Exception)  # the reason is printed
    with cache.path(key).open("wb") as fh:  # pickled objects are never unpickled from the cache
        np.savez(fh, features=np.array([[{"x": 1}]], dtype=object), item_ids=np.arange(1))
    assert cache.load_entry(key) is None
    cache.save(key, np.arange(4.0), np.arange(4), {})  # not a (rows, dims) table: returned as stored
    assert cache.load_entry(key)[0].tolist() == [0.0, 1.0, 2.0, 3.0]
    feats = np.ones((5, 3), np.float32)
    feats[3, 2], feats[4, 0] = np.inf, np.nan
    cache.save(key, feats, np.arange(5), {})
    with pytest.raises(UserError) as err:
        cache.load_entry(key)
    assert str(err.value) == (
        f"feature cache {cache.path(key)} holds NaN/inf features (2 row(s), first row 3); "
        "delete the file to extract them again"
    )


# ------------------------------------------------------------------------------------------ extract_cached
def _run(ds: Any, encs: dict[str, Any], cache: FeatureCache | None, keys: Any = None, **kw: Any):
    return extract_cached(encs, ds, scales=(1.0,), crop_size=None, cache=cache, encoder_keys=keys, **kw)


def test_only_encoders_that_miss_the_cache_run(tmp_path, caplog) -> None:
    ds, cache = _DS(n=5), FeatureCache(tmp_path)
    a, b = _Enc(), _Enc()
    feats, ids, ex = _run(ds, {"a": a, "b": b}, cache, {"a": "ka", "b": None})
    assert (a.calls, b.calls) == (5, 5) and ids.tolist() == [0, 1, 2, 3, 4] and ex.tolist() == []
    np.testing.assert_allclose(feats["a"][:, 0], np.arange(5) * 10 / 255, rtol=1e-6)
    key = cache.key("ka", dataset_fingerprint(ds), (1.0,), None)  # keyed by the dataset's fingerprint
    meta = json.loads(cache.path(key).with_suffix(".json").read_text())
    assert {k: meta[k] for k in ("encoder", "dataset", "scales", "crop_size")} == {
        "encoder": "ka",
        "dataset": "d",
        "scales": [1.0],
        "crop_size": None,
    }
    assert list(cache.root.rglob("*.npz")) == [cache.path(key)]  # no entry for the encoder without a key
    a2, b2 = _Enc(), _Enc()
    with caplog.at_level(logging.INFO, logger="iqa_bench.eval.cache"):
        again, ids2, _ = _run(ds, {"b": b2, "a": a2}, cache, {"a": "ka"})
    assert (a2.calls, b2.calls) == (0, 5) and list(again) == ["b", "a"]  # the caller's order
    assert f"features of 'a' on d: from cache {cache.path(key)}" in caplog.text
    np.testing.assert_array_equal(again["a"], feats["a"]) and np.testing.assert_array_equal(ids2, ids)
    c = _Enc()
    _run(ds, {"a": c}, None, {"a": "ka"})  # no cache: always extracted
    assert c.calls == 5


def test_a_stale_or_empty_entry_is_extracted_again(tmp_path) -> None:
    ds, cache = _DS(n=5), FeatureCache(tmp_path)
    key = cache.key("ka", "dk", (1.0,), None)
    cache.save(key, np.zeros((3, 3)), np.arange(3), {})  # an entry of a 3-image version of the set
    enc = _Enc()
    feats, ids, _ = _run(ds, {"a": enc}, cache, {"a": "ka"}, dataset_key="dk")
    assert enc.calls == 5 and ids.tolist() == list(range(5)) and feats["a"].shape == (5, 3)
    assert cache.load(key)[1].tolist() == list(range(5))  # rewritten
    cache.save(key, np.zeros((0, 3)), np.zeros(0, np.int64), {})
    enc = _Enc()
    _run(ds, {"a": enc}, cache, {"a": "ka"}, dataset_key="dk")
    assert enc.calls == 5


def test_failed_items_are_cached_and_merged_sorted(tmp_path) -> None:
    ds, cache = _DS(n=6), FeatureCache(tmp_path)
    ds._failed = [4, 1]
    _, _, ex = _run(ds, {"a": _Enc()}, cache, {"a": "ka"}, dataset_key="dk")
    assert ex.tolist() == [1, 4] and ex.dtype == np.int64
    ds._failed = []  # a cached run decodes nothing, the entry remembers the failures
    _, _, ex = _run(ds, {"a": _Enc()}, cache, {"a": "ka"}, dataset_key="dk")
    assert ex.tolist() == [1, 4]
    ds._failed = [5, 1]  # an encoder without a key is extracted fresh: both lists, sorted, once each
    _, _, ex = _run(ds, {"a": _Enc(), "b": _Enc()}, cache, {"a": "ka"}, dataset_key="dk")
    assert ex.tolist() == [1, 4, 5]
    plain = _DS(n=3)
    plain.failed_items = None  # type: ignore[assignment,method-assign]  # not callable: nothing failed
    assert _run(plain, {"a": _Enc()}, None)[2].tolist() == []

    class NoReport(_DS):
        failed_items = None  # type: ignore[assignment]

    assert _run(NoReport(n=3), {"a": _Enc()}, None)[2].tolist() == []


def test_non_finite_features_name_encoder_set_and_item(tmp_path) -> None:
    ds = _DS(n=5, labels=[f"im{i}.png" for i in range(5)])
    with pytest.raises(UserError) as err:
        _run(ds, {"ok": _Enc(), "bad": _Enc(np.nan)}, FeatureCache(tmp_path), {"bad": "k", "ok": "k2"})
    assert str(err.value) == (
        "encoder 'bad' produced NaN/inf features on d (2 row(s), first at item 1: im1.png); check the checkpoint"
    )
    assert list(tmp_path.rglob("*.npz")) == [
        FeatureCache(tmp_path).path(FeatureCache(tmp_path).key("k2", dataset_fingerprint(ds), (1.0,), None))
    ]
    with pytest.raises(UserError) as err:
        _run(_DS(n=5, name=None), {"bad": _Enc(np.inf)}, None)
    assert str(err.value) == (
        "encoder 'bad' produced NaN/inf features on None (2 row(s), first at item 1); check the checkpoint"
    )

    class Nameless(_DS):
        def __init__(self) -> None:
            super().__init__(n=5)
            del self.name

    with pytest.raises(UserError, match=r"on the dataset \(2 row"):
        _run(Nameless(), {"bad": _Enc(np.inf)}, None)


def test_an_unwritable_cache_only_warns(tmp_path, caplog) -> None:
    (tmp_path / "file").write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="iqa_bench.eval.cache"):
        feats, ids, _ = _run(_DS(n=3), {"a": _Enc()}, FeatureCache(tmp_path / "file"), {"a": "ka"})
    assert feats["a"].shape == (3, 3) and ids.tolist() == [0, 1, 2]
    assert "features not cached (" in caplog.text and "they will be extracted again next run" in caplog.text


def test_extraction_defaults_are_those_of_extract_features(monkeypatch) -> None:
    """Without them, `extract_cached` uses `extract_features`' batch size, workers, device and progress."""
    import inspect

    from iqa_bench.eval import features as features_mod

    real, seen = features_mod.extract_features, []

    def spy(*args: Any, **kw: Any) -> Any:
        seen.append((args, kw))
        return real(*args, **kw)

    monkeypatch.setattr(features_mod, "extract_features", spy)
    extract_cached({"a": _Enc()}, _DS(n=3), scales=(1.0,), crop_size=None)
    ((args, kw),) = seen
    want = {k: p.default for k, p in inspect.signature(real).parameters.items()}
    assert args[4:] == (want["batch_size"], want["num_workers"], want["device"])
    assert kw == {"progress": want["progress"]}


def test_cache_hits_are_logged_naming_encoder_set_and_entry(tmp_path, caplog) -> None:
    cache, nameless = FeatureCache(tmp_path), _DS(n=3)
    del nameless.name
    for ds, shown in ((_DS(n=3), "d"), (nameless, "?")):  # a set without a name shows as "?"
        _run(ds, {"a": _Enc()}, cache, {"a": "ka"})
        with caplog.at_level(logging.INFO, logger="iqa_bench.eval.cache"):
            _run(ds, {"a": _Enc()}, cache, {"a": "ka"})
        entry = cache.path(cache.key("ka", dataset_fingerprint(ds), (1.0,), None))
        assert f"features of 'a' on {shown}: from cache {entry}" in caplog.messages
