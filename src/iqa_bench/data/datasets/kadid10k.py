"""KADID-10k (81 references × 25 distortions × 5 levels = 10,125 PNGs).

Layout (`kadid10k.zip` unpacked)::

    kadid10k/
        dmos.csv          header dist_img,ref_img,dmos,var (e.g. I01_01_01.png,I01.png,4.57,0.496)
        images/I01.png … I81.png, IXX_YY_ZZ.png

Despite its name the `dmos` column is quality-oriented (1–5, higher = better, per the dataset's site), so it is
used as is. References come from `ref_img`.
"""

from __future__ import annotations

from iqa_bench.data.datasets.base import Entry, FileEvalSet
from iqa_bench.data.datasets.tables import read_csv_table


class KADID10k(FileEvalSet):
    LAYOUT = "KADID-10k as unpacked from kadid10k.zip: <root>/dmos.csv (dist_img,ref_img,dmos,var) and <root>/images/"
    SCORE_RANGE = (1.0, 5.0)
    HAS_REFS = True
    DEFAULT_NAME = "kadid10k"

    def read_entries(self) -> list[Entry]:
        path = self.require_file("dmos.csv")
        self.require_dir("images")
        entries = []
        for where, row in read_csv_table(self, path, ("dist_img", "ref_img", "dmos")):
            image, ref = row["dist_img"], row["ref_img"]
            if not image:
                raise self.fail(where, "empty 'dist_img'")
            if not ref:
                raise self.fail(where, "empty 'ref_img'")
            entries.append(Entry(f"images/{image}", self.parse_score(row["dmos"], where), ref, where))
        return entries
