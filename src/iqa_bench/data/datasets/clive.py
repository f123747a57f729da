"""LIVE In the Wild Image Quality Challenge Database (CLIVE): 1162 authentic images, MOS 0–100.

Layout (`ChallengeDB_release.zip` unpacked; a doubly nested `ChallengeDB_release/ChallengeDB_release/` is
accepted)::

    ChallengeDB_release/
        Data/AllImages_release.mat   AllImages_release: 1169x1 cell of file names (first 7: t1.bmp … t7.bmp)
        Data/AllMOS_release.mat      AllMOS_release: 1x1169 MOS, higher = better
        Images/<n>.bmp|.JPG          the 1162 test images
        Images/trainingImages/t1.bmp … t7.bmp

By convention the 7 training images (the first 7 entries) are excluded (`exclude_training: true`).
"""

from __future__ import annotations

import os

import numpy as np

from iqa_bench.data.datasets.base import Entry, FileEvalSet, load_mat, mat_numbers, mat_strings

N_TRAINING = 7


class CLIVE(FileEvalSet):
    LAYOUT = (
        "CLIVE as unpacked from ChallengeDB_release.zip: <root>/Data/AllMOS_release.mat, "
        "<root>/Data/AllImages_release.mat and <root>/Images/ (root = .../ChallengeDB_release)"
    )
    SCORE_RANGE = (0.0, 100.0)

    def __init__(
        self,
        root: str | os.PathLike,
        name: str = "clive",
        exclude_training: bool = True,
        check_images: str = "header",
        max_missing_frac: float = 0.01,
        short_side: int | None = None,
    ) -> None:
        self.exclude_training = bool(exclude_training)
        super().__init__(root, name, check_images, max_missing_frac, short_side)

    def read_entries(self) -> list[Entry]:
        prefix = ""
        if self.resolve("Data", want_dir=True) is None and self.resolve(
            "ChallengeDB_release/Data", want_dir=True
        ):
            prefix = "ChallengeDB_release/"  # some zips nest the folder twice
        mos_path = self.require_file(f"{prefix}Data/AllMOS_release.mat")
        names_path = self.require_file(f"{prefix}Data/AllImages_release.mat", "image-name file")
        mos = mat_numbers(load_mat(self, mos_path, "AllMOS_release"))
        names = mat_strings(load_mat(self, names_path, "AllImages_release"))
        if len(mos) != len(names):
            raise self.fail(
                f"{mos_path.parent}",
                f"AllMOS_release has {len(mos)} entries but AllImages_release {len(names)}",
            )
        entries = []
        for i, (score, image) in enumerate(zip(mos, names)):
            training = i < N_TRAINING
            if training and self.exclude_training:
                continue
            where = f"{mos_path.name} entry {i + 1} ({image})"
            if not image:
                raise self.fail(f"{names_path.name} entry {i + 1}", "empty image name")
            if not np.isfinite(score):
                raise self.fail(where, f"score is {score} (NaN/inf)")
            folder = f"{prefix}Images/trainingImages" if training else f"{prefix}Images"
            entries.append(Entry(f"{folder}/{image}", float(score), None, where))
        return entries
