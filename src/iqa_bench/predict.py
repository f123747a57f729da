"""`python -m iqa_bench.predict ckpt=PATH regressor=PATH images=DIR|FILE|LIST.txt`: score images -> CSV.

Works for any method's checkpoint plus a regressor saved by `evaluate` (`<run>/regressors/*.safetensors`); the
regressor records which feature scales / crops it was fitted on, and which checkpoint (method, path and a fingerprint
of the weights): another checkpoint is refused unless `allow_mismatch=true` (then warned). Images are
decoded by dataloader workers; an unreadable image is skipped with a warning naming it (listed in `skipped.txt`),
never scored. Output: `<run dir>/predictions.csv` with `path,score` (higher = better), written atomically.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset

from iqa_bench.api import QualityModel, check_regressor_matches, resize_short_side
from iqa_bench.checkpoints import load_method_checkpoint
from iqa_bench.data.folders import DEFAULT_EXTENSIONS, scan_images
from iqa_bench.data.images import MIN_SIDE, BadImageError, decode_image, display_path
from iqa_bench.errors import ConfigError, UserError, exit_on_user_error
from iqa_bench.eval.regressor import load_regressor
from iqa_bench.runs import cleanup_on_user_error, run_dir_of, select_device
from iqa_bench.utils import resolvers
from iqa_bench.utils.atomic import atomic_write_text
from iqa_bench.utils.progress import progress

log = logging.getLogger(__name__)


def list_inputs(images: Any) -> list[Path]:
    """`images` = a folder (recursive), an image file, a `.txt` file with one path per line (relative paths are
    relative to the list file), or a list of paths. UserError naming `images` when nothing usable is given."""
    if images is None or (isinstance(images, str) and images in ("", "???")):
        raise ConfigError(
            "images: required: images=DIR, images=FILE, images=LIST.txt or images=[a.jpg,b.png]"
        )
    if isinstance(images, (list, tuple, ListConfig)):
        paths = [Path(str(p)).expanduser() for p in images]
    else:
        p = Path(str(images)).expanduser()
        if p.is_dir():
            paths = [p / r for r in scan_images(p, DEFAULT_EXTENSIONS)]
        elif p.is_file() and p.suffix.lower() == ".txt":
            lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()]
            paths = [(p.parent / ln) if not Path(ln).is_absolute() else Path(ln) for ln in lines if ln]
        elif p.is_file():
            paths = [p]
        elif p.exists():
            raise UserError(
                f"images: {display_path(p)} is not a regular file or a folder (a FIFO or device?)"
            )
        else:
            raise UserError(f"images: not found: {display_path(p)}")
    if not paths:
        raise UserError(f"images: no images found in {images}")
    return paths


class PredictImages(Dataset):
    """Items `(index, uint8 (3,H,W) or None, error message or None)`; `short_side` resizes like the dataset the
    regressor was fitted on (None = native size)."""

    def __init__(self, paths: Sequence[Path], short_side: int | None = None) -> None:
        self.paths = list(paths)
        self.short_side = short_side

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            img = decode_image(self.paths[i])
        except BadImageError as exc:
            return i, None, str(exc)
        except OSError as exc:
            return i, None, f"{display_path(self.paths[i])}: {exc}"
        return i, resize_short_side(img, self.short_side), None


def check_options(cfg: DictConfig) -> None:
    """`batch_size` >= 1, `num_workers` >= 0 and `short_side` (when set) >= MIN_SIDE: else a ConfigError."""
    for key, low in (("batch_size", 1), ("num_workers", 0)):
        value = cfg.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"{key}: must be an integer >= {low}, got {value!r}")
    side = cfg.get("short_side")
    if side is not None and (not isinstance(side, int) or isinstance(side, bool) or side < MIN_SIDE):
        raise ConfigError(
            f"short_side: must be null (native size) or an integer >= {MIN_SIDE} pixels, got {side!r}"
        )


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Score `cfg.images` with `cfg.ckpt` + `cfg.regressor`; returns {"run_dir", "csv", "scores", "skipped"}."""
    if OmegaConf.is_missing(cfg, "regressor") or not cfg.get("regressor"):
        raise ConfigError("regressor: required: regressor=PATH (a .safetensors file written by evaluate)")
    reg_path = Path(str(cfg.regressor)).expanduser()
    if not reg_path.is_file():
        raise UserError(f"regressor: not found: {reg_path}")
    reg = load_regressor(reg_path)
    ckpt = cfg.get("ckpt") or reg.meta.get("ckpt")
    if not ckpt or not Path(str(ckpt)).expanduser().is_file():
        raise UserError(
            f"ckpt: checkpoint not found: {ckpt} (give ckpt=PATH, the checkpoint the regressor was made for)"
        )
    check_options(cfg)
    paths = list_inputs(OmegaConf.to_container(cfg.images) if OmegaConf.is_config(cfg.images) else cfg.images)
    torch.set_num_threads(cfg.get("num_threads") or torch.get_num_threads())
    device = select_device(cfg)
    module, info = load_method_checkpoint(str(ckpt), cfg)
    check_regressor_matches(
        reg, reg_path, Path(str(ckpt)), module, info, bool(cfg.get("allow_mismatch", False))
    )
    model = QualityModel(module.to(device), reg, batch_size=int(cfg.batch_size))
    run_dir = run_dir_of(cfg)
    loader = DataLoader(
        PredictImages(paths, cfg.get("short_side")),
        batch_size=int(cfg.batch_size),
        num_workers=int(cfg.num_workers),
        collate_fn=list,
    )
    scores: dict[int, float] = {}
    skipped: list[str] = []
    batches = loader
    if cfg.get("progress", True):
        batches = progress(loader, "predict", every_s=float(cfg.get("progress_every_s") or 30), leave=True)
    for batch in batches:
        good = [(i, img) for i, img, _ in batch if img is not None]
        for _, _, err in batch:
            if err is not None:
                log.warning("skipping unreadable image: %s", err)
                skipped.append(err)
        if not good:
            continue
        preds = model([img for _, img in good]).tolist()  # the scoring of iqa_bench.load (api.QualityModel)
        for (i, _), s in zip(good, preds):
            scores[i] = float(s)
    if not scores:
        raise UserError(f"images: none of the {len(paths)} images could be read (first: {skipped[:1]})")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "score"])
    for i in sorted(scores):
        w.writerow([display_path(paths[i]), f"{scores[i]:.6g}"])
    out_csv = run_dir / "predictions.csv"
    atomic_write_text(out_csv, buf.getvalue())
    if skipped:
        atomic_write_text(run_dir / "skipped.txt", "\n".join(skipped) + "\n")
        log.warning(
            "%d of %d images skipped (listed in %s)", len(skipped), len(paths), run_dir / "skipped.txt"
        )
    print(
        f"Scored {len(scores)} image(s) with {info['method']} ({info['backbone']}); "
        f"{len(skipped)} skipped.\nPredictions: {out_csv}",
        flush=True,
    )
    return {
        "run_dir": run_dir,
        "csv": out_csv,
        "scores": {display_path(paths[i]): v for i, v in scores.items()},
        "skipped": skipped,
    }


@hydra.main(version_base="1.3", config_path=str(resolvers.CONF_DIR), config_name="predict")
@exit_on_user_error
@cleanup_on_user_error
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    main()
