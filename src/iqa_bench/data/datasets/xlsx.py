"""Minimal read-only .xlsx reader (zipfile + xml.etree): enough for the score sheets of CSIQ and SPAQ.

It returns cell *text* (shared strings, inline strings, or the stored number as written, e.g. '1600', '0.061'),
so callers convert numbers themselves and keep names such as CSIQ's '1600' as strings. Formulas yield their
cached value. Styles, dates and merged cells are ignored. Element names are matched without namespace so both
transitional and strict OOXML files are read.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

from iqa_bench.errors import UserError

_CELL_REF = re.compile(r"([A-Za-z]+)(\d+)")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(elem: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in elem if _local(c.tag) == name]


def _text_of(elem: ET.Element) -> str:
    """Concatenated text of every `<t>` below `elem` (plain and rich-text runs), skipping phonetic runs `<rPh>`."""
    out = []
    for child in elem:
        tag = _local(child.tag)
        if tag == "t":
            out.append(child.text or "")
        elif tag != "rPh":
            out.append(_text_of(child))
    return "".join(out)


def column_index(letters: str) -> int:
    """'A' -> 0, 'Z' -> 25, 'AA' -> 26."""
    n = 0
    for ch in letters.upper():
        n = n * 26 + (ord(ch) - 64)
    return n - 1


def sheet_names(path: str | Path) -> list[str]:
    with _open(path) as zf:
        return [name for name, _ in _sheets(zf, path)]


def read_xlsx(path: str | Path, sheet: str | None = None) -> list[tuple[int, list[str | None]]]:
    """Rows of sheet `sheet` (default: the first) as `(row number (1-based, as Excel shows it), cells)`.

    Cells are strings or None (empty); each row list is as long as its last non-empty cell. Empty rows are
    omitted. `UserError` naming the file if it is not a readable .xlsx or has no such sheet.
    """
    path = Path(path)
    with _open(path) as zf:
        sheets = _sheets(zf, path)
        if not sheets:
            raise UserError(f"{path}: workbook has no sheets")
        if sheet is None:
            target = sheets[0][1]
        else:
            match = [t for n, t in sheets if n == sheet] or [
                t for n, t in sheets if n.strip().lower() == sheet.strip().lower()
            ]
            if not match:
                raise UserError(f"{path}: no sheet {sheet!r} (sheets: {[n for n, _ in sheets]})")
            target = match[0]
        shared = _shared_strings(zf, path)
        root = _parse(zf, target, path)
    rows: list[tuple[int, list[str | None]]] = []
    data = next((e for e in root.iter() if _local(e.tag) == "sheetData"), None)
    if data is None:
        return rows
    row_no = 0
    for row in _children(data, "row"):
        row_no = int(row.get("r", row_no + 1))
        cells: dict[int, str] = {}
        col = -1
        for c in _children(row, "c"):
            ref = c.get("r")
            m = _CELL_REF.fullmatch(ref) if ref else None
            col = column_index(m.group(1)) if m else col + 1
            value = _cell_value(c, shared, path)
            if value is not None and value != "":
                cells[col] = value
        if cells:
            values: list[str | None] = [None] * (max(cells) + 1)
            for i, v in cells.items():
                values[i] = v
            rows.append((row_no, values))
    return rows


def _cell_value(c: ET.Element, shared: list[str], path: Path) -> str | None:
    kind = c.get("t", "n")
    if kind == "inlineStr":
        is_ = _children(c, "is")
        return _text_of(is_[0]) if is_ else None
    v = _children(c, "v")
    if not v or v[0].text is None:
        return None
    text = v[0].text
    if kind == "s":
        try:
            return shared[int(text)]
        except (ValueError, IndexError):
            raise UserError(f"{path}: cell {c.get('r')}: bad shared-string index {text!r}") from None
    if kind == "e":
        return None  # #N/A, #DIV/0! ...: treated as empty
    return text


def _open(path: str | Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"{path}: not a readable .xlsx workbook ({type(exc).__name__}: {exc})") from None


def _parse(zf: zipfile.ZipFile, member: str, path: Path | str) -> ET.Element:
    try:
        with zf.open(member) as fh:
            return ET.parse(fh).getroot()
    except KeyError:
        raise UserError(f"{path}: .xlsx is missing part {member}") from None
    except ET.ParseError as exc:
        raise UserError(f"{path}: .xlsx part {member} is not valid XML ({exc})") from None


def _sheets(zf: zipfile.ZipFile, path: Path | str) -> list[tuple[str, str]]:
    """[(sheet name, zip member of its worksheet XML)] in workbook order."""
    workbook = _parse(zf, "xl/workbook.xml", path)
    rels: dict[str, str] = {}
    if "xl/_rels/workbook.xml.rels" in zf.namelist():
        for rel in _parse(zf, "xl/_rels/workbook.xml.rels", path).iter():
            if _local(rel.tag) == "Relationship":
                target = rel.get("Target", "")
                target = target.lstrip("/") if target.startswith("/") else posixpath.join("xl", target)
                rels[rel.get("Id", "")] = posixpath.normpath(target)
    out = []
    for i, sh in enumerate(e for e in workbook.iter() if _local(e.tag) == "sheet"):
        rid = next((v for k, v in sh.attrib.items() if _local(k) == "id"), None)
        member = rels.get(rid or "", f"xl/worksheets/sheet{i + 1}.xml")
        out.append((sh.get("name", f"Sheet{i + 1}"), member))
    return out


def _shared_strings(zf: zipfile.ZipFile, path: Path | str) -> list[str]:
    if "xl/sharedStrings.xml" not in zf.namelist():
        return []
    root = _parse(zf, "xl/sharedStrings.xml", path)
    return [_text_of(si) for si in root if _local(si.tag) == "si"]
