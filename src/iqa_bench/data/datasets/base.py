"""Shared machinery of the real IQA datasets: a folder of image files plus a score file.

A dataset module only parses its official score file(s) into `Entry`s (relative image path, score already oriented
so that higher = better, optional reference key, and where in which file the row came from). `FileEvalSet` then
does the rest, identically for every dataset, before any long work (feature extraction) starts:

* the dataset folder and the score file must exist (`UserError` naming the path and the expected layout);
* scores must be finite numbers, paths must be unique (`UserError` naming the file and row);
* listed images are looked up on disk (one directory listing per folder, case-insensitive fallback because some
  official archives, e.g. TID2013 and CSIQ, disagree in case with their own score files); with
  `check_images: header` (default) each image's header is opened with PIL (format + size, a few KB read per file;
  images too small, too large or not images at all are caught), with `full` every image is decoded once, with
  `none` only existence is checked;
* missing/unreadable images are dropped with one warning giving the count and the first names if they are fewer
  than `max_missing_frac` (default 1%) of the set, else a `UserError` lists them.

Images are decoded lazily in `__getitem__` (uint8 `(3, H, W)`, optionally resized so the short side is
`short_side`). An image that still fails to decode there (e.g. truncated after a valid header, with
`check_images: header`) does not stop the run: a mid-grey placeholder of its header size keeps the batch going, a
warning names the file, and the item is flagged in `failed_items()` (a shared-memory flag array, so loader worker
processes report to the main process). The evaluator EXCLUDES flagged items from every split and counts them in
its results (a placeholder is never scored). Use `check_images: full` to drop such files up front.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from iqa_bench.data.eval_sets import EvalSet
from iqa_bench.data.images import MAX_PIXELS, MIN_SIDE, BadImageError, decode_image, resize_uint8
from iqa_bench.errors import ConfigError, UserError

log = logging.getLogger(__name__)

CHECK_MODES = ("none", "header", "full")
PLACEHOLDER_SIZE = (256, 256)
_MAX_LISTED = 5  # names shown in missing/unreadable messages


@dataclass(frozen=True)
class Entry:
    """One scored image as listed in a score file.

    Attributes:
        path: image path relative to the dataset root (posix separators) or absolute.
        score: quality score, already oriented so that higher = better.
        ref: reference/content key (synthetic datasets) or None.
        where: 'file, row N' for error messages.
        part: the dataset's official split part of this image ('train', 'val' or 'test'), or None.
    """

    path: str
    score: float
    ref: str | None
    where: str
    part: str | None = None


class FileEvalSet(EvalSet):
    """Base of every on-disk IQA dataset (see the module docstring for the checks it performs).

    Subclasses set `LAYOUT` (one line: the files expected under `root`), `SCORE_RANGE` (nominal range of the
    higher-is-better score) and implement `read_entries()`; options of their own are set as attributes before
    calling `FileEvalSet.__init__`.
    """

    LAYOUT: ClassVar[str] = ""
    SCORE_RANGE: ClassVar[tuple[float, float] | None] = None
    HAS_REFS: ClassVar[bool] = False

    DEFAULT_NAME = ""  # results-table name when the config gives none (subclasses without an __init__ set it)

    def __init__(
        self,
        root: str | os.PathLike,
        name: str | None = None,
        check_images: str = "header",
        max_missing_frac: float = 0.01,
        short_side: int | None = None,
    ) -> None:
        name = name or self.DEFAULT_NAME or type(self).__name__.lower()
        if check_images not in CHECK_MODES:
            raise ConfigError(
                f"data.eval.{name}.check_images must be one of {list(CHECK_MODES)}, got {check_images!r}"
            )
        if not (isinstance(max_missing_frac, int | float) and 0 <= max_missing_frac < 1):
            raise ConfigError(
                f"data.eval.{name}.max_missing_frac must be in [0, 1), got {max_missing_frac!r}"
            )
        if short_side is not None and not (isinstance(short_side, int) and short_side >= MIN_SIDE):
            raise ConfigError(f"data.eval.{name}.short_side must be null or an integer >= {MIN_SIDE}")
        self.name = name
        self.check_images = check_images
        self.max_missing_frac = float(max_missing_frac)
        self.short_side = short_side
        self.root = Path(root).expanduser()
        self.placeholder_items: list[int] = []  # indices decoded as placeholders in this process
        self._listings: dict[Path, tuple[set[str], dict[str, str]] | None] = {}
        if not self.root.is_dir():
            raise UserError(f"{name}: dataset folder not found: {self.root}; expected {self.LAYOUT}")
        entries = self.read_entries()
        if not entries:
            raise UserError(f"{name}: no images listed under {self.root}; expected {self.LAYOUT}")
        paths, scores, refs, labels, sizes, parts = self._check_entries(entries)
        self._listings.clear()  # directory listings are only needed while checking (keep workers' copies small)
        self.paths = paths
        self._sizes = sizes
        self._failed = torch.zeros(len(paths), dtype=torch.bool).share_memory_()
        ref_ids = None
        if self.HAS_REFS or any(r is not None for r in refs):
            keys = sorted({r for r in refs if r is not None})
            index = {k: i for i, k in enumerate(keys)}
            ref_ids = np.array([index[r] for r in refs], dtype=np.int64)
        super().__init__(
            name=name,
            scores=np.asarray(scores, dtype=np.float64),
            refs=ref_ids,
            labels=labels,
            parts=np.asarray(parts, dtype=object) if any(p is not None for p in parts) else None,
        )
        log.info(
            "%s: %d images%s from %s",
            name,
            len(paths),
            f" of {len(set(refs))} references" if ref_ids is not None else "",
            self.root,
        )

    # -- to implement ----------------------------------------------------------------------------------------
    def read_entries(self) -> list[Entry]:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- helpers for subclasses ------------------------------------------------------------------------------
    def require_file(self, rel: str, what: str = "score file") -> Path:
        """`root/rel` (case-insensitive fallback) or a `UserError` naming the path and the expected layout."""
        found = self.resolve(rel)
        if found is None:
            raise UserError(f"{self.name}: {what} not found: {self.root / rel}; expected {self.LAYOUT}")
        return found

    def require_dir(self, rel: str, what: str = "image folder") -> Path:
        found = self.resolve(rel, want_dir=True)
        if found is None:
            raise UserError(f"{self.name}: {what} not found: {self.root / rel}; expected {self.LAYOUT}")
        return found

    def resolve(self, rel: str, want_dir: bool = False) -> Path | None:
        """The existing file (or folder) `root/rel`, matching each path component exactly or, failing that,
        case-insensitively; None if absent. Absolute `rel` is checked as is."""
        p = Path(rel)
        if p.is_absolute():
            return p if (p.is_dir() if want_dir else p.is_file()) else None
        cur = self.root
        parts = PurePosixPath(rel.replace("\\", "/")).parts
        for i, part in enumerate(parts):
            if part in (".", ""):
                continue
            if part == "..":
                cur = cur.parent
                continue
            listing = self._listing(cur)
            if listing is None:
                return None
            names, lower = listing
            if part not in names:
                part = lower.get(part.lower())  # type: ignore[assignment]
                if part is None:
                    return None
            cur = cur / part
            if i == len(parts) - 1:
                return cur if (cur.is_dir() if want_dir else cur.is_file()) else None
        return cur if want_dir and cur.is_dir() else None

    def _listing(self, folder: Path) -> tuple[set[str], dict[str, str]] | None:
        if folder not in self._listings:
            try:
                names = set(os.listdir(folder))
            except OSError:
                self._listings[folder] = None
            else:
                lower: dict[str, str] = {}
                for n in sorted(names):
                    lower.setdefault(n.lower(), n)
                self._listings[folder] = (names, lower)
        return self._listings[folder]

    def fail(self, where: str, message: str) -> UserError:
        """A `UserError` '<name>: <file, row N>: <message>' (raise it)."""
        return UserError(f"{self.name}: {where}: {message}")

    def parse_score(self, value: Any, where: str) -> float:
        """A finite float from a score cell, else a `UserError` naming the file and row."""
        if value is None or (isinstance(value, str) and not value.strip()):
            raise self.fail(where, "missing score")
        try:
            x = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise self.fail(where, f"score {value!r} is not a number") from None
        if not math.isfinite(x):
            raise self.fail(where, f"score is {x} (NaN/inf); fix or remove the row")
        return x

    # -- checks ----------------------------------------------------------------------------------------------
    def _check_entries(
        self, entries: Sequence[Entry]
    ) -> tuple[list[str], list[float], list[str | None], list[str], np.ndarray | None, list[str | None]]:
        seen: dict[str, str] = {}
        root = os.path.abspath(self.root)
        for e in entries:
            # relative and absolute listings of one file are one key (both made absolute under the root)
            key = os.path.normpath(os.path.join(root, e.path.replace("\\", "/"))).lower()
            if key in seen:
                raise UserError(f"{self.name}: duplicate image {e.path!r}: {seen[key]} and {e.where}")
            seen[key] = e.where
            if not math.isfinite(e.score):
                raise self.fail(e.where, f"score is {e.score} (NaN/inf)")
        if self.check_images != "none":
            log.info("%s: checking %d images (check_images=%s)", self.name, len(entries), self.check_images)
        kept: list[tuple[Entry, Path, tuple[int, int] | None]] = []
        missing: list[str] = []
        bad: list[str] = []
        on_disk: dict[str, str] = {}
        for e in entries:
            path = self.resolve(e.path)
            if path is None:
                missing.append(e.path)
                continue
            real = os.path.normcase(os.path.realpath(path))  # symlinks, '..', case-insensitive matches
            if real in on_disk:
                raise UserError(
                    f"{self.name}: duplicate image {e.path!r} is the same file as the one at {on_disk[real]} "
                    f"({e.where}); list each image once"
                )
            on_disk[real] = e.where
            size = None
            if self.check_images != "none":
                size, problem = self._check_image(path)
                if problem is not None:
                    bad.append(problem)
                    continue
            kept.append((e, path, size))
        self._report_dropped(len(entries), missing, bad)
        paths = [str(p) for _, p, _ in kept]
        scores = [e.score for e, _, _ in kept]
        refs = [e.ref for e, _, _ in kept]
        labels = [_label(p, self.root, e.path) for e, p, _ in kept]
        sizes = None
        if self.check_images != "none":
            sizes = np.array([s for _, _, s in kept], dtype=np.int32).reshape(-1, 2)
        parts = [e.part for e, _, _ in kept]
        return paths, scores, refs, labels, sizes, parts

    def _check_image(self, path: Path) -> tuple[tuple[int, int] | None, str | None]:
        """((height, width), None) if usable, else (None, reason naming the file)."""
        if self.check_images == "full":
            try:
                img = decode_image(path)
            except BadImageError as exc:
                return None, str(exc)
            return (int(img.shape[1]), int(img.shape[2])), None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    w, h = im.size
        except Exception as exc:  # PIL raises many types for non-images
            return None, f"{path}: cannot read image header ({type(exc).__name__}: {exc})"
        if w * h > MAX_PIXELS:
            return None, f"{path}: {w}x{h} pixels exceeds the {MAX_PIXELS}-pixel safety limit"
        if min(w, h) < MIN_SIDE:
            return None, f"{path}: image is {w}x{h}, smaller than {MIN_SIDE} px on a side"
        return (h, w), None

    def _report_dropped(self, n: int, missing: list[str], bad: list[str]) -> None:
        dropped = len(missing) + len(bad)
        if not dropped:
            return
        parts = []
        if missing:
            parts.append(f"{len(missing)} listed image(s) missing under {self.root} (e.g. {_first(missing)})")
        if bad:
            parts.append(f"{len(bad)} unreadable image(s) ({_first(bad, sep='; ')})")
        what = " and ".join(parts)
        if dropped >= self.max_missing_frac * n:
            raise UserError(
                f"{self.name}: {what}: {dropped}/{n} = {dropped / n:.1%} of the set, not below "
                f"max_missing_frac={self.max_missing_frac:g}; check the download (expected {self.LAYOUT})"
            )
        log.warning("%s: skipping %s: %d of %d images", self.name, what, dropped, n)

    # -- items -----------------------------------------------------------------------------------------------
    def failed_items(self) -> np.ndarray:
        """Sorted int64 indices of the items that failed to decode so far, in any process (loader workers
        included)."""
        return np.flatnonzero(self._failed.numpy()).astype(np.int64)

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < len(self.paths):
            raise IndexError(index)
        try:
            img = decode_image(self.paths[index])
        except BadImageError as exc:
            h, w = (int(v) for v in self._sizes[index]) if self._sizes is not None else PLACEHOLDER_SIZE
            log.warning(
                "%s: item %d cannot be decoded (a grey placeholder keeps the batch going) and is excluded from "
                "the evaluation: %s; "
                "set check_images=full to drop such files up front",
                self.name,
                index,
                exc,
            )
            self.placeholder_items.append(index)
            self._failed[index] = True
            img = torch.full((3, h, w), 128, dtype=torch.uint8)
        if self.short_side is not None:
            h, w = img.shape[1:]
            s = self.short_side / min(h, w)
            if s != 1.0:
                img = resize_uint8(img, max(1, round(h * s)), max(1, round(w * s)))
        return img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, root={str(self.root)!r}, n={len(self)})"


def _label(path: Path, root: Path, listed: str) -> str:
    """The image path as found on disk, relative to `root` when under it (else as listed)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return listed


def _first(items: Iterable[str], sep: str = ", ") -> str:
    items = list(items)
    shown = sep.join(items[:_MAX_LISTED])
    return shown + (f"{sep}…" if len(items) > _MAX_LISTED else "")


def load_mat(owner: FileEvalSet, path: Path, variable: str) -> np.ndarray:
    """Variable `variable` of a MATLAB v4-v7.2 file, or a `UserError` naming the file."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
    except NotImplementedError:
        raise UserError(f"{owner.name}: {path}: MATLAB v7.3 (HDF5) files are not supported") from None
    except Exception as exc:
        raise UserError(
            f"{owner.name}: {path}: cannot read .mat file ({type(exc).__name__}: {exc})"
        ) from None
    if variable not in mat:
        have = sorted(k for k in mat if not k.startswith("__"))
        raise UserError(f"{owner.name}: {path}: variable {variable!r} not found (has {have})")
    return mat[variable]


def mat_strings(arr: Any) -> list[str]:
    """Flatten a MATLAB cell array / char matrix loaded by scipy into a list of strings."""
    if isinstance(arr, str):
        return [arr]
    arr = np.asarray(arr)
    if arr.dtype.kind == "U":
        return [str(x).strip() for x in arr.ravel(order="F")] if arr.size else [""]
    if arr.dtype == object:
        out: list[str] = []
        for x in arr.ravel(order="F"):
            out.extend(mat_strings(x))
        return out
    raise TypeError(f"not a cell array of strings: dtype {arr.dtype}")


def mat_numbers(arr: Any) -> np.ndarray:
    """Flatten a numeric MATLAB array to float64 `(N,)`."""
    return np.asarray(arr, dtype=np.float64).ravel(order="F")
