"""A dataset's official train/val/test split as the protocol's single predefined split (`evaluator.splits=official`).

A set that defines an official split carries `parts` (one of 'train' / 'val' / 'test' / None per image: BIQ2021's
train and test CSVs). Items outside the split (None) are left out. When the split has no validation part (BIQ2021:
train/test only), validation is carved from the official train part: a seeded fraction val / (train + val) of
`ratios` (12.5 % for 70/10/20), reference-disjoint when the set has references; the official test part is never
touched. The official protocol is one split (no median over repeats), as ARNIQA's FLIVE number.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from iqa_bench.errors import UserError
from iqa_bench.eval.splits import make_splits

__all__ = ["SPLIT_MODES", "official_split", "split_for"]

log = logging.getLogger(__name__)

SPLIT_MODES = ("random", "official")


def official_split(
    parts: np.ndarray, groups: np.ndarray | None, ratios: Sequence[float], seed: int, name: str = ""
) -> dict[str, np.ndarray]:
    """{'train', 'val', 'test'} sorted int64 indices into `parts` (N,) from its part labels; val carved from
    train when no item is labelled 'val' (module docstring). `UserError` when the train or test part is empty or
    too small to carve a val part."""
    parts = np.asarray(parts, dtype=object)
    idx = {k: np.flatnonzero(parts == k).astype(np.int64) for k in ("train", "val", "test")}
    if idx["train"].size == 0 or idx["test"].size < 2:
        raise UserError(
            f"{name}: the official split has {idx['train'].size} train and {idx['test'].size} test image(s); "
            "use evaluator.splits=random"
        )
    if idx["val"].size == 0:
        frac = float(ratios[1]) / (float(ratios[0]) + float(ratios[1]))
        train = idx["train"]
        sub_groups = None if groups is None else np.asarray(groups)[train]
        try:
            sp = make_splits(train.size, sub_groups, 1, (1.0 - frac, frac, 0.0), seed)[0]
        except ValueError as exc:
            raise UserError(
                f"{name}: cannot carve a validation part from the official train part ({exc})"
            ) from None
        idx["train"], idx["val"] = train[sp["train"]], train[sp["val"]]
    return idx


def split_for(
    ds: Any,
    item_ids: np.ndarray,
    per_crop: bool,
    mode: str,
    ratios: Sequence[float],
    seed: int,
) -> tuple[str, list[dict[str, np.ndarray]] | None]:
    """('official', [split]) for `mode='official'` on a set with `parts`, else ('random', None) (the protocol
    then draws its seeded splits). `item_ids` (rows,) are the dataset indices of the feature rows; with `per_crop`
    the protocol's items are the sorted unique ids, else the rows themselves."""
    parts = getattr(ds, "parts", None)
    if mode != "official" or parts is None:
        if mode == "official":
            log.info("%s defines no official split: random splits", getattr(ds, "name", "dataset"))
        return "random", None
    ds_index = np.unique(item_ids) if per_crop else np.asarray(item_ids)
    refs = getattr(ds, "refs", None)
    groups = None if refs is None else np.asarray(refs)[ds_index]
    split = official_split(np.asarray(parts, dtype=object)[ds_index], groups, ratios, seed, ds.name)
    log.info(
        "%s: official split, %d train / %d val / %d test",
        ds.name,
        split["train"].size,
        split["val"].size,
        split["test"].size,
    )
    return "official", [split]
