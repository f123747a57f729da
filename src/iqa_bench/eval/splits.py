"""Seeded train/val/test splits, random by item or disjoint by reference (content) group."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["PARTS", "make_splits", "part_sizes"]

PARTS = ("train", "val", "test")


def _check_ratios(ratios: Sequence[float]) -> np.ndarray:
    r = np.asarray(ratios, dtype=np.float64)
    if r.shape != (3,) or not np.all(np.isfinite(r)) or np.any(r < 0):
        raise ValueError(f"ratios must be 3 non-negative numbers (train, val, test), got {tuple(ratios)}")
    if not np.isclose(r.sum(), 1.0, atol=1e-6):
        raise ValueError(f"ratios must sum to 1, got {tuple(ratios)} (sum {r.sum():g})")
    if r[0] == 0:
        raise ValueError(f"the train ratio must be > 0, got {tuple(ratios)}")
    return r


def part_sizes(n_units: int, ratios: Sequence[float]) -> tuple[int, int, int]:
    """Number of units (items or groups) in (train, val, test) for `n_units` units.

    val and test get round(ratio * n_units) (round half to even, so TID2013's 25 references give 18/2/5, KADID's
    81 give 57/8/16, LIVE's 29 give 20/3/6), train gets the rest; then every part with a positive ratio gets at
    least one unit, taken from the largest part. ValueError if `n_units` is smaller than the number of parts with a
    positive ratio."""
    r = _check_ratios(ratios)
    need = int(np.count_nonzero(r > 0))
    if n_units < need:
        raise ValueError(
            f"cannot split {n_units} unit(s) into {need} non-empty parts (train/val/test ratios {tuple(r.tolist())}); "
            f"need at least {need}"
        )
    val = int(np.rint(r[1] * n_units))
    test = int(np.rint(r[2] * n_units))
    sizes = [n_units - val - test, val, test]
    for i in range(3):
        while r[i] > 0 and sizes[i] < 1:
            sizes[int(np.argmax(sizes))] -= 1
            sizes[i] += 1
    return sizes[0], sizes[1], sizes[2]


def make_splits(
    n_items: int,
    groups: np.ndarray | None,
    n_splits: int = 10,
    ratios: Sequence[float] = (0.7, 0.1, 0.2),
    seed: int = 0,
) -> list[dict[str, np.ndarray]]:
    """`n_splits` seeded train/val/test splits of items 0..n_items-1.

    Args:
        n_items: number of items (images) to split, >= 1.
        groups: (n_items,) reference/content id per item (any hashable dtype), or None. With groups the split is
            reference-disjoint: the unique groups (in sorted order) are permuted and cut into train/val/test by
            `part_sizes(n_groups, ratios)`, and every item of a group lands in the group's part; the item counts
            then only approximate the ratios. Without groups the items themselves are permuted and cut.
        n_splits: number of splits, >= 1.
        ratios: (train, val, test) fractions, non-negative, summing to 1, train > 0. A zero ratio gives an empty
            part (e.g. (0.8, 0, 0.2) for train/test protocols).
        seed: split i is drawn with `np.random.default_rng([seed, i])`, so split i does not depend on n_splits and
            different seeds give different splits.

    Returns:
        A list of `n_splits` dicts {'train', 'val', 'test'} -> sorted int64 index arrays, disjoint and together
        covering range(n_items).

    Raises:
        ValueError: too few items or groups for the non-empty parts (fewer than 3 groups for 70/10/20), a
            `groups` array of the wrong length or with NaN, or bad ratios / n_splits.
    """
    n_items = int(n_items)
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    if int(n_splits) < 1:
        raise ValueError(f"n_splits must be >= 1, got {n_splits}")
    if groups is None:
        codes = np.arange(n_items)
        n_units = n_items
    else:
        g = np.asarray(groups)
        if g.shape != (n_items,):
            raise ValueError(f"groups must have shape ({n_items},) (one id per item), got {g.shape}")
        if g.dtype.kind == "f" and np.isnan(g).any():
            raise ValueError(f"groups contains NaN (first at index {int(np.flatnonzero(np.isnan(g))[0])})")
        _, codes = np.unique(g, return_inverse=True)
        codes = codes.reshape(-1)
        n_units = int(codes.max()) + 1
    try:
        n_train, n_val, _ = part_sizes(n_units, ratios)
    except ValueError as exc:
        if groups is None:
            raise
        raise ValueError(
            f"reference-disjoint split impossible: {n_units} group(s) in `groups`; {exc}"
        ) from None
    splits = []
    for i in range(int(n_splits)):
        perm = np.random.default_rng([int(seed), i]).permutation(n_units)
        part_of_unit = np.empty(n_units, dtype=np.int64)
        part_of_unit[perm[:n_train]] = 0
        part_of_unit[perm[n_train : n_train + n_val]] = 1
        part_of_unit[perm[n_train + n_val :]] = 2
        part = part_of_unit[codes]
        splits.append({name: np.flatnonzero(part == k).astype(np.int64) for k, name in enumerate(PARTS)})
    return splits
