"""BIQ2021: 12,000 authentic-distortion photographs (512x512 JPEG), MOS 0–1, higher = better, official split.

Layout (the dataset's public repository as cloned or unpacked)::

    BIQ2021/
        Images/ss01 (1).jpg … ss03 (8000).jpg     names contain spaces and parentheses
        Train (Images and MOS).csv                 official training split, 10,000 rows, header "Image Name,MOS,,"
        Test (Images and MOS).csv                  official test split, 2,000 rows, header "Image Name,MOS"

Both CSVs are read (the training file's two empty trailing columns are ignored); every image carries its official
part (`parts`: 'train' or 'test'), which `evaluator.splits=official` uses. An image listed in both files is a
duplicate (one-line error naming both rows).
"""

from __future__ import annotations

import os

from iqa_bench.data.datasets.base import Entry, FileEvalSet
from iqa_bench.data.datasets.tables import read_csv_table

TRAIN_FILE = "Train (Images and MOS).csv"
TEST_FILE = "Test (Images and MOS).csv"


class BIQ2021(FileEvalSet):
    LAYOUT = (
        f"BIQ2021 repository layout: <root>/{TRAIN_FILE} and <root>/{TEST_FILE} (Image Name,MOS) and "
        "<root>/Images/<name>.jpg"
    )
    SCORE_RANGE = (0.0, 1.0)

    def __init__(
        self,
        root: str | os.PathLike,
        name: str = "biq2021",
        image_dir: str = "Images",
        check_images: str = "header",
        max_missing_frac: float = 0.01,
        short_side: int | None = None,
    ) -> None:
        self.image_dir = image_dir
        super().__init__(root, name, check_images, max_missing_frac, short_side)

    def read_entries(self) -> list[Entry]:
        files = [(self.require_file(TRAIN_FILE), "train"), (self.require_file(TEST_FILE), "test")]
        self.require_dir(self.image_dir)
        entries = []
        for path, part in files:
            for where, row in read_csv_table(self, path, ("Image Name", "MOS")):
                image = row["Image Name"]
                if not image:
                    raise self.fail(where, "empty 'Image Name'")
                score = self.parse_score(row["MOS"], where)
                entries.append(Entry(f"{self.image_dir}/{image}", score, None, where, part))
        return entries
