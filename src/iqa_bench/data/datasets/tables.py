"""CSV score tables: header check and row iteration with 'file line N' locations for error messages."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from iqa_bench.data.datasets.base import FileEvalSet


def read_csv_table(
    owner: FileEvalSet,
    path: Path,
    required: Sequence[str],
    optional: Sequence[str] = (),
) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield `("<file> line N", {column: stripped text})` for every non-empty data row of a comma-separated file
    with a header. Columns are matched exactly, else case-insensitively; `optional` columns that are absent are
    left out of the dicts. `UserError` naming the file if a required column is missing."""
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise owner.fail(str(path), "empty file, expected a header line")
        header = [h.strip() for h in header]
        lower = {h.lower(): i for i, h in reversed(list(enumerate(header)))}
        cols: dict[str, int] = {}
        for name in (*required, *optional):
            if name in header:
                cols[name] = header.index(name)
            elif name.lower() in lower:
                cols[name] = lower[name.lower()]
        missing = [c for c in required if c not in cols]
        if missing:
            raise owner.fail(f"{path} line 1", f"missing column(s) {missing}; header is {header}")
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            where = f"{path.name} line {reader.line_num}"
            yield where, {c: (row[i].strip() if i < len(row) else "") for c, i in cols.items()}
