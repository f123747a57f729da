"""eval/preflight.py and eval/official_splits.py: every refusal with its one-line message, the boundary that is
still accepted, and what each branch hands on (ratios, seed, references, parts)."""

from __future__ import annotations

import logging
import re
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from iqa_bench.errors import UserError
from iqa_bench.eval.official_splits import official_split, split_for
from iqa_bench.eval.preflight import check_protocol_data

RATIOS = (0.7, 0.1, 0.2)


def _ev(**kw: Any) -> SimpleNamespace:
    """The `RidgeEvaluator` settings the check reads."""
    base = {
        "n_splits": 3,
        "ratios": RATIOS,
        "seed": 0,
        "splits": "random",
        "train_on": None,
        "val_fraction": 0.1,
    }
    return SimpleNamespace(**{**base, **kw})


def _scores(n: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, n)


def _check(n: int, ev: SimpleNamespace, refs: np.ndarray | None = None, parts: Any = None) -> None:
    check_protocol_data("set", _scores(n), refs, n, ev, parts)


# ------------------------------------------------------------------------------------------ equal scores
def test_equal_scores_are_refused_by_name_count_and_value() -> None:
    msg = "set: all 4 scores are equal (2.5); SRCC/PLCC are undefined: check the score file"
    with pytest.raises(UserError, match=re.escape(msg)):
        check_protocol_data("set", [2.5] * 4, None, 4, _ev())
    with pytest.raises(UserError, match=re.escape("all 3 scores are equal (-0.125)")):
        check_protocol_data("set", [-0.125] * 3, None, 0, _ev())  # a cross-dataset test set too
    with pytest.raises(UserError, match=re.escape("set: all 1 scores are equal (7)")):
        check_protocol_data("set", [7.0], None, 0, _ev())  # a single score


def test_scores_only_when_there_are_no_items() -> None:
    # n_items 0: the scores are checked, no split is drawn (10 images would be too few for the splits)
    check_protocol_data("set", _scores(10), None, 0, _ev())
    check_protocol_data("set", np.empty(0), None, 0, _ev())  # no score at all: nothing to compare
    check_protocol_data("set", [1.0, 1.0 + 1e-12], None, 0, _ev())  # a tiny spread is not equal scores
    with pytest.raises(UserError, match=re.escape("set: cannot split 1 unit(s) into 3 non-empty parts")):
        check_protocol_data("set", [1.0, 2.0], None, 1, _ev())  # one item is checked


# ------------------------------------------------------------------------------------------ random splits
def test_random_splits_need_two_validation_and_two_test_images() -> None:
    msg = (
        "set: split 0 would have 1 validation and 2 test image(s) out of 12; the protocol needs >= 2 of each "
        "(more images or larger evaluator.ratios)"
    )
    with pytest.raises(UserError, match=re.escape(msg)):
        _check(12, _ev())
    _check(15, _ev())  # 10 / 2 / 3: the smallest set accepted with 70/10/20
    _check(12, _ev(ratios=(0.5, 0.25, 0.25)))  # the configured ratios are the ones drawn
    with pytest.raises(
        UserError, match=re.escape("split 0 would have 4 validation and 1 test image(s) out of 12")
    ):
        _check(12, _ev(ratios=(0.6, 0.3, 0.1)))  # too few test images alone


def test_every_split_is_checked_with_the_references() -> None:
    refs = np.arange(10) % 6  # reference-disjoint: split 0 is 6/2/2, split 1 is 7/2/1
    _check(10, _ev(n_splits=1), refs)
    with pytest.raises(
        UserError, match=re.escape("set: split 1 would have 2 validation and 1 test image(s) out of 10")
    ):
        _check(10, _ev(), refs)
    with pytest.raises(UserError, match=re.escape("set: reference-disjoint split impossible: 1 group(s)")):
        _check(30, _ev(), np.zeros(30, dtype=int))  # make_splits' own refusal, named by set


# ------------------------------------------------------------------------------------------ cross-dataset train set
def test_a_cross_dataset_train_set_needs_two_held_out_images() -> None:
    msg = (
        "set: the held-out part (evaluator.val_fraction=0.1) has 1 image(s), the protocol needs >= 2; use more "
        "images or a larger val_fraction"
    )
    with pytest.raises(UserError, match=re.escape(msg)):
        _check(10, _ev(train_on="set"))
    _check(19, _ev(train_on="set"))  # 17 / 2; the random splits (1 val image) are not checked then
    _check(10, _ev(train_on="set", val_fraction=0.2))
    with pytest.raises(UserError, match=re.escape("set: reference-disjoint split impossible")):
        _check(30, _ev(train_on="set"), np.zeros(30, dtype=int))


def test_the_held_out_part_is_drawn_with_the_run_seed() -> None:
    # 3 references of 3, 3 and 1 images: the 10 % part is one whole reference, of 1 or 3 images by the seed
    refs = np.array([0, 0, 0, 1, 1, 1, 2])
    sizes = {}
    for seed in range(6):
        try:
            _check(7, _ev(train_on="set", seed=seed), refs)
            sizes[seed] = "ok"
        except UserError as exc:
            sizes[seed] = str(exc).split(" has ")[1].split(" ")[0]
    assert set(sizes.values()) == {"ok", "1"}


# ------------------------------------------------------------------------------------------ official split
def test_official_parts_replace_the_random_check() -> None:
    parts = np.array(["train"] * 8 + ["val"] * 2 + ["test"] * 2, dtype=object)
    _check(12, _ev(splits="official"), parts=parts)  # 12 images would fail the random splits
    with pytest.raises(UserError, match="split 0 would have 1 validation"):
        _check(12, _ev(splits="official"))  # no parts: random splits
    with pytest.raises(UserError, match="split 0 would have 1 validation"):
        _check(12, _ev(), parts=parts)  # parts, but the random protocol
    with pytest.raises(UserError, match=re.escape("set: the official split has 0 train and 2 test image(s)")):
        _check(4, _ev(splits="official"), parts=np.array(["val", "val", "test", "test"], dtype=object))
    # the references reach the official split: one reference cannot give a disjoint validation part
    carve = np.array(["train"] * 10 + ["test"] * 2, dtype=object)
    _check(12, _ev(splits="official"), None, carve)
    with pytest.raises(UserError, match=re.escape("set: cannot carve a validation part")):
        _check(12, _ev(splits="official"), np.zeros(12, dtype=int), carve)


def test_official_split_refusals() -> None:
    msg = "x: the official split has 5 train and 1 test image(s); use evaluator.splits=random"
    with pytest.raises(UserError, match=re.escape(msg)):
        official_split(np.array(["train"] * 5 + ["test"], dtype=object), None, RATIOS, 0, "x")
    sp = official_split(np.array(["train"] * 8 + ["test"] * 2, dtype=object), None, RATIOS, 0, "x")
    assert sp["test"].tolist() == [8, 9] and sp["val"].size == 1 and sp["train"].size == 7
    with pytest.raises(
        UserError, match=re.escape("x: cannot carve a validation part from the official train part (")
    ):
        official_split(np.array(["train", "test", "test"], dtype=object), None, RATIOS, 0, "x")
    with pytest.raises(UserError, match=re.escape("part (reference-disjoint split impossible: 1 group(s)")):
        official_split(np.array(["train"] * 4 + ["test"] * 2, dtype=object), np.zeros(6), RATIOS, 0, "x")
    with pytest.raises(UserError, match=re.escape(": the official split has 0 train")) as info:
        official_split(np.array(["test"] * 3, dtype=object), None, RATIOS, 0)  # no name: an empty prefix
    assert str(info.value).startswith(": the official split")


def test_official_split_carves_by_the_ratios_seed_and_references() -> None:
    parts = np.array(["test", "train"] * 40 + [None] * 4, dtype=object)  # train at odd indices
    sp = official_split(parts, None, (0.6, 0.2, 0.2), 0)
    assert (
        sp["val"].size == 10 and sp["train"].size == 30
    )  # 0.2 / (0.6 + 0.2) of the 40 official train images
    assert all(v.dtype == np.int64 for v in sp.values())
    assert sp["test"].tolist() == list(range(0, 80, 2))
    assert sorted(sp["train"].tolist() + sp["val"].tolist()) == list(range(1, 80, 2))
    assert np.all(np.diff(sp["train"]) > 0) and np.all(np.diff(sp["val"]) > 0)
    assert set(sp) == {"train", "val", "test"}
    other = official_split(parts, None, (0.6, 0.2, 0.2), 1)
    assert other["val"].tolist() != sp["val"].tolist()  # the seed draws the part
    groups = np.arange(84) // 4  # 2 train images per reference
    sp = official_split(parts, groups, (0.6, 0.2, 0.2), 0)
    assert not set(groups[sp["train"]]) & set(groups[sp["val"]])
    assert sp["val"].size == 10


def test_split_for_logs_and_uses_the_dataset_references(caplog: pytest.LogCaptureFixture) -> None:
    parts = np.array(["train"] * 6 + ["test"] * 2, dtype=object)
    ds = SimpleNamespace(name="toy", parts=parts, refs=np.array([0, 0, 0, 1, 1, 1, 2, 3]))
    with caplog.at_level(logging.INFO, logger="iqa_bench.eval.official_splits"):
        kind, (sp,) = split_for(ds, np.arange(8), False, "official", RATIOS, 0)
        assert kind == "official"
        # the references of the train part are 0 and 1: the val part is one whole reference
        assert sp["val"].tolist() in ([0, 1, 2], [3, 4, 5]) and sp["test"].tolist() == [6, 7]
        assert "toy: official split, 3 train / 3 val / 2 test" in caplog.messages
        assert split_for(SimpleNamespace(parts=None), np.arange(8), False, "official", RATIOS, 0) == (
            "random",
            None,
        )
        assert "dataset defines no official split: random splits" in caplog.messages
        split_for(SimpleNamespace(name="plain", parts=None), np.arange(8), False, "official", RATIOS, 0)
        assert "plain defines no official split: random splits" in caplog.messages
        n = len(caplog.messages)
        assert split_for(ds, np.arange(8), False, "random", RATIOS, 0) == ("random", None)
        assert len(caplog.messages) == n  # the random protocol says nothing
    # rows are crops: the items are the sorted unique ids, out of order in the rows
    ids = np.array([7, 6, 5, 4, 3, 2, 1, 0] * 2)
    _, (crops,) = split_for(ds, ids, True, "official", RATIOS, 0)
    assert crops["test"].tolist() == [6, 7]
    _, (rows,) = split_for(ds, np.array([6, 7, 0, 1, 2, 3, 4, 5]), False, "official", RATIOS, 0)
    assert rows["test"].tolist() == [0, 1]  # without crops the rows are the items, in their order


def test_split_for_on_sets_without_parts_or_references() -> None:
    assert split_for(SimpleNamespace(name="bare"), np.arange(4), False, "official", RATIOS, 0) == (
        "random",
        None,
    )
    no_refs = SimpleNamespace(name="toy", parts=np.array(["train"] * 8 + ["test"] * 2, dtype=object))
    _, (sp,) = split_for(no_refs, np.arange(10), False, "official", RATIOS, 0)
    assert sp["val"].size == 1 and sp["train"].size == 7
    bad = SimpleNamespace(name="toy", parts=np.array(["train"] * 8 + ["test"], dtype=object))
    with pytest.raises(UserError, match=re.escape("toy: the official split has 8 train and 1 test image(s)")):
        split_for(bad, np.arange(9), False, "official", RATIOS, 0)
