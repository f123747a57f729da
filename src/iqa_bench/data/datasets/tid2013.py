"""TID2013 (25 references × 24 distortions × 5 levels = 3000 BMPs, MOS 0–9, higher = better).

Layout (`tid2013.rar` unpacked)::

    tid2013/
        mos_with_names.txt        3000 lines '<mos> <name>', no header (e.g. '5.51429 i01_01_1.bmp')
        distorted_images/iXX_YY_Z.bmp   (case differs between files and the list: matched case-insensitively)
        reference_images/I01.BMP … i25.bmp

The reference of `iXX_YY_Z.bmp` is XX.
"""

from __future__ import annotations

import re

from iqa_bench.data.datasets.base import Entry, FileEvalSet

NAME = re.compile(r"[iI](\d\d)_(\d\d)_(\d)\.bmp", re.IGNORECASE)


class TID2013(FileEvalSet):
    LAYOUT = (
        "TID2013 as unpacked from tid2013.rar: <root>/mos_with_names.txt ('<mos> <name>' lines) and "
        "<root>/distorted_images/iXX_YY_Z.bmp"
    )
    SCORE_RANGE = (0.0, 9.0)
    HAS_REFS = True
    DEFAULT_NAME = "tid2013"

    def read_entries(self) -> list[Entry]:
        path = self.require_file("mos_with_names.txt")
        self.require_dir("distorted_images")
        entries = []
        with path.open(encoding="utf-8-sig", errors="replace") as fh:
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"{path.name} line {line_no}"
                parts = line.split(None, 1)
                if len(parts) != 2:
                    raise self.fail(where, f"expected '<mos> <image name>', got {line.strip()!r}")
                score = self.parse_score(parts[0], where)
                image = parts[1].strip()
                m = NAME.fullmatch(image)
                if m is None:
                    raise self.fail(where, f"image name {image!r} is not of the form iXX_YY_Z.bmp")
                entries.append(Entry(f"distorted_images/{image}", score, m.group(1), where))
        return entries
