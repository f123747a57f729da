"""CSIQ (30 references, 866 distorted PNGs, DMOS in [0, 1]).

Layout (`src_imgs.zip`, `dst_imgs.zip` and `csiq.DMOS.xlsx` downloaded side by side into one folder)::

    CSIQ/
        csiq.DMOS.xlsx                       sheet 'all_by_image': image, dst_idx, dst_type, dst_lev, dmos_std, dmos
        dst_imgs/{awgn,blur,contrast,fnoise,jpeg,jpeg2000}/<image>.<TOKEN>.<dst_lev>.png   (e.g. 1600.AWGN.1.png)
        src_imgs/<image>.png

The header row of the sheet is located by its 'image' and 'dmos' cells (it is not the first row). Folder and file
names are matched case-insensitively (some copies use AWGN/, BLUR/). DMOS (lower = better) becomes `1 - DMOS`.
"""

from __future__ import annotations

import os

from iqa_bench.data.datasets.base import Entry, FileEvalSet
from iqa_bench.data.datasets.xlsx import read_xlsx

# dst_type in the sheet -> (folder under dst_imgs/, token in the file name)
TYPES = {
    "noise": ("awgn", "AWGN"),
    "awgn": ("awgn", "AWGN"),
    "jpeg": ("jpeg", "JPEG"),
    "jpeg 2000": ("jpeg2000", "jpeg2000"),
    "jpeg2000": ("jpeg2000", "jpeg2000"),
    "fnoise": ("fnoise", "fnoise"),
    "blur": ("blur", "BLUR"),
    "contrast": ("contrast", "contrast"),
}
REQUIRED = ("image", "dst_type", "dst_lev", "dmos")


class CSIQ(FileEvalSet):
    LAYOUT = (
        "CSIQ downloads side by side: <root>/csiq.DMOS.xlsx (sheet all_by_image) and "
        "<root>/dst_imgs/<type>/<image>.<TYPE>.<level>.png"
    )
    SCORE_RANGE = (0.0, 1.0)
    HAS_REFS = True

    def __init__(
        self,
        root: str | os.PathLike,
        name: str = "csiq",
        score_file: str = "csiq.DMOS.xlsx",
        sheet: str = "all_by_image",
        check_images: str = "header",
        max_missing_frac: float = 0.01,
        short_side: int | None = None,
    ) -> None:
        self.score_file = score_file
        self.sheet = sheet
        super().__init__(root, name, check_images, max_missing_frac, short_side)

    def read_entries(self) -> list[Entry]:
        path = self.require_file(self.score_file)
        rows = read_xlsx(path, self.sheet)
        header_at = None
        for k, (_, cells) in enumerate(rows):
            names = [(c or "").strip().lower() for c in cells]
            if "image" in names and "dmos" in names:
                header_at, cols = k, names
                break
        if header_at is None:
            raise self.fail(
                f"{path.name} sheet {self.sheet!r}", f"no header row with columns {list(REQUIRED)}"
            )
        missing = [c for c in REQUIRED if c not in cols]
        if missing:
            raise self.fail(
                f"{path.name} row {rows[header_at][0]}", f"missing column(s) {missing} (found {cols})"
            )
        idx = {c: cols.index(c) for c in REQUIRED}
        entries = []
        for row_no, cells in rows[header_at + 1 :]:
            where = f"{path.name} sheet {self.sheet!r} row {row_no}"

            def cell(col: str, cells: list[str | None] = cells) -> str:
                j = idx[col]
                return (cells[j] or "").strip() if j < len(cells) else ""

            image = cell("image")
            if not image:
                if any(c for c in cells):
                    raise self.fail(where, "empty 'image' cell")
                continue
            if image.endswith(".0") and image[:-2].isdigit():
                image = image[:-2]  # numbers stored as floats, e.g. 1600.0
            dst_type = cell("dst_type").lower()
            if dst_type not in TYPES:
                raise self.fail(where, f"unknown dst_type {cell('dst_type')!r} (known: {sorted(TYPES)})")
            try:
                level = int(float(cell("dst_lev")))
            except ValueError:
                raise self.fail(where, f"dst_lev {cell('dst_lev')!r} is not a number") from None
            dmos = self.parse_score(cell("dmos"), where)
            folder, token = TYPES[dst_type]
            entries.append(Entry(f"dst_imgs/{folder}/{image}.{token}.{level}.png", 1.0 - dmos, image, where))
        return entries
