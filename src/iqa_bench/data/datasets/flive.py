"""FLIVE / PaQ-2-PiQ (LIVE-FB): 39,810 in-the-wild images, MOS 0–100.

Layout (FLIVE_Database cloned and `database_prep.ipynb` run; root = the `database/` folder)::

    database/
        labels_image.csv        name,mos   (name relative to database/, e.g. voc_emotic_ava/AVA__1234.jpg)
        voc_emotic_ava/  blur_dataset/  EE371R/

`exclude_folders` drops images whose path starts with one of the given folders (e.g. [EE371R], as ARNIQA does).

`official_split: auto` (default) reads the official split when both list files exist, `true` requires them, `false`
ignores them. The official split of PaQ-2-PiQ (the files sit in the same `database/` folder): test =
the images of `labels640.csv` (column `name_image`), validation = the rows of `labels=640_padded.csv` whose
`is_valid` is true, train = the rest. Names are matched by path relative to `database/`, else by file name; a
listed name that matches no image is a one-line error. Each image then carries its part for
`evaluator.splits=official`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from iqa_bench.data.datasets.base import Entry, FileEvalSet
from iqa_bench.data.datasets.tables import read_csv_table
from iqa_bench.errors import ConfigError

TRUE = {"true", "1", "yes", "t"}


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
        official_split: bool | str = "auto",
        test_list: str = "labels640.csv",
        val_list: str = "labels=640_padded.csv",
        check_images: str = "header",
        max_missing_frac: float = 0.01,
        short_side: int | None = None,
    ) -> None:
        self.score_file = score_file
        self.exclude_folders = tuple(f.strip("/").lower() + "/" for f in exclude_folders)
        if official_split not in (True, False, "auto"):
            raise ConfigError(
                f"data.eval.{name}.official_split must be true, false or auto, got {official_split!r}"
            )
        self.official_split = official_split
        self.test_list = test_list
        self.val_list = val_list
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
        want = self.official_split
        if want == "auto":
            want = self.resolve(self.test_list) is not None and self.resolve(self.val_list) is not None
        if want:
            entries = self._with_parts(entries)
        return entries

    def _with_parts(self, entries: list[Entry]) -> list[Entry]:
        by_path = {e.path.lower(): i for i, e in enumerate(entries)}
        by_name: dict[str, int] = {}
        for i, e in enumerate(entries):
            by_name.setdefault(e.path.rsplit("/", 1)[-1].lower(), i)
        parts = ["train"] * len(entries)
        for rel, part, flag in ((self.test_list, "test", None), (self.val_list, "val", "is_valid")):
            path = self.require_file(rel, "official split file")
            cols = ("name_image", flag) if flag else ("name_image",)
            for where, row in read_csv_table(self, path, cols):
                if flag and row[flag].lower() not in TRUE:
                    continue
                name = row["name_image"].replace("\\", "/").strip("/").lower()
                i = by_path.get(name, by_name.get(name.rsplit("/", 1)[-1]))
                if i is None:
                    if name.startswith(self.exclude_folders):
                        continue
                    raise self.fail(where, f"{row['name_image']!r} matches no image of {self.score_file}")
                if parts[i] == "train":  # a test image listed again in the val file stays test
                    parts[i] = part
        return [Entry(e.path, e.score, e.ref, e.where, p) for e, p in zip(entries, parts)]
