"""`extract_cached`, continued (see test_eval_cache_wiring.py): a cached entry whose item ids disagree with a fresh
extraction of the same set is refused; NaN features of a set without labels; the unwritable-cache warning."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from test_eval_cache_wiring import _DS, _Enc

from iqa_bench.errors import UserError
from iqa_bench.eval.cache import FeatureCache, dataset_fingerprint, extract_cached


def test_cached_item_ids_that_disagree_with_a_fresh_extraction_are_refused(tmp_path) -> None:
    ds, cache = _DS(n=3), FeatureCache(tmp_path)
    key = cache.key("ka", dataset_fingerprint(ds), (1.0,), None)
    cache.save(key, np.zeros((2, 3), np.float32), np.array([0, 2]), {})  # ends at the last item: a hit
    with pytest.raises(RuntimeError) as err:  # "b" has no key: extracted, with ids 0, 1, 2
        extract_cached(
            {"a": _Enc(), "b": _Enc()},
            ds,
            scales=(1.0,),
            crop_size=None,
            cache=cache,
            encoder_keys={"a": "ka"},
        )
    assert str(err.value) == "cached item ids disagree with a fresh extraction"


def test_non_finite_features_of_a_set_without_labels_name_the_item_only() -> None:
    ds = _DS(n=4)
    del ds.labels
    with pytest.raises(UserError) as err:
        extract_cached({"bad": _Enc(np.nan)}, ds, scales=(1.0,), crop_size=None)
    assert str(err.value) == (
        "encoder 'bad' produced NaN/inf features on d (2 row(s), first at item 1); check the checkpoint"
    )


def test_an_unwritable_cache_warns_with_the_reason_and_no_failures_are_int_ids(tmp_path, caplog) -> None:
    (tmp_path / "file").write_text("not a folder")
    ds, cache = _DS(n=3), FeatureCache(tmp_path / "file")
    with pytest.raises(OSError) as want:  # the reason, as saving the entry reports it
        cache.save(cache.key("ka", dataset_fingerprint(ds), (1.0,), None), np.zeros((3, 3)), np.arange(3), {})
    with caplog.at_level(logging.WARNING, logger="iqa_bench.eval.cache"):
        _, _, excluded = extract_cached(
            {"a": _Enc()}, ds, scales=(1.0,), crop_size=None, cache=cache, encoder_keys={"a": "ka"}
        )
    assert caplog.messages == [f"features not cached ({want.value}); they will be extracted again next run"]
    assert excluded.dtype == np.int64 and excluded.size == 0
