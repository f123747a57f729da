"""Any folder of images with a CSV score table `path,mos[,ref]` (the generic `csv` dataset).

Layout::

    <root>/
        scores.csv       header with at least path,mos (ref optional); paths relative to <root> or absolute
        <images…>

`higher_better: false` marks DMOS-like scores: they are negated so that higher = better. With a `ref` column,
splits are reference-disjoint; every row must then name its reference.
"""

from __future__ import annotations

import os

from iqa_bench.data.datasets.base import Entry, FileEvalSet
from iqa_bench.data.datasets.tables import read_csv_table


class CsvFolder(FileEvalSet):
    LAYOUT = "<root>/<file> with a header naming at least the path and score columns (path,mos[,ref])"

    def __init__(
        self,
        root: str | os.PathLike,
        name: str = "csv",
        file: str = "scores.csv",
        path_column: str = "path",
        score_column: str = "mos",
        ref_column: str | None = "ref",
        higher_better: bool = True,
        check_images: str = "header",
        max_missing_frac: float = 0.01,
        short_side: int | None = None,
    ) -> None:
        self.file = file
        self.path_column = path_column
        self.score_column = score_column
        self.ref_column = ref_column
        self.higher_better = bool(higher_better)
        super().__init__(root, name, check_images, max_missing_frac, short_side)

    def read_entries(self) -> list[Entry]:
        path = self.require_file(self.file)
        optional = (self.ref_column,) if self.ref_column else ()
        sign = 1.0 if self.higher_better else -1.0
        entries = []
        for where, row in read_csv_table(self, path, (self.path_column, self.score_column), optional):
            image = row[self.path_column]
            if not image:
                raise self.fail(where, f"empty {self.path_column!r}")
            ref = None
            if self.ref_column in row:
                ref = row[self.ref_column]
                if not ref:
                    raise self.fail(
                        where, f"empty {self.ref_column!r} (every row needs one when the column exists)"
                    )
            entries.append(Entry(image, sign * self.parse_score(row[self.score_column], where), ref, where))
        return entries
