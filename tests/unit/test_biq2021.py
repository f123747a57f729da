"""BIQ2021 reader: the real official files (a 2,399-image subset, skipped when absent), generated copies of both
CSV header variants, the official parts, and bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iqa_bench.data.datasets.biq2021 import BIQ2021, TEST_FILE, TRAIN_FILE
from iqa_bench.data.registry import get_dataset
from iqa_bench.errors import UserError
from iqa_bench.train import build_eval_sets
from iqa_bench.utils.resolvers import PROJECT_ROOT

SUBSET = PROJECT_ROOT.parent / "shared" / "data" / "biq2021_subset"
needs_subset = pytest.mark.skipif(
    not (SUBSET / TRAIN_FILE).is_file(), reason=f"BIQ2021 subset not available at {SUBSET}"
)


def _csv_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


# ----------------------------------------------------------------------------------------------- real files
@needs_subset
def test_real_subset_counts_scores_and_parts():
    ds = BIQ2021(SUBSET, check_images="none")
    assert len(ds) == 2399
    assert ds.parts is not None
    assert int((ds.parts == "train").sum()) == 1800 and int((ds.parts == "test").sum()) == 599
    assert ds.refs is None and ds.scores.dtype == np.float64
    assert 0.0 <= ds.scores.min() < 0.2 and 0.8 < ds.scores.max() <= 1.0
    # per-prefix counts stated by the subset's README (train: 1,202 ss03 / 300 ss01 / 298 ss02)
    train_labels = [lab for lab, p in zip(ds.labels, ds.parts) if p == "train"]
    assert sum(lab.startswith("Images/ss03 (") for lab in train_labels) == 1202
    assert sum(lab.startswith("Images/ss02 (") for lab in train_labels) == 298


@needs_subset
def test_real_subset_rows_match_the_csv_files():
    ds = BIQ2021(SUBSET, check_images="none")
    by_label = {lab: (float(s), p) for lab, s, p in zip(ds.labels, ds.scores, ds.parts)}
    train = _csv_rows(SUBSET / TRAIN_FILE)
    test = _csv_rows(SUBSET / TEST_FILE)
    assert train[0] == ["Image Name", "MOS", "", ""] and test[0] == ["Image Name", "MOS"]
    for rows, part in ((train, "train"), (test, "test")):
        for row in (rows[1], rows[2], rows[len(rows) // 2], rows[-1]):
            assert by_label[f"Images/{row[0]}"] == (float(row[1]), part)
    assert " " in train[1][0] and "(" in train[1][0]  # the names really have spaces and parentheses


@needs_subset
def test_real_subset_decodes_512_square_images_with_header_check():
    ds = BIQ2021(SUBSET)  # header check of all 2,399 files (a few KB each)
    assert len(ds) == 2399
    x = ds[0]
    assert x.shape == (3, 512, 512)


@needs_subset
def test_real_subset_through_the_hydra_config(compose_cfg):
    cfg = compose_cfg(
        [
            "data/eval=[biq2021]",
            f"data.eval.biq2021.root={SUBSET}",
            "data.eval.biq2021.check_images=none",
        ],
        config_name="evaluate",
    )
    (ds,) = build_eval_sets(cfg).values()
    assert isinstance(ds, BIQ2021) and len(ds) == 2399 and ds.name == "biq2021"


# ------------------------------------------------------------------------------------------ generated layout
def make_biq(root: Path, train: list[tuple[str, object]], test: list[tuple[str, object]]) -> Path:
    """Official layout: Images/<name> + both CSVs, training file with the two empty trailing columns."""
    (root / "Images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, _ in train + test:
        arr = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
        Image.fromarray(arr).save(root / "Images" / name, format="JPEG")
    lines = ["Image Name,MOS,,"] + [f"{n},{m},," for n, m in train]
    (root / TRAIN_FILE).write_text("\n".join(lines) + "\n")
    lines = ["Image Name,MOS"] + [f"{n},{m}" for n, m in test]
    (root / TEST_FILE).write_text("\n".join(lines) + "\n")
    return root


def test_generated_layout_reads_both_header_variants_and_parts(tmp_path):
    train = [("ss01 (1).jpg", 0.25), ("ss03 (12).jpg", 0.75), ("ss02 (7).jpg", 0.5)]
    test = [("ss01 (2).jpg", 0.125), ("ss03 (8000).jpg", 1.0)]
    ds = BIQ2021(make_biq(tmp_path, train, test))
    assert ds.labels == [f"Images/{n}" for n, _ in train + test]
    np.testing.assert_array_equal(ds.scores, [0.25, 0.75, 0.5, 0.125, 1.0])
    assert ds.parts.tolist() == ["train"] * 3 + ["test"] * 2
    assert ds[4].shape == (3, 20, 24)
    assert get_dataset("biq2021") is BIQ2021


def test_missing_test_csv_names_the_file(tmp_path):
    make_biq(tmp_path, [("a (1).jpg", 0.5)], [("b (1).jpg", 0.4)])
    (tmp_path / TEST_FILE).unlink()
    with pytest.raises(UserError, match=r"score file not found: .*Test \(Images and MOS\)\.csv"):
        BIQ2021(tmp_path)


def test_bad_score_names_file_and_line(tmp_path):
    make_biq(tmp_path, [("a (1).jpg", 0.5), ("a (2).jpg", "n/a")], [("b (1).jpg", 0.4)])
    with pytest.raises(UserError, match=r"Train \(Images and MOS\)\.csv line 3: score 'n/a' is not a number"):
        BIQ2021(tmp_path)


def test_missing_column_names_the_file(tmp_path):
    make_biq(tmp_path, [("a (1).jpg", 0.5)], [("b (1).jpg", 0.4)])
    (tmp_path / TEST_FILE).write_text("Image,Score\nb (1).jpg,0.4\n")
    with pytest.raises(
        UserError, match=r"Test \(Images and MOS\)\.csv line 1: missing column\(s\) \['Image Name'"
    ):
        BIQ2021(tmp_path)


def test_image_in_both_splits_is_a_duplicate(tmp_path):
    make_biq(tmp_path, [("a (1).jpg", 0.5), ("a (2).jpg", 0.6)], [("a (1).jpg", 0.4)])
    with pytest.raises(UserError, match=r"duplicate image .*a \(1\)\.jpg"):
        BIQ2021(tmp_path)
