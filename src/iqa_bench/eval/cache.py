"""On-disk cache of extracted features, keyed by (encoder identity, dataset fingerprint, extraction settings).

A cache entry is one `.npz` file (`features` float32 `(R, D)`, `item_ids` int64 `(R,)`, `excluded` int64: the
items that failed to decode during the extraction, so a cached run excludes and reports them too) plus a `.json`
file that records what the key was made of, both written atomically. An entry with NaN/inf features is refused
with a one-line error naming the file (delete it to re-extract). The key is a SHA-256 of:

* the encoder key: for a checkpoint its resolved path, size and modification time (`checkpoint_key`), for a
  random initialisation the method config and seed; given by the caller (`RidgeEvaluator.run(encoder_keys=...)`);
* the dataset fingerprint (`dataset_fingerprint`): name, length, labels, references, the dataset's simple
  attributes (seed, levels, ...), its config and, when `paths` (or the labels) are files, their sizes and
  modification times.
  Scores are not part of it: they do not change the features, and they are always read from the dataset;
* the extraction settings: scales, crop size, cache format version.

Change any of these and the entry is simply not found (a new one is written); delete the folder to reclaim space.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iqa_bench.errors import UserError
from iqa_bench.utils.atomic import atomic_open, atomic_write_json

__all__ = ["FeatureCache", "checkpoint_key", "dataset_fingerprint", "stable_hash"]

log = logging.getLogger(__name__)

CACHE_VERSION = 1


def stable_hash(obj: Any, n: int = 20) -> str:
    """Hex SHA-256 (first `n` chars) of `obj` serialised as sorted JSON (numpy arrays hashed by bytes)."""
    h = hashlib.sha256()

    def default(o: Any) -> Any:
        if isinstance(o, np.ndarray):
            return {
                "ndarray": hashlib.sha256(np.ascontiguousarray(o).tobytes()).hexdigest(),
                "dtype": str(o.dtype),
            }
        if isinstance(o, (np.integer, np.floating)):
            return o.item()
        if isinstance(o, Path):
            return str(o)
        return repr(o)

    h.update(json.dumps(obj, sort_keys=True, default=default).encode())
    return h.hexdigest()[:n]


def checkpoint_key(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Identity of a checkpoint file: resolved path, size and mtime (ns). A rewritten file gets a new key."""
    p = Path(path).resolve()
    st = p.stat()
    return {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _simple_attrs(ds: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in sorted(vars(ds).items()):
        if k.startswith("_") or k in ("scores", "refs", "labels"):
            continue
        if isinstance(v, (bool, int, float, str)) or (
            isinstance(v, (list, tuple)) and all(isinstance(e, (bool, int, float, str)) for e in v)
        ):
            out[k] = v
    return out


def dataset_fingerprint(ds: Any, config: Any = None) -> str:
    """Hash of what determines an evaluation set's images: see the module docstring. `config` (e.g. the resolved
    `data.eval.<name>` node as a dict) is folded in when given."""
    labels = list(getattr(ds, "labels", []) or [])
    candidates = list(getattr(ds, "paths", None) or labels)  # on-disk sets keep their image paths in `paths`
    files: list[Any] = []
    if candidates and Path(str(candidates[0])).is_file():
        for lab in candidates:
            try:
                st = Path(str(lab)).stat()
                files.append((st.st_size, st.st_mtime_ns))
            except OSError:
                files.append(None)
    refs = getattr(ds, "refs", None)
    return stable_hash(
        {
            "type": f"{type(ds).__module__}.{type(ds).__qualname__}",
            "name": getattr(ds, "name", None),
            "len": len(ds),
            "labels": labels,
            "refs": None if refs is None else np.asarray(refs),
            "attrs": _simple_attrs(ds),
            "files": files,
            "config": config,
        }
    )


class FeatureCache:
    """Feature files under `root` (created on first write)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def key(self, encoder_key: Any, dataset_key: str, scales: Sequence[float], crop_size: int | None) -> str:
        return stable_hash(
            {
                "version": CACHE_VERSION,
                "encoder": encoder_key,
                "dataset": dataset_key,
                "scales": [float(s) for s in scales],
                "crop_size": crop_size,
            },
            n=32,
        )

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def load(self, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(features, item_ids) of `key`, or None when absent or unreadable (a broken file is ignored)."""
        entry = self.load_entry(key)
        return None if entry is None else (entry[0], entry[1])

    def load_entry(self, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(features, item_ids, excluded item ids) of `key`, or None when absent or unreadable (a broken file is
        ignored). `UserError` naming the file when the features hold NaN/inf."""
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            with np.load(p, allow_pickle=False) as z:
                feats, ids = np.asarray(z["features"]), np.asarray(z["item_ids"])
                excluded = np.asarray(z["excluded"]) if "excluded" in z.files else np.empty(0, np.int64)
        except Exception as exc:  # truncated/corrupt file: recompute
            log.warning("ignoring unreadable feature cache %s (%s)", p, exc)
            return None
        bad = np.flatnonzero(~np.isfinite(feats).all(axis=1)) if feats.ndim == 2 else np.empty(0)
        if bad.size:
            raise UserError(
                f"feature cache {p} holds NaN/inf features ({bad.size} row(s), first row {int(bad[0])}); "
                "delete the file to extract them again"
            )
        return feats, ids, excluded.astype(np.int64)

    def save(
        self,
        key: str,
        features: np.ndarray,
        item_ids: np.ndarray,
        info: Mapping[str, Any],
        excluded: np.ndarray | None = None,
    ) -> Path:
        p = self.path(key)
        ex = np.asarray([] if excluded is None else excluded, dtype=np.int64)
        with atomic_open(p, "wb") as fh:
            np.savez(
                fh,
                features=np.asarray(features, dtype=np.float32),
                item_ids=np.asarray(item_ids),
                excluded=ex,
            )
        meta = json.loads(json.dumps({"key": key, "shape": list(features.shape), **dict(info)}, default=str))
        atomic_write_json(p.with_suffix(".json"), meta)
        return p


def extract_cached(
    encoders: Mapping[str, Any],
    dataset: Any,
    *,
    scales: Sequence[float],
    crop_size: int | None,
    batch_size: int = 32,
    num_workers: int = 0,
    device: Any = "cpu",
    cache: FeatureCache | None = None,
    encoder_keys: Mapping[str, Any] | None = None,
    dataset_key: str | None = None,
    progress: bool | str = False,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """`features.extract_features`, reusing cached features for every encoder that has a key in `encoder_keys`
    (encoders without a key, or no `cache`, are always extracted). Only the encoders that miss the cache run,
    in one pass over the data; their features are then cached. Returns (features per encoder, item ids per row,
    as `extract_features`) and the sorted ids of the items that failed to decode (the dataset's
    `failed_items()` after a fresh extraction, the cached list on a hit); the caller excludes them.
    `UserError` when an encoder produces NaN/inf features (naming the row's item)."""
    from iqa_bench.eval.features import extract_features

    encoder_keys = encoder_keys or {}
    out: dict[str, np.ndarray] = {}
    ids: np.ndarray | None = None
    excluded: set[int] = set()
    keys: dict[str, str] = {}
    if cache is not None:
        dkey = dataset_key or dataset_fingerprint(dataset)
        for name in encoders:
            if encoder_keys.get(name) is None:
                continue
            keys[name] = cache.key(encoder_keys[name], dkey, scales, crop_size)
            hit = cache.load_entry(keys[name])
            if hit is not None and hit[1].size and int(hit[1].max()) == len(dataset) - 1:
                out[name], ids = hit[0], hit[1]
                excluded.update(int(i) for i in hit[2])
                log.info(
                    "features of %r on %s: from cache %s",
                    name,
                    getattr(dataset, "name", "?"),
                    cache.path(keys[name]),
                )
    todo = {name: enc for name, enc in encoders.items() if name not in out}
    if todo:
        feats, new_ids = extract_features(
            todo, dataset, scales, crop_size, batch_size, num_workers, device, progress=progress
        )
        if ids is not None and not np.array_equal(ids, new_ids):  # pragma: no cover - defensive
            raise RuntimeError("cached item ids disagree with a fresh extraction")
        ids = new_ids
        failed = getattr(dataset, "failed_items", None)
        fresh = np.asarray(failed() if callable(failed) else [], dtype=np.int64)
        excluded.update(int(i) for i in fresh)
        for name, f in feats.items():
            bad = np.flatnonzero(~np.isfinite(f).all(axis=1))
            if bad.size:
                item = int(new_ids[bad[0]])
                labels = getattr(dataset, "labels", None)
                raise UserError(
                    f"encoder {name!r} produced NaN/inf features on {getattr(dataset, 'name', 'the dataset')} "
                    f"({bad.size} row(s), first at item {item}"
                    f"{f': {labels[item]}' if labels is not None else ''}); check the checkpoint"
                )
            out[name] = f
            if name in keys:
                info = {
                    "encoder": encoder_keys[name],
                    "dataset": getattr(dataset, "name", None),
                    "scales": list(scales),
                    "crop_size": crop_size,
                }
                try:
                    cache.save(keys[name], f, new_ids, info, excluded=fresh)  # type: ignore[union-attr]
                except OSError as exc:  # read-only or full cache folder: the features are just not cached
                    log.warning("features not cached (%s); they will be extracted again next run", exc)
    assert ids is not None
    return {name: out[name] for name in encoders}, ids, np.array(sorted(excluded), dtype=np.int64)
