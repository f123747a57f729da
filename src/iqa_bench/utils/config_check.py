"""Early validation of the composed config: a bad value fails before any work with a message naming the key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from iqa_bench.errors import ConfigError


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_ABSENT = object()

# (key, predicate, what is expected). Keys absent from a config are skipped (groups differ per method).
RULES: list[tuple[str, Callable[[Any], bool], str]] = [
    ("seed", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    ("data.pretrain.batch_size", lambda v: _is_int(v) and v > 0, "an integer > 0"),
    ("data.pretrain.crop_size", lambda v: _is_int(v) and v >= 16, "an integer >= 16"),
    ("data.pretrain.path", lambda v: v is None or (isinstance(v, str) and v != ""), "a folder path"),
    ("data.pretrain.num_workers", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    ("trainer.max_steps", lambda v: _is_int(v) and (v == -1 or v > 0), "-1 or an integer > 0"),
    (
        "trainer.max_epochs",
        lambda v: v is None or (_is_int(v) and (v == -1 or v > 0)),
        "null, -1 or an integer > 0",
    ),
    ("method.temperature", lambda v: _num(v) and v > 0, "a number > 0"),
    ("method.optimizer.lr", lambda v: _num(v) and v > 0, "a number > 0"),
    ("method.optimizer.weight_decay", lambda v: _num(v) and v >= 0, "a number >= 0"),
    ("method.scheduler.warmup_steps", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    ("method.projector_out_dim", lambda v: _is_int(v) and v > 0, "an integer > 0"),
    ("distortion.max_distortions", lambda v: _is_int(v) and 1 <= v <= 7, "an integer in 1..7"),
    ("distortion.num_levels", lambda v: _is_int(v) and 1 <= v <= 5, "an integer in 1..5"),
    ("distortion.pristine_prob", lambda v: _num(v) and 0 <= v <= 1, "a probability in [0, 1]"),
    ("evaluator.n_splits", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    ("evaluator.num_alphas", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    ("evaluator.batch_size", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
]


def validate_config(cfg: DictConfig) -> None:
    """Raise `ConfigError("<key> must be ..., got ...")` for the first rule `cfg` breaks (absent keys are skipped)."""
    for key, ok, want in RULES:
        try:
            value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
        except Exception as exc:
            raise ConfigError(f"{key}: {exc}") from None
        if value is _ABSENT:
            continue
        if not ok(value):
            raise ConfigError(f"{key} must be {want}, got {value!r}")
