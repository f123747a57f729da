"""FLIVE / PaQ-2-PiQ (LIVE-FB): 39,810 in-the-wild images, MOS 0–100.

Layout (FLIVE_Database cloned and `database_prep.ipynb` run; root = the `database/` folder)::

    database/
        labels_image.csv        name,mos   (name relative to database/, e.g. voc_emotic_ava/AVA__1234.jpg)
        voc_emotic_ava/  blur_dataset/  EE371R/

`exclude_folders` drops images whose path starts with one of the given folders (e.g. [EE371R], as ARNIQA does).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from iqa_bench.data.datasets.base import Entry, FileEvalSet
from iqa_bench.data.datasets.tables import read_csv_table


class FLIVE(FileEvalSet):
    LAYOUT = (
        "FLIVE database/ folder as built by FLIVE_Database's database_prep.ipynb: <root>/labels_image.csv "
        "(name,mos) and the image folders it names (voc_emotic_ava/, blur_dataset/, EE371R/)"
    )
    SCORE_RANGE = (0.0, 100.0)

    def __init__(
        self,
        root: str | os.PathLike,
        name: str = "flive",
        score_file: str = "labels_image.csv",
        exclude_folders: Sequence[str] = (),
        check_images: str = "header",
        max_missing_frac: float = 0.01,
        short_side: int | None = None,
    ) -> None:
        self.score_file = score_file
        self.exclude_folders = tuple(f.strip("/").lower() + "/" for f in exclude_folders)
        super().__init__(root, name, check_images, max_missing_frac, short_side)

    def read_entries(self) -> list[Entry]:
        path = self.require_file(self.score_file)
        entries = []
        for where, row in read_csv_table(self, path, ("name", "mos")):
            image = row["name"].replace("\\", "/")
            if not image:
                raise self.fail(where, "empty 'name'")
            if image.lower().startswith(self.exclude_folders):
                continue
            entries.append(Entry(image, self.parse_score(row["mos"], where), None, where))
        return entries
