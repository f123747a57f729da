"""OmegaConf resolvers used by the config tree (registered on import)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from omegaconf import OmegaConf

# the source checkout (tests and benchmarks use it); runs never write here unless it is the current directory
PROJECT_ROOT = Path(__file__).resolve().parents[3]
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"  # shipped inside the package


def _wandb_offline() -> bool:
    """W&B runs offline unless the user asked for online mode through WANDB_MODE."""
    return os.environ.get("WANDB_MODE", "offline").lower() not in ("online", "run")


# characters a Hydra override value may hold unquoted (besides letters and digits); anything else in a run-folder
# name would stop the folder's path from being pasted back into a command (`ckpt=runs/train/<name>/...`)
_SAFE = re.compile(r"[^A-Za-z0-9._+\-]")


def run_name(override_dirname: str) -> str:
    """Folder name of a run from Hydra's `job.override_dirname`, which train.yaml joins as `key-value` pairs with
    `__` ("method-arniqa__seed-1"): "default" without overrides. A group path's `/` becomes `.`
    (`data/pretrain-folder` -> `data.pretrain-folder`), list brackets are dropped and list commas become `+`
    (`data.eval-clive+koniq10k`), any other character outside `[A-Za-z0-9._+-]` becomes `_`, so the folder's path
    can be pasted unquoted into another command. Names over 120 characters keep their shortest pairs (so
    `method-arniqa__seed-1` stays readable beside a long `data.eval.biq2021.root-...`) up to 100 characters, in
    their original order, and end with a hash of the whole name. The same command always maps to the same folder,
    which is what makes resume-after-kill and sweep skipping work."""
    name = sanitized_override_name(override_dirname)
    if len(name) <= 120:
        return name
    pairs = name.split("__")
    kept: set[int] = set()
    length = 0
    for i in sorted(range(len(pairs)), key=lambda i: (len(pairs[i]), i)):
        if length + len(pairs[i]) + 2 > 100:
            break
        kept.add(i)
        length += len(pairs[i]) + 2
    short = "__".join(p for i, p in enumerate(pairs) if i in kept)
    digest = hashlib.sha1(name.encode()).hexdigest()[:12]
    return f"{short}__{digest}" if short else f"{name[:100]}-{digest}"


def sanitized_override_name(override_dirname: str) -> str:
    """`run_name` before shortening: group `/` -> `.`, list brackets dropped, commas -> `+`, unsafe chars -> `_`."""
    name = override_dirname.replace("/", ".").replace(",", "+")
    name = re.sub(r"[\[\]{}()'\"]", "", name)
    return _SAFE.sub("_", name).lstrip("+~.") or "default"


def runtime_root() -> Path:
    """Where runs/ and data caches go: `$IQA_ROOT` when set, else the current directory (an installed package must
    never write into site-packages)."""
    env = os.environ.get("IQA_ROOT")
    return Path(env).expanduser().resolve() if env else Path.cwd()


def config_groups(*groups: str) -> str:
    """Help text listing each config group with its options, read from the shipped config tree (so `--help` never
    drifts from the files): one line `  group: a, b, c` per group."""
    lines = []
    for g in groups:
        names = sorted(p.stem for p in (CONF_DIR / g).glob("*.yaml") if not p.stem.startswith("_"))
        lines.append(f"  {g + ':':<15} {', '.join(names)}")
    return "\n".join(lines)


def config_groups_inline(group: str) -> str:
    """The options of one config group, comma-separated on one line."""
    return ", ".join(sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml") if not p.stem.startswith("_")))


def is_gpu(accelerator: str) -> bool:
    """True when a trainer's `accelerator` runs on a GPU ("gpu", "cuda", or "auto" with CUDA available): used to
    turn on GPU-only defaults such as channels_last."""
    acc = str(accelerator).lower()
    if acc == "auto":
        import torch

        return torch.cuda.is_available()
    return acc in ("gpu", "cuda")


def register() -> None:
    """Register `${iqa_root:}` (the runtime root, see `runtime_root`), `${wandb_offline:}`,
    `${run_name:<override_dirname>}` and `${is_gpu:<accelerator>}`."""
    if not OmegaConf.has_resolver("iqa_root"):
        OmegaConf.register_new_resolver("iqa_root", lambda: str(runtime_root()))
    if not OmegaConf.has_resolver("wandb_offline"):
        OmegaConf.register_new_resolver("wandb_offline", _wandb_offline)
    if not OmegaConf.has_resolver("run_name"):
        OmegaConf.register_new_resolver("run_name", run_name)
    if not OmegaConf.has_resolver("config_groups"):
        OmegaConf.register_new_resolver("config_groups", config_groups)
    if not OmegaConf.has_resolver("config_groups_inline"):
        OmegaConf.register_new_resolver("config_groups_inline", config_groups_inline)
    if not OmegaConf.has_resolver("is_gpu"):
        OmegaConf.register_new_resolver("is_gpu", is_gpu)


register()


# typed schemas of the config groups, checked by Hydra at compose time (needs the resolvers above registered)
from iqa_bench.utils.schemas import register_schemas  # noqa: E402

register_schemas()
