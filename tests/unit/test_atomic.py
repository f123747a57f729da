"""Atomic writes: a writer that fails mid-write leaves the old file untouched and no temp file behind; a
successful write replaces the file in one rename."""

from __future__ import annotations

import json
import math
import os
import stat

import pytest

from iqa_bench.utils import atomic
from iqa_bench.utils.atomic import atomic_open, atomic_write_json, atomic_write_text, atomic_write_with


class Boom(RuntimeError):
    pass


def _leftovers(folder, name):
    return sorted(p.name for p in folder.iterdir() if p.name != name)


@pytest.mark.parametrize("mode,old,partial", [("w", "old text\n", "half-"), ("wb", b"\x00old", b"\x01half")])
def test_writer_raising_mid_write_keeps_the_old_file(tmp_path, mode, old, partial):
    path = tmp_path / "results.json"
    (path.write_bytes if "b" in mode else path.write_text)(old)
    with pytest.raises(Boom), atomic_open(path, mode) as fh:
        fh.write(partial)
        fh.flush()  # the bytes are on disk somewhere: they must not be in `path`
        # while writing, the destination still holds the old content (the write goes to a sibling temp file)
        assert (path.read_bytes() if "b" in mode else path.read_text()) == old
        raise Boom
    assert (path.read_bytes() if "b" in mode else path.read_text()) == old
    assert _leftovers(tmp_path, path.name) == []


def test_failed_first_write_creates_nothing(tmp_path):
    path = tmp_path / "sub" / "new.txt"
    with pytest.raises(Boom), atomic_open(path) as fh:
        fh.write("x")
        raise Boom
    assert not path.exists() and list(path.parent.iterdir()) == []  # the folder is made, nothing left in it


def test_temp_file_is_a_hidden_sibling_then_renamed(tmp_path, monkeypatch):
    path = tmp_path / "out.csv"
    path.write_text("old")
    calls = []
    real_replace = os.replace
    monkeypatch.setattr(atomic.os, "replace", lambda s, d: (calls.append((s, d)), real_replace(s, d)))
    with atomic_open(path, "w", encoding="utf-8") as fh:
        assert fh.name != str(path)
        fh.write("new")
    ((src, dst),) = calls
    src = os.fspath(src)
    assert os.path.dirname(src) == str(tmp_path)  # same folder, so the rename is atomic
    assert os.path.basename(src).startswith(".out.csv.") and src.endswith(".tmp")
    assert os.fspath(dst) == str(path)
    assert path.read_text() == "new" and _leftovers(tmp_path, path.name) == []


def test_contents_are_fsynced_before_the_rename(tmp_path, monkeypatch):
    order = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        kind = "fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file"
        order.append(kind)
        return real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", lambda s, d: (order.append("replace"), real_replace(s, d)))
    atomic_write_text(tmp_path / "a.txt", "abc")
    # the file's contents reach the disk before the rename; the folder entry (the rename) after it
    assert order == ["fsync-file", "replace", "fsync-dir"]


def test_write_text_and_json_roundtrip(tmp_path):
    atomic_write_text(tmp_path / "t.txt", "é\r\nline")
    assert (tmp_path / "t.txt").read_bytes() == "é\r\nline".encode()  # UTF-8, newlines untouched
    atomic_write_json(tmp_path / "r.json", {"b": [1.5, math.nan, (2, float("nan"))], "a": {"c": math.nan}})
    text = (tmp_path / "r.json").read_text()
    assert json.loads(text) == {"b": [1.5, None, [2, None]], "a": {"c": None}}
    assert list(json.loads(text)) == ["b", "a"]  # keys keep their order
    atomic_write_json(tmp_path / "s.json", {"k": [1]})
    assert (
        tmp_path / "s.json"
    ).read_text() == '{\n  "k": [\n    1\n  ]\n}\n'  # 2-space indent, final newline


def test_atomic_write_with_failing_writer_keeps_old_file(tmp_path):
    path = tmp_path / "last.ckpt"
    path.write_bytes(b"old")

    def writer(tmp: str) -> None:
        assert tmp != str(path) and os.path.dirname(tmp) == str(tmp_path) and tmp.endswith(".ckpt")
        with open(tmp, "wb") as fh:
            fh.write(b"partial")
        raise Boom

    with pytest.raises(Boom):
        atomic_write_with(path, writer)
    assert path.read_bytes() == b"old" and _leftovers(tmp_path, path.name) == []

    new = tmp_path / "deep" / "er" / "new.ckpt"
    atomic_write_with(new, lambda tmp: open(tmp, "wb").write(b"new"))
    assert new.read_bytes() == b"new" and _leftovers(new.parent, new.name) == []


def test_temp_names_of_atomic_write_with_are_hidden_siblings(tmp_path):
    seen = []
    atomic_write_with(tmp_path / "img.png", lambda tmp: (seen.append(tmp), open(tmp, "wb").close()))
    (tmp,) = seen
    assert os.path.basename(tmp).startswith(".img.png.") and tmp.endswith(".png")


def test_writer_that_removed_its_temp_file_still_reports_its_own_error(tmp_path):
    def writer(tmp: str) -> None:
        os.unlink(tmp)  # e.g. a library that writes elsewhere and cleans up after a failure
        raise Boom

    with pytest.raises(Boom):
        atomic_write_with(tmp_path / "x.bin", writer)
    with pytest.raises(Boom), atomic_open(tmp_path / "y.txt"):
        (tmp,) = tmp_path.glob(".y.txt.*.tmp")
        tmp.unlink()
        raise Boom
