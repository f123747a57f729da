"""The built-in default data: no download, ever.

* Pretraining images: the colour photographs bundled inside scikit-image's wheel plus deterministic procedural
  images (`procedural.py`), written once as PNG files into a cache folder (`data/builtin/...`).
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

# Colour photographs that ship inside the scikit-image wheel (never fetched from the network).
SKIMAGE_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "motorcycle_left",
    "motorcycle_right",
)


def _load_skimage_photo(name: str) -> np.ndarray:
    """One bundled scikit-image colour photo as uint8 `(H, W, 3)`."""
    from skimage import data as skdata

    if name == "motorcycle_left":
        return skdata.stereo_motorcycle()[0]
    if name == "motorcycle_right":
        return skdata.stereo_motorcycle()[1]
    return getattr(skdata, name)()


def _resize_short_side(arr: np.ndarray, side: int) -> np.ndarray:
    h, w = arr.shape[:2]
    s = side / min(h, w)
    size = (max(side, round(w * s)), max(side, round(h * s)))
    return np.asarray(Image.fromarray(arr).resize(size, Image.Resampling.LANCZOS))


def kodak_paths() -> list[Path]:
    """Paths of the 24 vendored Kodak photographs (`kodim01.png` … `kodim24.png`, long side 384 px)."""
    folder = resources.files("iqa_bench.data") / "assets" / "kodak24"
    paths = sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".png"))
    if len(paths) != 24:
        raise RuntimeError(f"expected 24 Kodak images in {folder}, found {len(paths)}: broken installation")
    return paths


def pretrain_images(
    cache_dir: str | Path,
    num_procedural: int = 96,
    seed: int = 0,
    size: int = 256,
    include_photos: bool = True,
) -> list[Path]:
    """Build (once) and return the PNG files of the built-in pretraining set.

    Args:
        cache_dir: folder for generated images; a sub-folder named after the settings is created inside.
        num_procedural: number of procedural images (`size x size`).
        seed: seed of the procedural family.
        size: procedural image side; photos are resized so their short side is `size`.
        include_photos: add the scikit-image colour photos.
    Returns: sorted list of PNG paths (≥ 1). The folder holds `manifest.json`, written last, which marks it
    complete; a folder without it is rebuilt.
    """
    key = f"v{BUILTIN_VERSION}-seed{seed}-n{num_procedural}-s{size}-photos{int(include_photos)}"
    folder = Path(cache_dir) / f"pretrain-{key}"
    manifest = folder / "manifest.json"
    if manifest.is_file():
        names = json.loads(manifest.read_text())["files"]
        paths = [folder / n for n in names]
        if all(p.is_file() for p in paths):
            return paths
    log.info("generating built-in pretraining images in %s", folder)
    folder.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    if include_photos:
        for name in SKIMAGE_PHOTOS:
            arr = _resize_short_side(_load_skimage_photo(name), size)
            names.append(_save_png(folder, f"photo_{name}.png", arr))
    for i in range(num_procedural):
        names.append(_save_png(folder, f"proc_{i:04d}.png", procedural_image(seed, i, size, size)))
    atomic_write_json(manifest, {"version": BUILTIN_VERSION, "key": key, "files": names})
    return [folder / n for n in names]


def _save_png(folder: Path, name: str, arr: np.ndarray) -> str:
    atomic_write_with(folder / name, lambda tmp: Image.fromarray(arr).save(tmp, format="PNG"))
    return name


def config_hash(obj: object) -> str:
    """Short stable hash of a JSON-serialisable object (used to key caches)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]
