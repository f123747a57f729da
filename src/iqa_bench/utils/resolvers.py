"""OmegaConf resolvers used by the config tree (registered on import)."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parents[3]
CONF_DIR = PROJECT_ROOT / "conf"


def _wandb_offline() -> bool:
    """W&B runs offline unless the user asked for online mode through WANDB_MODE."""
    return os.environ.get("WANDB_MODE", "offline").lower() not in ("online", "run")


def register() -> None:
    """Register `${iqa_root:}` (the project root: the folder holding `conf/`) and `${wandb_offline:}`."""
    if not OmegaConf.has_resolver("iqa_root"):
        OmegaConf.register_new_resolver("iqa_root", lambda: str(PROJECT_ROOT))
    if not OmegaConf.has_resolver("wandb_offline"):
        OmegaConf.register_new_resolver("wandb_offline", _wandb_offline)


register()
