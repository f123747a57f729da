"""The built-in default data: no download, ever.

* Pretraining images: 400 natural photographs of Unsplash origin shipped with this package (320x320 JPEG, see
  `assets/photos_unsplash/PROVENANCE.md`), optionally plus deterministic procedural images (`procedural.py`,
  written once as PNG files into a cache folder `data/builtin/...`).
* Evaluation images: the 24 Kodak photographs shipped with this package (downscaled, see
  `assets/kodak24/PROVENANCE.md`). They are never used for pretraining. The built-in *synthetic* evaluation set
  (`BuiltinSyntheticEval` in `eval_sets.py`) distorts them with the distortion bank and scores every distorted
  image with a full-reference metric; it is synthetic, not human opinion.
"""

from __future__ import annotations

import hashlib
import json
import logging
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from iqa_bench.data.procedural import procedural_image
from iqa_bench.utils.atomic import atomic_write_json, atomic_write_with

log = logging.getLogger(__name__)

BUILTIN_VERSION = 2
NUM_PHOTOS = 400  # vendored pretraining photographs (assets/photos_unsplash)


def kodak_paths() -> list[Path]:
    """Paths of the 24 vendored Kodak photographs (`kodim01.png` … `kodim24.png`, long side 384 px)."""
    folder = resources.files("iqa_bench.data") / "assets" / "kodak24"
    paths = sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".png"))
    if len(paths) != 24:
        raise RuntimeError(f"expected 24 Kodak images in {folder}, found {len(paths)}: broken installation")
    return paths


def photo_paths() -> list[Path]:
    """Paths of the 400 vendored Unsplash photographs (`unsplash_<n>.jpg`, 320x320 JPEG), sorted by name."""
    folder = resources.files("iqa_bench.data") / "assets" / "photos_unsplash"
    paths = sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".jpg"))
    if len(paths) != NUM_PHOTOS:
        raise RuntimeError(
            f"expected {NUM_PHOTOS} photos in {folder}, found {len(paths)}: broken installation"
        )
    return paths


def pretrain_images(
    cache_dir: str | Path,
    num_procedural: int = 0,
    seed: int = 0,
    size: int = 256,
    include_photos: bool = True,
) -> list[Path]:
    """Return the image files of the built-in pretraining set (procedural ones are generated once).

    Args:
        cache_dir: folder for generated images; a sub-folder named after the settings is created inside.
        num_procedural: number of procedural images (`size x size`); 0 = photographs only.
        seed: seed of the procedural family.
        size: procedural image side.
        include_photos: use the 400 vendored photographs (read in place from the package).
    Returns: the photo paths followed by the procedural PNG paths (≥ 1 in all). The procedural folder holds
    `manifest.json`, written last, which marks it complete; a folder without it is rebuilt.
    """
    photos = photo_paths() if include_photos else []
    if num_procedural <= 0:
        if not photos:
            raise ValueError("pretrain_images: include_photos=false and num_procedural=0 select no image")
        return photos
    return photos + _procedural_images(Path(cache_dir), num_procedural, seed, size)


def _procedural_images(cache_dir: Path, num: int, seed: int, size: int) -> list[Path]:
    """Generate (once) `num` procedural `size x size` PNGs under `cache_dir` and return their paths."""
    key = f"v{BUILTIN_VERSION}-seed{seed}-n{num}-s{size}"
    folder = cache_dir / f"procedural-{key}"
    manifest = folder / "manifest.json"
    if manifest.is_file():
        names = json.loads(manifest.read_text())["files"]
        paths = [folder / n for n in names]
        if all(p.is_file() for p in paths):
            return paths
    log.info("generating built-in procedural images in %s", folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = [
        _save_png(folder, f"proc_{i:04d}.png", procedural_image(seed, i, size, size)) for i in range(num)
    ]
    atomic_write_json(manifest, {"version": BUILTIN_VERSION, "key": key, "files": names})
    return [folder / n for n in names]


def _save_png(folder: Path, name: str, arr: np.ndarray) -> str:
    atomic_write_with(folder / name, lambda tmp: Image.fromarray(arr).save(tmp, format="PNG"))
    return name


def config_hash(obj: object) -> str:
    """Short stable hash of a JSON-serialisable object (used to key caches)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]
