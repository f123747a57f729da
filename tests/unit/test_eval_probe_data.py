"""Input checks and row/item bookkeeping of the split protocols: the first bad row, score shapes, items made of
several rows (means per item, in the items' order), reference ids per item, and predefined splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iqa_bench.eval.probe_data import check_data, check_splits, first_bad_row, items_of


def test_first_bad_row_in_vectors_and_matrices() -> None:
    assert first_bad_row(np.array([1.0, 2.0, 3.0])) is None
    assert first_bad_row(np.array([1.0, np.inf, np.nan])) == 1
    X = np.ones((4, 3))
    assert first_bad_row(X) is None
    X[2, 1], X[3, 0] = np.nan, -np.inf
    assert first_bad_row(X) == 2
    X[0, 2] = np.inf  # any column of a row
    assert first_bad_row(X) == 0


def test_check_data_shapes_types_and_messages() -> None:
    X = np.arange(6.0).reshape(3, 2)
    Xc, y = check_data(X, torch.tensor([[1.0], [2.0], [3.0]], requires_grad=True))
    assert y.dtype == np.float64 and y.tolist() == [1.0, 2.0, 3.0] and Xc.shape == (3, 2)
    assert check_data(X, [3, 2, 1])[1].dtype == np.float64
    with pytest.raises(ValueError) as err:
        check_data(X, np.ones(4), prefix="b/")
    assert str(err.value) == "b/scores must have shape (3,) to match b/features (3, 2), got (4,)"
    with pytest.raises(ValueError, match=r"^scores must have shape \(3,\) .* got \(3, 2\)$"):
        check_data(X, np.ones((3, 2)))
    bad = X.copy()
    bad[1, 0] = np.nan
    with pytest.raises(ValueError) as err:
        check_data(bad, np.ones(3), prefix="t/")
    assert str(err.value) == "t/features contain NaN/inf (first bad row 1)"
    with pytest.raises(ValueError) as err:
        check_data(X, [1.0, 2.0, np.inf], prefix="t/")
    assert str(err.value) == "t/scores contain NaN/inf (first bad row 2)"


def test_items_of_rows_single_row_and_groups() -> None:
    y = np.array([5.0, 6.0, 7.0])
    it = items_of(y, None, None)
    assert it.single_row and it.n == 3 and it.ids.tolist() == [0, 1, 2] and it.groups is None
    assert it.rows(np.array([0, 2])).tolist() == [0, 2]
    g = items_of(y, [4, 4, 9], None)
    assert g.groups.tolist() == [4, 4, 9]
    same = items_of(y, None, np.array([10, 11, 12]))  # one row per item, in order: no per-item work
    assert same.single_row and same.ids.tolist() == [10, 11, 12]
    shuffled = items_of(y, None, np.array([2, 0, 1]))
    assert (
        not shuffled.single_row
        and shuffled.ids.tolist() == [0, 1, 2]
        and shuffled.scores.tolist() == [6, 7, 5]
    )


def test_items_of_several_rows_means_in_item_order() -> None:
    ids = np.array([7, 3, 7, 5, 3, 3, 5])
    y = np.array([2.0, 1.0, 2.0, 4.0, 1.0, 1.0, 4.0])
    refs = np.array([0, 1, 0, 1, 1, 1, 1])
    it = items_of(y, refs, ids)
    assert not it.single_row and it.n == 3
    assert (
        it.ids.tolist() == [3, 5, 7]
        and it.scores.tolist() == [1.0, 4.0, 2.0]
        and it.groups.tolist() == [1, 1, 0]
    )
    assert it.item_of_row.tolist() == [2, 0, 2, 1, 0, 0, 1]
    items = np.array([0, 2])
    rows = it.rows(items)
    assert rows.tolist() == [0, 1, 2, 4, 5]
    pred = np.arange(7.0) * 10
    means = it.mean_over_items(pred[rows], rows, items)
    assert means.tolist() == [(10 + 40 + 50) / 3, (0 + 20) / 2]
    curves = np.stack([pred, -pred])  # (alphas, rows)
    np.testing.assert_allclose(it.mean_over_items(curves[:, rows], rows, items), [means, -means])
    single = items_of(np.arange(3.0), None, None)
    assert single.mean_over_items(np.array([9.0, 8.0]), np.array([0, 2]), np.array([0, 2])).tolist() == [9, 8]


def test_items_of_messages() -> None:
    y = np.arange(4.0)
    with pytest.raises(ValueError) as err:
        items_of(y, np.zeros(3), None)
    assert str(err.value) == "groups must have shape (4,) (one reference id per row), got (3,)"
    with pytest.raises(ValueError) as err:
        items_of(y, np.array([0.0, 1.0, np.nan, np.nan]), None)
    assert str(err.value) == "groups contain NaN (first bad row 2)"
    assert items_of(y, np.array(["a", "b", "a", "b"]), None).groups.tolist() == ["a", "b", "a", "b"]
    with pytest.raises(ValueError) as err:
        items_of(y, None, np.zeros((4, 1)))
    assert str(err.value) == "item_ids must have shape (4,) (one item id per row), got (4, 1)"
    with pytest.raises(ValueError) as err:
        items_of(np.array([1.0, 1.0, 2.0, 3.0]), None, np.array(["a", "b", "a", "b"]))
    assert str(err.value) == "scores must be equal on all rows of an item; row 2 differs (item 'a')"
    with pytest.raises(ValueError) as err:
        items_of(np.ones(4), np.array([0, 0, 1, 0]), np.array([5, 6, 6, 5]))
    assert str(err.value) == "groups must be equal on all rows of an item; row 2 differs (item 6)"
    with pytest.raises(ValueError) as err:  # ids held as Python objects (e.g. a list mixing str subclasses)
        items_of(np.array([1.0, 1.0, 2.0, 3.0]), None, np.array(["a", "b", "a", "b"], dtype=object))
    assert str(err.value) == "scores must be equal on all rows of an item; row 2 differs (item 'a')"


def test_check_splits_sorts_and_refuses_bad_parts() -> None:
    (sp,) = check_splits([{"train": [4, 0], "val": np.array([3, 1], np.uint8), "test": [2]}], 5)
    assert {k: (v.dtype, v.tolist()) for k, v in sp.items()} == {
        "train": (np.int64, [0, 4]),
        "val": (np.int64, [1, 3]),
        "test": (np.int64, [2]),
    }
    assert check_splits([{"train": [0, 1], "val": [], "test": [2]}], 3)[0]["val"].tolist() == []
    cases = [
        ([], "splits must contain at least one split"),
        ([{"train": [0], "val": [1]}], "splits[0] lacks the 'test' part"),
        (
            [{"train": [0], "val": [1], "test": [2]}, {"train": [0.0], "val": [1], "test": [2]}],
            "splits[1]['train'] must be a 1-D integer index array",
        ),
        ([{"train": [[0]], "val": [1], "test": [2]}], "splits[0]['train'] must be a 1-D integer index array"),
        (
            [{"train": [0], "val": [-1], "test": [2]}],
            "splits[0]['val'] has indices outside [0, 3) (padding such as -1 must be removed)",
        ),
        ([{"train": [0], "val": [1], "test": [3]}], "splits[0]['test'] has indices outside [0, 3)"),
        ([{"train": [0, 0], "val": [1], "test": [2]}], "splits[0]['train'] repeats an index"),
        ([{"train": [0, 1], "val": [1], "test": [2]}], "splits[0]: train, val and test overlap"),
    ]
    for splits, message in cases:
        with pytest.raises(ValueError) as err:
            check_splits(splits, 3)
        assert str(err.value).startswith(message), (str(err.value), message)
