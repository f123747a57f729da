"""Baseline encoders evaluated next to a trained one, named for their initialisation.

`init=random`: the method's network at a seeded random initialisation (no pretrained weights); `init=imagenet`: the
network as built with `backbone.pretrained=true` (timm's ImageNet weights) before any pretraining; `init=weights`:
as built from a local `backbone.weights` file. With pretrained or file weights both that row and `init=random` are
evaluated, so a table always says which initialisation a baseline row is.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, open_dict

from iqa_bench.utils.instantiate import instantiate

RANDOM, IMAGENET, WEIGHTS = "init=random", "init=imagenet", "init=weights"


def init_label(backbone: Any) -> str:
    """The label of a backbone config's initialisation: init=weights | init=imagenet | init=random."""
    if backbone.get("weights"):
        return WEIGHTS
    return IMAGENET if backbone.get("pretrained") else RANDOM


def init_baselines(
    cfg: DictConfig,
    method: L.LightningModule,
    build: Callable[[DictConfig], L.LightningModule] | None = None,
) -> dict[str, L.LightningModule]:
    """{label: encoder in eval mode} of the baselines to evaluate with `method` (call before training it).

    The untrained `method` is copied under its own initialisation's label; when that is not `init=random`, a
    random-init network is also built from `cfg` with `backbone.pretrained=false, weights=null` (`build(cfg)`,
    default `instantiate(cfg.method)`, under a fork of the RNG seeded by `cfg.seed`, so the training run draws the
    same random numbers either way). Empty when `evaluator.baseline_random_init` is false or there is no evaluator.
    """
    if cfg.get("evaluator") is None or not cfg.evaluator.get("baseline_random_init", True):
        return {}
    label = init_label(cfg.backbone)
    out = {label: copy.deepcopy(method).eval()}
    if label != RANDOM:
        random_cfg = copy.deepcopy(cfg)
        with open_dict(random_cfg):
            random_cfg.backbone.pretrained = False
            random_cfg.backbone.weights = None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(cfg.get("seed", 0)))
            out[RANDOM] = (build or (lambda c: instantiate(c.method)))(random_cfg).eval()
    return out
