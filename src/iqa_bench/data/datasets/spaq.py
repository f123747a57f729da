"""SPAQ: 11,125 smartphone photos, MOS 0–100, no references.

Layout (the SPAQ download folder)::

    SPAQ/
        Annotations/MOS and Image attribute scores.xlsx   Image name, MOS, Brightness, Colorfulness, ...
        TestImage/00001.jpg … 11125.jpg

The photos are full phone resolution; by convention (SPAQ's own demo, ARNIQA, pyiqa) they are resized so the
short side is 512 (`short_side: 512`; null keeps the originals).
"""

from __future__ import annotations

import os

from iqa_bench.data.datasets.base import Entry, FileEvalSet
from iqa_bench.data.datasets.xlsx import read_xlsx

SCORE_FILE = "Annotations/MOS and Image attribute scores.xlsx"


class SPAQ(FileEvalSet):
    LAYOUT = f"SPAQ download folder: <root>/{SCORE_FILE} (Image name, MOS) and <root>/TestImage/<name>.jpg"
    SCORE_RANGE = (0.0, 100.0)

    def __init__(
        self,
        root: str | os.PathLike,
        name: str = "spaq",
        image_dir: str = "TestImage",
        check_images: str = "header",
        max_missing_frac: float = 0.01,
        short_side: int | None = 512,
    ) -> None:
        self.image_dir = image_dir
        super().__init__(root, name, check_images, max_missing_frac, short_side)

    def read_entries(self) -> list[Entry]:
        path = self.require_file(SCORE_FILE)
        self.require_dir(self.image_dir)
        rows = read_xlsx(path)
        header_at = None
        for k, (_, cells) in enumerate(rows):
            names = [(c or "").strip().lower() for c in cells]
            if "image name" in names and "mos" in names:
                header_at, i_name, i_mos = k, names.index("image name"), names.index("mos")
                break
        if header_at is None:
            raise self.fail(path.name, "no header row with columns 'Image name' and 'MOS'")
        entries = []
        for row_no, cells in rows[header_at + 1 :]:
            where = f"{path.name} row {row_no}"
            image = (cells[i_name] or "").strip() if i_name < len(cells) else ""
            if not image:
                raise self.fail(where, "empty 'Image name'")
            score = self.parse_score(cells[i_mos] if i_mos < len(cells) else None, where)
            entries.append(Entry(f"{self.image_dir}/{image}", score, None, where))
        return entries
