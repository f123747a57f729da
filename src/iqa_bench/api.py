"""Python API: `iqa_bench.load(ckpt, regressor=...)` -> a quality model that scores images.

    import iqa_bench
    model = iqa_bench.load("runs/train/method-arniqa/checkpoints/last.ckpt",
                           regressor="runs/evaluate/<run>/regressors/ckpt__koniq10k.safetensors")
    model(["a.jpg", "b.png"])        # tensor (2,) float32, higher = better quality
    model(batch)                     # batch: float (B, 3, H, W) in [0, 1] or uint8 (B, 3, H, W) -> (B,)

The preprocessing is the one `evaluate` fitted the regressor with: the regressor file records the feature scales
and the crops (`scales`, `crop_size`); each image is rescaled to every scale, cut into the same views, encoded,
the view features are concatenated over scales, regressed, and averaged over the views of that image
(`eval.features.extract_features` + `eval.regressor.Regressor.predict_items`, exactly as in `evaluate` and
`predict`). `short_side` resizes images first, as a dataset with a `short_side` option does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from iqa_bench.checkpoints import load_method_checkpoint
from iqa_bench.data.images import decode_image, display_path, resize_uint8
from iqa_bench.errors import UserError
from iqa_bench.eval.features import extract_features
from iqa_bench.eval.regressor import Regressor, load_regressor
from iqa_bench.runs import parse_device

__all__ = ["QualityModel", "check_regressor_matches", "load"]

log = logging.getLogger(__name__)


def resize_short_side(img: torch.Tensor, short_side: int | None) -> torch.Tensor:
    """uint8 (3, H, W) resized so that min(H, W) == short_side (unchanged when short_side is None)."""
    if not short_side:
        return img
    h, w = img.shape[-2:]
    s = short_side / min(h, w)
    return resize_uint8(img, max(1, round(h * s)), max(1, round(w * s)))


class QualityModel(nn.Module):
    """A pretrained encoder plus the ridge regressor fitted on its features: images -> quality scores.

    Args:
        encoder: a method module (any `PretrainMethod`; its `features(x)` maps (B, 3, h, w) in [0, 1] to (B, D)).
        regressor: the loaded regressor (feature scales, crops and ridge weights).
        short_side: resize every image to this short side first (None = native size).
        batch_size: images per forward pass.
    """

    def __init__(
        self, encoder: nn.Module, regressor: Regressor, short_side: int | None = None, batch_size: int = 16
    ) -> None:
        super().__init__()
        self.encoder = encoder.eval()
        self.regressor = regressor
        self.short_side = short_side
        self.batch_size = int(batch_size)
        self.info: dict[str, Any] = {}

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    def _as_uint8_list(self, images: Any) -> list[torch.Tensor]:
        if isinstance(images, (str, Path)):
            images = [images]
        if isinstance(images, torch.Tensor):
            if images.dim() == 3:
                images = images.unsqueeze(0)
            if images.dim() != 4 or images.shape[1] != 3:
                raise ValueError(f"images: expected (B, 3, H, W), got {tuple(images.shape)}")
            if images.dtype != torch.uint8:
                images = (images.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
            imgs = list(images.cpu())
        elif isinstance(images, Sequence):
            imgs = [
                decode_image(Path(p).expanduser()) if isinstance(p, (str, Path)) else torch.as_tensor(p)
                for p in images
            ]
        else:
            raise TypeError(f"images: a (B, 3, H, W) tensor or a list of paths, got {type(images).__name__}")
        return [resize_short_side(img, self.short_side) for img in imgs]

    @torch.no_grad()
    def forward(self, images: Any) -> torch.Tensor:
        """Scores of `images`: float (B, 3, H, W) in [0, 1], uint8 (B, 3, H, W), a list of uint8 (3, H, W) tensors
        or a list of image paths -> float32 (B,) on CPU (higher = better)."""
        imgs = self._as_uint8_list(images)
        if not imgs:
            return torch.zeros(0)
        feats, item_ids = extract_features(
            {"m": self.encoder},
            imgs,
            self.regressor.scales,
            self.regressor.crop_size,
            self.batch_size,
            0,
            self.device,
        )
        n_expected = self.regressor.model.n_features
        if feats["m"].shape[1] != n_expected:
            raise UserError(
                f"regressor expects {n_expected} features, the encoder gives {feats['m'].shape[1]}: "
                "the checkpoint and the regressor do not belong together"
            )
        return torch.as_tensor(self.regressor.predict_items(feats["m"], item_ids), dtype=torch.float32)


def check_regressor_matches(
    reg: Regressor, reg_path: Path, ckpt: Path, module: nn.Module, info: dict, allow_mismatch: bool = False
) -> None:
    """Refuse to score with a checkpoint other than the one the regressor was fitted on (another method, another
    run, or the same file retrained): its features are not the ones the regressor maps to quality, so the scores
    would be meaningless. The regressor records the method class, the checkpoint path and a fingerprint of the
    weights; `allow_mismatch=True` scores anyway, with a warning. Used by `load` and by `iqa-predict`."""
    from iqa_bench.utils.checkpoint_io import weights_fingerprint

    meta = reg.meta
    reasons = []
    if meta.get("method_target") and meta["method_target"] != info.get("target"):
        reasons.append(f"method {info.get('target')} instead of {meta['method_target']}")
    if meta.get("weights_sha256"):
        if weights_fingerprint(module) != meta["weights_sha256"]:
            reasons.append(f"other weights than {meta.get('ckpt')}")
    elif meta.get("ckpt") and Path(str(meta["ckpt"])).is_absolute():  # older regressors: compare the paths
        if Path(str(meta["ckpt"])).resolve() != ckpt.expanduser().resolve():
            reasons.append(f"fitted on {meta['ckpt']}")
    if not reasons:
        return
    what = f"ckpt {display_path(ckpt)} is not the checkpoint regressor {display_path(reg_path)} was fitted on"
    if not allow_mismatch:
        raise UserError(
            f"{what} ({'; '.join(reasons)}): its scores would be meaningless; use the matching checkpoint, or "
            "pass allow_mismatch=true to score anyway"
        )
    log.warning("allow_mismatch=true: %s (%s); THE SCORES ARE NOT CALIBRATED", what, "; ".join(reasons))


def load(
    ckpt: str | Path | None = None,
    regressor: str | Path | None = None,
    device: str = "auto",
    short_side: int | None = None,
    batch_size: int = 16,
    allow_mismatch: bool = False,
) -> QualityModel:
    """A `QualityModel` from a method checkpoint written by `train` and a regressor written by `evaluate`
    (`<run>/regressors/*.safetensors`). `ckpt=None` uses the checkpoint recorded in the regressor. `device`: auto
    (CUDA when available) | cpu | cuda[:N]. UserError naming the file for a missing or unreadable input, or for a
    checkpoint other than the one the regressor was fitted on (unless `allow_mismatch=True`)."""
    if regressor is None:
        raise UserError("regressor: required (a .safetensors file written by evaluate)")
    reg = load_regressor(Path(regressor).expanduser())
    ckpt = ckpt or reg.meta.get("ckpt")
    if not ckpt or not Path(str(ckpt)).expanduser().is_file():
        raise UserError(f"ckpt: checkpoint not found: {ckpt} (the checkpoint the regressor was made for)")
    module, info = load_method_checkpoint(str(ckpt))
    check_regressor_matches(reg, Path(regressor), Path(str(ckpt)), module, info, allow_mismatch)
    model = QualityModel(module.to(parse_device(device)), reg, short_side=short_side, batch_size=batch_size)
    model.info = info
    return model
