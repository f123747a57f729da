"""Config checking, in one place: a bad key or value fails before any work, with one line naming the key.

The checks run in two stages, and every rule is stated once:

1. **Compose time (Hydra).** The method / evaluator / data-eval groups carry typed structured-config schemas
   derived from their `_target_` signatures (`utils/schemas.py`): a key the target does not take, or a value of the
   wrong type, is rejected by Hydra while it composes the config, naming the key.
2. **Run start (`validate_config`).** Value ranges. Objects that check their own arguments (the evaluators'
   constructors: `evaluator.epochs >= 1`, ...) are built here once, cheaply and without side effects, so their
   checks fire before training instead of after it; `RULES` covers the remaining keys (those read by the trainer,
   the data module and the methods before their first use).

Both stages raise `ConfigError("<key> must be ..., got ...")` (`check` formats it for constructors too);
`utils.instantiate` additionally names an unknown key of a nested `_partial_` target, which no schema covers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from iqa_bench.errors import ConfigError

__all__ = ["RULES", "check", "validate_config"]


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
]

# groups whose objects check their own arguments in the constructor and are cheap to build: built at run start
SELF_CHECKING = ("evaluator",)


def check(checks: Iterable[tuple[str, bool, str, Any]]) -> None:
    """Raise `ConfigError("<key> must be <want>, got <value>")` for the first `(key, ok, want, value)` that is not
    ok; the one message format of every config check (constructors use it for their arguments)."""
    for key, ok, want, value in checks:
        if not ok:
            raise ConfigError(f"{key} must be {want}, got {value!r}")


def validate_config(cfg: DictConfig) -> None:
    """Run-start checks (see the module docstring): `RULES` (absent keys are skipped), then build the
    self-checking groups' objects so their constructors' checks run now. Raises `ConfigError` naming the key."""
    for key, ok, want in RULES:
        try:
            value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
        except Exception as exc:
            raise ConfigError(f"{key}: {exc}") from None
        if value is _ABSENT:
            continue
        check([(key, ok(value), want, value)])
    from iqa_bench.utils.instantiate import instantiate

    for group in SELF_CHECKING:
        node = cfg.get(group)
        if isinstance(node, DictConfig) and "_target_" in node:
            instantiate(node)
