"""eval/splits.py: sizes, disjointness, coverage, reference-disjointness, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest

from iqa_bench.eval.splits import make_splits, part_sizes


def _check_partition(sp: dict[str, np.ndarray], n: int) -> None:
    assert set(sp) == {"train", "val", "test"}
    for idx in sp.values():
        assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)  # sorted, unique
    allidx = np.concatenate([sp["train"], sp["val"], sp["test"]])
    assert allidx.size == n and np.array_equal(np.sort(allidx), np.arange(n))  # disjoint and covering


def test_random_splits_follow_ratios():
    for n, sizes in [(1000, (700, 100, 200)), (10073, (7051, 1007, 2015))]:  # KonIQ-10k as in ARNIQA
        for sp in make_splits(n, None, n_splits=3, seed=1):
            _check_partition(sp, n)
            assert (sp["train"].size, sp["val"].size, sp["test"].size) == sizes


@pytest.mark.parametrize(
    "n_refs,expected",
    [(25, (18, 2, 5)), (81, (57, 8, 16)), (29, (20, 3, 6)), (30, (21, 3, 6)), (3, (1, 1, 1))],
)
def test_reference_counts_match_arniqa_split_files(n_refs, expected):
    assert part_sizes(n_refs, (0.7, 0.1, 0.2)) == expected


def test_reference_disjoint_with_groups():
    rng = np.random.default_rng(0)
    groups = rng.permutation(np.repeat([f"ref{i:02d}" for i in range(25)], 24))  # TID2013-like, string ids
    n = groups.size
    for sp in make_splits(n, groups, n_splits=10, seed=3):
        _check_partition(sp, n)
        parts = [set(groups[sp[k]]) for k in ("train", "val", "test")]
        assert [len(p) for p in parts] == [18, 2, 5]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        # every item of a group is in its group's part
        for k, p in zip(("train", "val", "test"), parts):
            assert np.isin(groups, list(p)).sum() == sp[k].size


def test_deterministic_and_seed_sensitive():
    groups = np.repeat(np.arange(30), 5)
    a = make_splits(150, groups, n_splits=6, seed=3)
    b = make_splits(150, groups, n_splits=6, seed=3)
    c = make_splits(150, groups, n_splits=6, seed=4)
    assert all(np.array_equal(x[k], y[k]) for x, y in zip(a, b) for k in x)
    assert any(not np.array_equal(x["test"], y["test"]) for x, y in zip(a, c))
    assert len({tuple(sp["test"]) for sp in a}) == 6  # the splits differ from each other
    # split i depends only on (seed, i), not on how many splits are drawn
    first = make_splits(150, groups, n_splits=2, seed=3)
    assert all(np.array_equal(first[i][k], a[i][k]) for i in range(2) for k in a[i])


def test_too_few_groups_and_bad_arguments():
    with pytest.raises(ValueError, match="2 group.*at least 3"):
        make_splits(10, np.array([0] * 5 + [1] * 5))
    with pytest.raises(ValueError, match="at least 3"):
        make_splits(2, None)
    with pytest.raises(ValueError, match="sum to 1"):
        make_splits(100, None, ratios=(0.7, 0.2, 0.2))
    with pytest.raises(ValueError, match="groups must have shape"):
        make_splits(10, np.arange(9))
    with pytest.raises(ValueError, match="NaN"):
        make_splits(4, np.array([0.0, 1.0, np.nan, 2.0]))
    with pytest.raises(ValueError, match="n_splits"):
        make_splits(10, None, n_splits=0)


def test_zero_val_ratio_gives_empty_val_part():
    sp = make_splits(50, np.repeat(np.arange(10), 5), n_splits=1, ratios=(0.8, 0.0, 0.2))[0]
    _check_partition(sp, 50)
    assert sp["val"].size == 0 and sp["test"].size == 10
    # two groups suffice when only two parts are non-empty
    assert make_splits(4, np.array([0, 0, 1, 1]), n_splits=1, ratios=(0.5, 0.0, 0.5))[0]["test"].size == 2


@pytest.mark.parametrize(
    "ratios,message",
    [
        ((0.7, 0.3), "ratios must be 3 non-negative numbers"),
        ((0.7, float("nan"), 0.3), "ratios must be 3 non-negative numbers"),
        ((1.2, -0.1, -0.1), "ratios must be 3 non-negative numbers"),
        ((0.7, 0.1, 0.1), r"ratios must sum to 1, got \(0.7, 0.1, 0.1\) \(sum 0.9\)"),
        ((0.0, 0.5, 0.5), r"the train ratio must be > 0, got \(0.0, 0.5, 0.5\)"),
    ],
)
def test_bad_ratios_are_named(ratios, message):
    with pytest.raises(ValueError, match=message):
        make_splits(20, None, 2, ratios)


def test_defaults_are_ten_seeded_splits_and_all_train_is_allowed():
    splits = make_splits(20, None)
    assert len(splits) == 10  # the protocol's 10 splits
    assert [s["test"].tolist() for s in splits] == [
        s["test"].tolist() for s in make_splits(20, None, 10, seed=0)
    ]
    (only,) = make_splits(5, None, 1, (1.0, 0.0, 0.0))
    assert sorted(only["train"].tolist()) == [0, 1, 2, 3, 4] and only["val"].size == only["test"].size == 0


@pytest.mark.parametrize(
    "n_units,ratios,expected",
    [
        (4, (0.9, 0.0, 0.1), (3, 0, 1)),  # test rounds to 0 units: it takes one from train
        (10, (0.9, 0.04, 0.06), (8, 1, 1)),  # the largest part gives exactly one unit, it is not reset
        (5, (0.1, 0.05, 0.85), (1, 1, 3)),  # the unit comes from the largest part (test), not from train
    ],
)
def test_every_positive_part_gets_one_unit_from_the_largest(n_units, ratios, expected):
    """Kills `part_sizes` loop mutants: `range(3)` shortened, `-= 1` -> `= 1`, `argmax(sizes)` -> `argmax(None)`."""
    assert part_sizes(n_units, ratios) == expected


def test_single_item_and_empty_input():
    """`n_items < 1` is the bound: one item can be split (all train); zero items are refused by name."""
    (only,) = make_splits(1, None, 1, (1.0, 0.0, 0.0))
    assert only["train"].tolist() == [0] and only["val"].size == only["test"].size == 0
    with pytest.raises(ValueError, match=r"n_items must be >= 1, got 0"):
        make_splits(0, None)


def test_too_few_units_message_names_the_ratios():
    """The ratios are printed as plain floats (not numpy reprs), integer ratios as fractions."""
    with pytest.raises(
        ValueError,
        match=r"cannot split 2 unit\(s\) into 3 non-empty parts \(train/val/test ratios \(0\.7, 0\.1, 0\.2\)\); "
        r"need at least 3",
    ):
        part_sizes(2, (0.7, 0.1, 0.2))
    with pytest.raises(ValueError, match=r"ratios \(1\.0, 0\.0, 0\.0\)\); need at least 1"):
        part_sizes(0, (1, 0, 0))
