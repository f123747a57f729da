"""Pretraining images from user folders: any folder tree (`data/pretrain=folder`) or KADIS-700k's pristine images
in their official layout (`data/pretrain=kadis700`).

The file list is built once with a fast `os.scandir` walk and cached as a text file (one relative path per line)
under `cache_dir`, keyed by the folder's absolute path and the accepted extensions, so a 700k-file tree is walked
only on the first run. `rescan=true` rebuilds it (after adding or removing images). Files that disappear later are
skipped at load time like any unreadable image.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from iqa_bench.errors import UserError
from iqa_bench.utils.atomic import atomic_write_text

log = logging.getLogger(__name__)

DEFAULT_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def scan_images(root: Path, extensions: Sequence[str]) -> list[str]:
    """Relative paths (POSIX, sorted) of the files under `root` whose suffix is in `extensions` (any case)."""
    exts = tuple(e.lower() for e in extensions)
    found: list[str] = []
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            entries = list(os.scandir(root / rel) if rel else os.scandir(root))
        except OSError as exc:
            log.warning("cannot list %s: %s (skipped)", root / rel, exc)
            continue
        for e in entries:
            name = f"{rel}/{e.name}" if rel else e.name
            if e.is_dir(follow_symlinks=True):
                stack.append(name)
            elif e.name.lower().endswith(exts):
                found.append(name)
    found.sort()
    return found


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
    if listing.is_file() and not rescan:
        rel = [line for line in listing.read_text(encoding="utf-8").splitlines() if line]
        log.info("pretraining file list of %s: %d images (cached in %s)", root, len(rel), listing)
    else:
        rel = scan_images(root, extensions)
        if rel:
            atomic_write_text(listing, "\n".join(rel) + "\n")
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
