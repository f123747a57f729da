"""Atomic writes: a temporary file in the destination folder, fsync, then `os.replace`, then fsync of the folder.

A crash, a kill or a full disk at any point leaves either the old file or the new one, never a half-written file
that a later run trusts. The temporary file lives next to the destination (never in /tmp), so the final rename
never becomes a cross-filesystem copy that can be cut off. Files get the permissions an ordinary `open()` would
give (0666 minus the umask), not `mkstemp`'s 0600.

Any `OSError` while writing (read-only folder, no space left, quota) becomes a `WriteError`: a `UserError` (one
line naming the file) that is also an `OSError`, so code that tolerates failed writes can still catch `OSError`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from iqa_bench.errors import UserError


class WriteError(UserError, OSError):
    """A file could not be written (the message names it; the previous version of the file, if any, is intact)."""


def file_mode() -> int:
    """Permission bits of a newly created file under the current umask (0666 & ~umask)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _write_error(path: Path, exc: OSError) -> WriteError:
    reason = exc.strerror or str(exc)
    err = WriteError(f"cannot write {path}: {reason} (any previous version of the file is unchanged)")
    err.errno = exc.errno
    return err


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (best effort: some filesystems refuse to open or fsync a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _temp_sibling(path: Path, suffix: str) -> tuple[int, str]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from None
    with contextlib.suppress(OSError):
        os.fchmod(fd, file_mode())
    return fd, tmp


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary sibling of `path` for writing; on success it replaces `path` atomically."""
    path = Path(path)
    fd, tmp = _temp_sibling(path, ".tmp")
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, WriteError):
            raise _write_error(path, exc) from None
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str, errors: str = "strict") -> None:
    """Write `text` (UTF-8; `errors` as for `str.encode`) to `path` atomically."""
    with atomic_open(path, "w", encoding="utf-8", errors=errors, newline="") as fh:
        fh.write(text)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write `obj` as indented JSON to `path` atomically (NaN written as null)."""
    atomic_write_text(path, json.dumps(_nan_to_none(obj), indent=2, sort_keys=False) + "\n")


def atomic_write_with(path: str | os.PathLike[str], writer: Callable[[str], None]) -> None:
    """Call `writer(tmp_path)` (e.g. `torch.save`, `PIL.Image.save`), fsync, then rename the result onto `path`."""
    path = Path(path)
    fd, tmp = _temp_sibling(path, path.suffix)
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, file_mode())  # a writer may recreate the file (safetensors does, with 0600)
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, WriteError):
            raise _write_error(path, exc) from None
        raise
    _fsync_dir(path.parent)


def _fsync_file(name: str) -> None:
    fd = os.open(name, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj
