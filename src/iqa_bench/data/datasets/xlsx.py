"""Read the score sheets of CSIQ and SPAQ (.xlsx) with openpyxl, as rows of cell *text*.

Cells come back as text so callers convert numbers themselves and keep names such as CSIQ's '1600' as strings:
shared/inline/rich-text strings as written, numbers as Python prints the value openpyxl parses ('1600', '0.061',
'2.5'), formulas as their cached value, error cells (#N/A, #DIV/0!) as empty, dates in ISO format.
Any failure to read the workbook becomes a one-line `UserError` naming the file.
"""

from __future__ import annotations

import zipfile
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from iqa_bench.errors import UserError

_ERRORS = frozenset({"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA"})


def _load(path: str | Path) -> Any:
    """The openpyxl workbook at `path` (read-only, cached formula values); `UserError` naming the file."""
    from openpyxl import load_workbook

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        return load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, OSError, KeyError, ValueError, TypeError) as exc:
        raise UserError(f"{path}: not a readable .xlsx workbook ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds (InvalidFileException, XML errors)
        raise UserError(f"{path}: not a readable .xlsx workbook ({type(exc).__name__}: {exc})") from None


def sheet_names(path: str | Path) -> list[str]:
    """Names of the workbook's sheets in workbook order."""
    wb = _load(path)
    try:
        return list(wb.sheetnames)
    finally:
        wb.close()


def _text(value: Any) -> str | None:
    """One cell value as text (None for empty and error cells)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    text = str(value)
    if isinstance(value, str) and text in _ERRORS:
        return None
    return text


def read_xlsx(path: str | Path, sheet: str | None = None) -> list[tuple[int, list[str | None]]]:
    """Rows of sheet `sheet` (default: the first; matched exactly, then ignoring case and surrounding spaces) as
    `(row number (1-based, as Excel shows it), cells)`.

    Cells are strings or None (empty); each row list is as long as its last non-empty cell. Empty rows are
    omitted. `UserError` naming the file if it is not a readable .xlsx or has no such sheet.
    """
    path = Path(path)
    wb = _load(path)
    try:
        names = list(wb.sheetnames)
        if not names:
            raise UserError(f"{path}: workbook has no sheets")
        if sheet is None:
            name = names[0]
        else:
            match = [n for n in names if n == sheet] or [
                n for n in names if n.strip().lower() == sheet.strip().lower()
            ]
            if not match:
                raise UserError(f"{path}: no sheet {sheet!r} (sheets: {names})")
            name = match[0]
        rows: list[tuple[int, list[str | None]]] = []
        try:
            ws = wb[name]
            ws.reset_dimensions()  # some writers store a wrong <dimension>; read every row that is there
            for row in ws.iter_rows():
                cells: dict[int, str] = {}
                row_no = None
                for cell in row:
                    text = _text(getattr(cell, "value", None))
                    if text is not None and text != "":
                        cells[cell.column - 1] = text
                        row_no = cell.row
                if cells:
                    values: list[str | None] = [None] * (max(cells) + 1)
                    for i, v in cells.items():
                        values[i] = v
                    rows.append((int(row_no), values))  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - malformed sheet XML
            raise UserError(f"{path}: sheet {name!r} cannot be read ({type(exc).__name__}: {exc})") from None
        return rows
    finally:
        wb.close()
