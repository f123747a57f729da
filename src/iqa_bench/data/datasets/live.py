"""LIVE Image Quality Assessment Database, Release 2 (29 references, 779 distorted images, DMOS).

Layout (`databaserelease2.zip` unpacked, plus `dmos_realigned.mat` from the same release2 web folder)::

    databaserelease2/
        jp2k/img1.bmp … img227.bmp      jpeg/img1.bmp … img233.bmp
        wn/ gblur/ fastfading/img1.bmp … img174.bmp
        refimgs/  dmos.mat (dmos, orgs)  dmos_realigned.mat (dmos_new, dmos_std, orgs)  refnames_all.mat

The 982 score entries run jp2k 1…227, jpeg 1…233, wn, gblur, fastfading 1…174. Entries with `orgs == 1` are
copies of the references and are dropped (779 remain). DMOS (lower = better, nominally 0–100) becomes
`100 - DMOS` (higher = better). References come from `refnames_all`.
"""

from __future__ import annotations

import os

import numpy as np

from iqa_bench.data.datasets.base import Entry, FileEvalSet, load_mat, mat_numbers, mat_strings
from iqa_bench.errors import ConfigError

FOLDERS = (("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174))
N_ENTRIES = sum(n for _, n in FOLDERS)  # 982
SCORE_FILES = {"realigned": ("dmos_realigned.mat", "dmos_new"), "original": ("dmos.mat", "dmos")}


class LiveIQA(FileEvalSet):
    """LIVE IQA Release 2. `scores`: 'realigned' (`dmos_realigned.mat`, as HyperIQA/ARNIQA) or 'original'
    (`dmos.mat`, as pyiqa)."""

    LAYOUT = (
        "LIVE Release 2 as unpacked from databaserelease2.zip: <root>/{jp2k,jpeg,wn,gblur,fastfading}/imgN.bmp, "
        "<root>/refnames_all.mat and <root>/dmos_realigned.mat (scores: realigned) or <root>/dmos.mat "
        "(scores: original)"
    )
    SCORE_RANGE = (0.0, 100.0)
    HAS_REFS = True

    def __init__(
        self,
        root: str | os.PathLike,
        name: str = "live",
        scores: str = "realigned",
        check_images: str = "header",
        max_missing_frac: float = 0.01,
        short_side: int | None = None,
    ) -> None:
        if scores not in SCORE_FILES:
            raise ConfigError(f"data.eval.{name}.scores must be one of {list(SCORE_FILES)}, got {scores!r}")
        self.score_kind = scores
        super().__init__(root, name, check_images, max_missing_frac, short_side)

    def read_entries(self) -> list[Entry]:
        file, var = SCORE_FILES[self.score_kind]
        score_path = self.require_file(file)
        names_path = self.require_file("refnames_all.mat", "reference-name file")
        dmos = mat_numbers(load_mat(self, score_path, var))
        orgs = mat_numbers(load_mat(self, score_path, "orgs"))
        refnames = mat_strings(load_mat(self, names_path, "refnames_all"))
        for path, what, n in ((score_path, var, len(dmos)), (score_path, "orgs", len(orgs))):
            if n != N_ENTRIES:
                raise self.fail(f"{path}", f"variable {what!r} has {n} entries, expected {N_ENTRIES}")
        if len(refnames) != N_ENTRIES:
            raise self.fail(
                f"{names_path}", f"'refnames_all' has {len(refnames)} entries, expected {N_ENTRIES}"
            )
        entries = []
        i = 0
        for folder, count in FOLDERS:
            for k in range(1, count + 1):
                if orgs[i] != 1:
                    where = f"{score_path.name} entry {i + 1} ({folder}/img{k}.bmp)"
                    if not np.isfinite(dmos[i]):
                        raise self.fail(where, f"score is {dmos[i]} (NaN/inf)")
                    entries.append(Entry(f"{folder}/img{k}.bmp", 100.0 - float(dmos[i]), refnames[i], where))
                i += 1
        return entries
