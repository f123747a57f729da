"""PIPAL public training set: 200 references × 116 distorted images = 23,200 BMPs, Elo scores (higher = better).

Layout (NTIRE training download unpacked)::

    PIPAL/
        Train_Ref/A0001.bmp …
        Distortion_1/ … Distortion_4/   A<ref>_<GG>_<NN>.bmp   (Distortion1…4 also accepted)
        Train_Label/A0001.txt …          one 'name,score' line per distorted image, no header

The reference of `A0001_00_00.bmp` is `A0001`. Validation/test labels are withheld by the challenge, so only the
training set is scored.
"""

from __future__ import annotations

import os
import re

from iqa_bench.data.datasets.base import Entry, FileEvalSet

DIST_DIR = re.compile(r"distortion_?\d+", re.IGNORECASE)


class PIPAL(FileEvalSet):
    LAYOUT = (
        "PIPAL training set: <root>/Train_Label/A####.txt ('name,score' lines) and "
        "<root>/Distortion_1/ … Distortion_4/ holding the distorted BMPs"
    )
    SCORE_RANGE = (900.0, 1900.0)
    HAS_REFS = True
    DEFAULT_NAME = "pipal"

    def read_entries(self) -> list[Entry]:
        label_dir = self.require_dir("Train_Label", "label folder")
        label_files = sorted(p for p in label_dir.iterdir() if p.suffix.lower() == ".txt")
        if not label_files:
            raise self.fail(str(label_dir), f"no .txt label files; expected {self.LAYOUT}")
        dist_dirs = sorted(p.name for p in self.root.iterdir() if p.is_dir() and DIST_DIR.fullmatch(p.name))
        if not dist_dirs:
            raise self.fail(str(self.root), f"no Distortion_1 … Distortion_4 folders; expected {self.LAYOUT}")
        where_is: dict[str, str] = {}
        for d in dist_dirs:
            for f in os.listdir(self.root / d):
                where_is.setdefault(f.lower(), f"{d}/{f}")
        entries = []
        for lf in label_files:
            with lf.open(encoding="utf-8-sig", errors="replace") as fh:
                for line_no, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    where = f"Train_Label/{lf.name} line {line_no}"
                    parts = [p.strip() for p in line.split(",")]
                    if len(parts) != 2 or not parts[0]:
                        raise self.fail(where, f"expected 'name,score', got {line.strip()!r}")
                    image, score = parts[0], self.parse_score(parts[1], where)
                    rel = where_is.get(image.lower(), f"Distortion_*/{image}")  # absent: reported as missing
                    entries.append(Entry(rel, score, image.split("_", 1)[0], where))
        return entries
