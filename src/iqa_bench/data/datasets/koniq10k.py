"""KonIQ-10k (10,073 in-the-wild JPEGs, no references).

Layout (`koniq10k_1024x768.zip` [and/or `koniq10k_512x384.zip`] and `koniq10k_scores_and_distributions.zip`
unpacked into one folder)::

    koniq10k/
        koniq10k_scores_and_distributions.csv   image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,MOS_zscore
        1024x768/<flickr id>.jpg                (512x384/ for the half-size copy)

`score_column`: 'MOS' (mean rating, 1–5) or 'MOS_zscore' (0–100, as pyiqa/HyperIQA); both higher = better.

`split_file` (default null): the official split, `koniq10k_distributions_sets.csv` from the dataset's GitHub
metadata (`image_name,…,set`, set = training / validation / test, 7058 / 1000 / 2015), placed in the root. Each
image then carries its part (`parts`) for `evaluator.splits=official`; an image the file does not list stays
outside the split.
"""

from __future__ import annotations

import os

from iqa_bench.data.datasets.base import Entry, FileEvalSet
from iqa_bench.data.datasets.tables import read_csv_table
from iqa_bench.errors import ConfigError

SCORE_FILE = "koniq10k_scores_and_distributions.csv"
RANGES = {"MOS": (1.0, 5.0), "MOS_zscore": (0.0, 100.0)}
SET_NAMES = {"training": "train", "validation": "val", "test": "test"}


class KonIQ10k(FileEvalSet):
    LAYOUT = (
        f"KonIQ-10k archives unpacked side by side: <root>/{SCORE_FILE} and <root>/<image_dir>/<id>.jpg "
        "(image_dir 1024x768 or 512x384)"
    )
    SCORE_RANGE = RANGES["MOS"]

    def __init__(
        self,
        root: str | os.PathLike,
        name: str = "koniq10k",
        image_dir: str = "1024x768",
        score_column: str = "MOS",
        split_file: str | None = None,
        check_images: str = "header",
        max_missing_frac: float = 0.01,
        short_side: int | None = None,
    ) -> None:
        if score_column not in RANGES:
            raise ConfigError(
                f"data.eval.{name}.score_column must be one of {list(RANGES)}, got {score_column!r}"
            )
        self.image_dir = image_dir
        self.score_column = score_column
        self.split_file = split_file
        self.SCORE_RANGE = RANGES[score_column]
        super().__init__(root, name, check_images, max_missing_frac, short_side)

    def read_entries(self) -> list[Entry]:
        path = self.require_file(SCORE_FILE)
        self.require_dir(self.image_dir)
        parts = self._official_parts() if self.split_file else {}
        entries = []
        for where, row in read_csv_table(self, path, ("image_name", self.score_column)):
            if not row["image_name"]:
                raise self.fail(where, "empty 'image_name'")
            score = self.parse_score(row[self.score_column], where)
            part = parts.get(row["image_name"])
            entries.append(Entry(f"{self.image_dir}/{row['image_name']}", score, None, where, part))
        return entries

    def _official_parts(self) -> dict[str, str]:
        """image_name -> 'train' / 'val' / 'test' from the official `set` column."""
        path = self.require_file(str(self.split_file), "official split file")
        parts: dict[str, str] = {}
        for where, row in read_csv_table(self, path, ("image_name", "set")):
            part = SET_NAMES.get(row["set"].lower())
            if part is None:
                raise self.fail(where, f"set {row['set']!r} is not one of {sorted(SET_NAMES)}")
            parts[row["image_name"]] = part
        return parts
