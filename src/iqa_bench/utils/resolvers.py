"""OmegaConf resolvers used by the config tree (registered on import)."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parents[3]
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"  # shipped inside the package


def _wandb_offline() -> bool:
    """W&B runs offline unless the user asked for online mode through WANDB_MODE."""
    return os.environ.get("WANDB_MODE", "offline").lower() not in ("online", "run")


def run_name(override_dirname: str) -> str:
    """Folder name of a run from Hydra's `job.override_dirname` ("method=arniqa,seed=1"): "default" when there
    are no overrides; '/' and other unsafe characters replaced; long names shortened with a hash suffix. The same
    command always maps to the same folder, which is what makes resume-after-kill and sweep skipping work."""
    import hashlib
    import re

    name = re.sub(r"[^A-Za-z0-9=,._+\-\[\]]", "_", override_dirname) or "default"
    if len(name) > 120:
        name = f"{name[:100]}-{hashlib.sha1(name.encode()).hexdigest()[:12]}"
    return name


def is_gpu(accelerator: str) -> bool:
    """True when a trainer's `accelerator` runs on a GPU ("gpu", "cuda", or "auto" with CUDA available): used to
    turn on GPU-only defaults such as channels_last."""
    acc = str(accelerator).lower()
    if acc == "auto":
        import torch

        return torch.cuda.is_available()
    return acc in ("gpu", "cuda")


def register() -> None:
    """Register `${iqa_root:}` (the project root: the folder holding `conf/`), `${wandb_offline:}` and
    `${run_name:<override_dirname>}`."""
    if not OmegaConf.has_resolver("iqa_root"):
        OmegaConf.register_new_resolver("iqa_root", lambda: str(PROJECT_ROOT))
    if not OmegaConf.has_resolver("wandb_offline"):
        OmegaConf.register_new_resolver("wandb_offline", _wandb_offline)
    if not OmegaConf.has_resolver("run_name"):
        OmegaConf.register_new_resolver("run_name", run_name)
    if not OmegaConf.has_resolver("is_gpu"):
        OmegaConf.register_new_resolver("is_gpu", is_gpu)


register()


# typed schemas of the config groups, checked by Hydra at compose time (needs the resolvers above registered)
from iqa_bench.utils.schemas import register_schemas  # noqa: E402

register_schemas()
