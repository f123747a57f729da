"""Loading a pretrained method from a Lightning checkpoint written by `train` (shared by `evaluate`, `predict`
and the Python API `iqa_bench.load`).

The method class is taken from the checkpoint's `iqa_bench_method` entry when present, else from the run's saved
Hydra config (`<run>/.hydra/config.yaml`, key `method._target_`, found next to or one folder above the checkpoint,
i.e. `<run>/checkpoints/last.ckpt`); for a checkpoint outside a run directory, from the given method config. The
constructor arguments come from the checkpoint's hyper-parameters (every method saves them) with the
pretrained/weights options of every backbone config in them (backbone, Re-IQA's content encoder) switched off (the
checkpoint's state dict replaces them); the checkpoint is read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from iqa_bench.errors import UserError
from iqa_bench.utils.instantiate import instantiate

RANDOM = "random"
# optional checkpoint entry naming the method class ("module.Class"); used first when a method writes it
CKPT_METHOD_KEY = "iqa_bench_method"


def plain(node: Any) -> Any:
    """A config node as plain Python containers (resolved); anything else unchanged."""
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def run_config_of(ckpt: Path) -> tuple[DictConfig | None, str | None]:
    """The saved Hydra config of the run that wrote `ckpt` (and its method choice), or (None, None)."""
    for d in (ckpt.parent, ckpt.parent.parent):
        cfg_file = d / ".hydra" / "config.yaml"
        if cfg_file.is_file():
            try:
                run_cfg = OmegaConf.load(cfg_file)
            except Exception:  # unreadable: fall back to the given method config
                return None, None
            choice = None
            hydra_file = d / ".hydra" / "hydra.yaml"
            if hydra_file.is_file():
                try:
                    choice = OmegaConf.select(OmegaConf.load(hydra_file), "hydra.runtime.choices.method")
                except Exception:
                    choice = None
            return run_cfg, choice  # type: ignore[return-value]
    return None, None


def _resolve_class(target: str) -> type:
    from hydra.utils import get_class

    try:
        return get_class(target)
    except Exception as exc:
        raise UserError(f"ckpt: cannot import the method class {target!r} ({exc})") from None


def load_method_checkpoint(
    path: str | Path, cfg: DictConfig | None = None
) -> tuple[L.LightningModule, dict[str, Any]]:
    """Load a method from a Lightning checkpoint (see the module docstring); returns (module in eval mode,
    info {'method', 'backbone', 'target'}). `cfg` (a composed train/evaluate/predict config) supplies the method
    for checkpoints without a run directory or saved hyper-parameters. UserError for a missing/unreadable file or a
    mismatching state."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"ckpt: checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"ckpt: cannot read {path} as a checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise UserError(f"ckpt: {path} is not a Lightning checkpoint (no 'state_dict')")
    run_cfg, choice = run_config_of(path)
    method_node = run_cfg.get("method") if run_cfg is not None else None
    fallback = cfg.method._target_ if cfg is not None else None
    target = ckpt.get(CKPT_METHOD_KEY) or (method_node or {}).get("_target_") or fallback
    if not target:
        raise UserError(f"ckpt: {path} names no method class and has no run directory (.hydra/config.yaml)")
    cls = _resolve_class(target)
    hparams = dict(ckpt.get("hyper_parameters") or {})
    if hparams:
        backbone = dict(hparams.get("backbone") or {})
        for key, value in list(hparams.items()):
            # every backbone config (the backbone, Re-IQA's content encoder, ...): the state dict below replaces
            # its pretrained/local weights, which need not be reachable any more
            if isinstance(value, dict) and "name" in value and ("pretrained" in value or "weights" in value):
                hparams[key] = {**value, "pretrained": False, "weights": None}
        try:
            module = cls(**hparams)
        except TypeError as exc:
            raise UserError(f"ckpt: {path} hyper-parameters do not fit {target} ({exc})") from None
    else:  # no saved hyper-parameters: build from the given method config
        if cfg is None:
            raise UserError(f"ckpt: {path} has no saved hyper-parameters and no method config was given")
        module = instantiate(copy.deepcopy(cfg.method))
        backbone = dict(plain(cfg.backbone))
    result = module.load_state_dict(ckpt["state_dict"], strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise UserError(
            f"ckpt: {path} does not match {target} (missing {list(result.missing_keys)[:5]}, unexpected "
            f"{list(result.unexpected_keys)[:5]}); pass the right method=..."
        )
    own_name = cfg.get("method_name") if (cfg is not None and run_cfg is None) else None
    method_name = choice or own_name or cls.__name__.lower()
    info = {"method": str(method_name), "backbone": str(backbone.get("name", "?")), "target": target}
    return module.eval(), info
