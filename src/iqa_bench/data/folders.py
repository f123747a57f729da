"""Pretraining images from user folders: any folder tree (`data/pretrain=folder`) or KADIS-700k's pristine images
in their official layout (`data/pretrain=kadis700`).

The file list is built once with a fast `os.scandir` walk and cached as a text file (one relative path per line)
under `cache_dir`, keyed by the folder's absolute path and the accepted extensions, so a 700k-file tree is walked
only on the first run. The list is rebuilt automatically when the folder's modification time changed (files added,
removed or renamed directly in it) or when files of the list have disappeared (a sample of it is checked);
`rescan=true` forces it (e.g. after adding images to a sub-folder). A cache folder that cannot be written only
costs a rescan next time (with a warning). Files that disappear later are skipped at load time like any
unreadable image.

The walk skips, with one warning per kind naming the first few: entries that are not regular files (FIFOs,
sockets, devices: opening them could block forever), broken or looping symbolic links, folders already visited
(a symbolic-link loop), and names that are not valid UTF-8 (they cannot be written to a file list, a CSV or a
log; rename them to include them).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from iqa_bench.data.images import IMAGE_EXTENSIONS, display_path
from iqa_bench.errors import UserError
from iqa_bench.utils.atomic import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

DEFAULT_EXTENSIONS = IMAGE_EXTENSIONS
STALE_SAMPLE = 32  # listed files checked for existence when a cached list is reused


def _valid_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def scan_images(root: Path, extensions: Sequence[str]) -> list[str]:
    """Relative paths (POSIX, sorted) of the regular files under `root` whose suffix is in `extensions` (any
    case); symbolic links are followed, each folder is listed once. What is skipped is logged (module docstring)."""
    root = Path(root)
    exts = tuple(e.lower() for e in extensions)
    found: list[str] = []
    skipped: dict[str, list[str]] = defaultdict(list)
    visited: set[tuple[int, int]] = set()
    try:
        st = os.stat(root)
        visited.add((st.st_dev, st.st_ino))
    except OSError:
        pass
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            entries = list(os.scandir(root / rel if rel else root))
        except OSError as exc:
            log.warning("cannot list %s: %s (skipped)", display_path(root / rel), exc.strerror or exc)
            continue
        for e in entries:
            name = f"{rel}/{e.name}" if rel else e.name
            try:
                if not _valid_utf8(e.name):  # only images and folders are worth a warning
                    if e.name.lower().endswith(exts) or e.is_dir(follow_symlinks=True):
                        skipped["name is not valid UTF-8 (rename it to include it)"].append(name)
                    continue
                if e.is_dir(follow_symlinks=True):
                    st = e.stat(follow_symlinks=True)
                    if (st.st_dev, st.st_ino) in visited:
                        skipped["folder already listed (symbolic-link loop or second link)"].append(name)
                    else:
                        visited.add((st.st_dev, st.st_ino))
                        stack.append(name)
                    continue
                if not e.name.lower().endswith(exts):
                    continue
                if not e.is_file(follow_symlinks=True):
                    kind = "broken or looping symbolic link" if e.is_symlink() else "not a regular file"
                    skipped[f"{kind} (FIFO, socket or device files are never opened)"].append(name)
                    continue
            except OSError as exc:
                skipped[f"cannot be examined ({exc.strerror or exc})"].append(name)
                continue
            found.append(name)
    for reason, names in skipped.items():
        first = ", ".join(display_path(n) for n in sorted(names)[:3])
        log.warning(
            "skipped %d entr%s under %s: %s: %s",
            len(names),
            "y" if len(names) == 1 else "ies",
            display_path(root),
            reason,
            first,
        )
    found.sort()
    return found


def _stale(root: Path, rel: Sequence[str], meta_file: Path) -> str | None:
    """Why the cached list `rel` of `root` is out of date (None if it looks current)."""
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        if int(meta.get("mtime_ns", -1)) != os.stat(root).st_mtime_ns:
            return "the folder changed since its file list was cached"
    except (OSError, ValueError, TypeError):
        pass  # a list cached by an older version has no metadata: rely on the sample below
    if rel:
        step = max(1, len(rel) // STALE_SAMPLE)
        sample = list(rel[::step])[:STALE_SAMPLE] + [rel[-1]]
        gone = sum(not (root / r).exists() for r in sample)
        if gone:
            return f"{gone} of {len(sample)} sampled files of the cached list no longer exist"
    return None


def folder_images(
    path: str | os.PathLike,
    cache_dir: str | os.PathLike,
    extensions: Sequence[str] = DEFAULT_EXTENSIONS,
    rescan: bool = False,
    min_images: int = 1,
) -> list[Path]:
    """All images under `path` (recursive), from the cached file list when there is one.

    Raises `UserError` naming `data.pretrain.path` when the folder is missing or holds fewer than `min_images`.
    """
    if path is None or str(path) in ("", "???"):
        raise UserError("data.pretrain.path: set it to the folder holding your pretraining images")
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise UserError(f"data.pretrain.path: folder not found: {root}")
    key = hashlib.sha1(f"{root}|{','.join(sorted(e.lower() for e in extensions))}".encode()).hexdigest()[:16]
    listing = Path(cache_dir) / "filelists" / f"{root.name}-{key}.txt"
    meta_file = listing.with_suffix(".json")
    rel: list[str] | None = None
    if listing.is_file() and not rescan:
        rel = [line for line in listing.read_text(encoding="utf-8", errors="replace").splitlines() if line]
        why = _stale(root, rel, meta_file)
        if why is None:
            log.info("pretraining file list of %s: %d images (cached in %s)", root, len(rel), listing)
        else:
            log.warning("%s (%s): rescanning %s", why, listing, display_path(root))
            rel = None
    if rel is None:
        mtime = os.stat(root).st_mtime_ns  # before the walk: a change during it triggers the next rescan
        rel = scan_images(root, extensions)
        if rel:
            try:
                atomic_write_text(listing, "\n".join(rel) + "\n")
                atomic_write_json(meta_file, {"root": str(root), "mtime_ns": mtime, "count": len(rel)})
            except OSError as exc:
                log.warning("cannot cache the file list (%s); the folder will be scanned again next run", exc)
        log.info("pretraining file list of %s: %d images (scanned, cached in %s)", root, len(rel), listing)
    if len(rel) < min_images:
        raise UserError(
            f"data.pretrain.path: {root} holds {len(rel)} image(s) with extensions {list(extensions)}, "
            f"need at least {min_images}"
        )
    return [root / r for r in rel]


def kadis700_images(
    root: str | os.PathLike, cache_dir: str | os.PathLike, rescan: bool = False
) -> list[Path]:
    """KADIS-700k's pristine images: `<root>/ref_imgs/*.png` as the official `kadis700k.zip` unpacks (root is the
    `kadis700k/` folder; see data/README.md)."""
    base = Path(root).expanduser()
    ref = base / "ref_imgs"
    if not ref.is_dir():
        raise UserError(
            f"data.pretrain.root: KADIS-700k layout not found: expected {ref} (the ref_imgs/ folder of the "
            "unpacked kadis700k.zip; see data/README.md)"
        )
    return folder_images(ref, cache_dir, extensions=(".png",), rescan=rescan)
