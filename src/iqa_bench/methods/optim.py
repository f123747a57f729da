"""Optimiser and LR-schedule factories driven by plain config dicts (every key always present in YAML, so
experiments can switch e.g. AdamW -> SGD by overriding values instead of replacing nodes)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from iqa_bench.errors import ConfigError

OPTIMIZERS = ("adamw", "adam", "sgd", "lars")


class LARS(torch.optim.Optimizer):
    """LARS as in MoCo-v3 (the optimiser Re-IQA trains with): for tensors with ndim > 1 the gradient gets weight
    decay and is scaled by the trust ratio `trust_coefficient · ‖p‖ / ‖g + wd·p‖` (1 when either norm is 0);
    biases and norm parameters (ndim ≤ 1) get plain momentum SGD without weight decay. Update: `mu = m·mu + g`,
    `p -= lr · mu`."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        trust_coefficient: float = 0.001,
    ) -> None:
        defaults = {
            "lr": lr,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "trust_coefficient": trust_coefficient,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                dp = p.grad
                if p.ndim > 1:
                    dp = dp.add(p, alpha=g["weight_decay"])
                    p_norm, u_norm = torch.norm(p), torch.norm(dp)
                    one = torch.ones_like(p_norm)
                    q = torch.where(
                        p_norm > 0,
                        torch.where(u_norm > 0, g["trust_coefficient"] * p_norm / u_norm, one),
                        one,
                    )
                    dp = dp.mul(q)
                state = self.state[p]
                if "mu" not in state:
                    state["mu"] = torch.zeros_like(p)
                mu = state["mu"]
                mu.mul_(g["momentum"]).add_(dp)
                p.add_(mu, alpha=-g["lr"])
        return loss


SCHEDULES = ("none", "cosine", "cosine_restarts")


def build_optimizer(
    params: Iterable[torch.nn.Parameter],
    name: str = "adamw",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    betas: tuple[float, float] = (0.9, 0.999),
    trust_coefficient: float = 0.001,
) -> torch.optim.Optimizer:
    """`name` in OPTIMIZERS; `momentum` is used by SGD/LARS only, `betas` by Adam/AdamW only, `trust_coefficient`
    by LARS only."""
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=tuple(betas))
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, betas=tuple(betas))
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum)
    if name == "lars":
        return LARS(
            params, lr=lr, weight_decay=weight_decay, momentum=momentum, trust_coefficient=trust_coefficient
        )
    raise ConfigError(f"method.optimizer.name must be one of {OPTIMIZERS}, got {name!r}")


def lr_factor(
    step: int,
    name: str,
    total_steps: int,
    warmup_steps: int,
    min_factor: float,
    restart_period: int,
    restart_mult: float,
) -> float:
    """Multiplier of the base LR at optimizer step `step` (0-based).

    cosine: linear warm-up for `warmup_steps`, then cosine from 1 to `min_factor` at `total_steps`.
    cosine_restarts: SGDR (`CosineAnnealingWarmRestarts`) with first cycle `restart_period` steps, each next cycle
    `restart_mult` times longer (ARNIQA: one epoch, x2), stepped every iteration.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if name == "none":
        return 1.0
    if name == "cosine":
        span = max(1, total_steps - warmup_steps)
        t = min(1.0, (step - warmup_steps) / span)
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * t))
    if name == "cosine_restarts":
        t, period = step - warmup_steps, float(restart_period)
        while t >= period:
            t -= period
            period *= restart_mult
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * t / period))
    raise ConfigError(f"method.scheduler.name must be one of {SCHEDULES}, got {name!r}")


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str = "cosine",
    total_steps: int = 1000,
    warmup_steps: int = 0,
    min_lr_factor: float = 0.01,
    restart_period: int = 1000,
    restart_mult: float = 2.0,
) -> dict[str, Any] | None:
    """A Lightning lr_scheduler dict stepping every iteration, or None for `name='none'` without warm-up."""
    if name not in SCHEDULES:
        raise ConfigError(f"method.scheduler.name must be one of {SCHEDULES}, got {name!r}")
    if name == "none" and warmup_steps <= 0:
        return None
    if name == "cosine" and total_steps <= 0:
        raise ConfigError(
            f"method.scheduler.total_steps must be > 0 for a cosine schedule, got {total_steps}"
        )
    if name == "cosine_restarts" and restart_period <= 0:
        raise ConfigError(f"method.scheduler.restart_period must be > 0, got {restart_period}")
    sched = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: lr_factor(s, name, total_steps, warmup_steps, min_lr_factor, restart_period, restart_mult),
    )
    return {"scheduler": sched, "interval": "step"}
