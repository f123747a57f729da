"""`hydra.utils.instantiate` that lets our own `UserError`s through unwrapped.

Hydra wraps every exception raised by a `_target_` in `InstantiationException`; a `UserError` (bad path, offline
weights, bad value) would then reach the user as a multi-page traceback instead of one line naming the key.
"""

from __future__ import annotations

import re
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate as _hydra_instantiate

from iqa_bench.errors import ConfigError, user_error_in_chain

_UNEXPECTED = re.compile(r"unexpected keyword argument '([^']+)'")
_FULL_KEY = re.compile(r"full_key: (\S+)")
_TARGET = re.compile(r"target '([^']+)'")


def instantiate(config: Any, *args: Any, **kwargs: Any) -> Any:
    """Like `hydra.utils.instantiate`; a `UserError` raised anywhere inside is re-raised as itself, and a keyword
    the target does not accept becomes a `ConfigError` naming the key."""
    _check_partial_keys(config, "")
    try:
        return _hydra_instantiate(config, *args, **kwargs)
    except InstantiationException as exc:
        user_error = user_error_in_chain(exc)
        if user_error is not None:
            raise user_error from None
        unexpected = _UNEXPECTED.search(str(exc.__cause__ or ""))
        if unexpected and isinstance(exc.__cause__, TypeError):
            key = _FULL_KEY.search(str(exc))
            target = _TARGET.search(str(exc))
            where = f"{key.group(1)}." if key else ""
            raise ConfigError(
                f"{where}{unexpected.group(1)}: not an option of {target.group(1) if target else 'this object'} "
                "(a typo, or a key left over from another config group)"
            ) from None
        raise


def _check_partial_keys(node: Any, path: str) -> None:
    """`_partial_: true` targets are only called later (e.g. inside a datamodule's setup), where a stray key would
    surface as a bare TypeError; check their keys against the target's signature now."""
    from omegaconf import DictConfig, ListConfig

    if isinstance(node, DictConfig):
        if node.get("_partial_", False) and "_target_" in node:
            _check_signature(node, path)
        for key in node.keys():
            if not str(key).startswith("_"):
                try:
                    child = node._get_node(key)
                except Exception:  # noqa: BLE001
                    continue
                _check_partial_keys(child, f"{path}.{key}" if path else str(key))
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            try:
                child = node._get_node(i)  # unresolved: a missing value elsewhere must not fail here
            except Exception:  # noqa: BLE001
                continue
            _check_partial_keys(child, f"{path}[{i}]")


def _check_signature(node: Any, path: str) -> None:
    import inspect

    from hydra.utils import get_method

    try:
        params = inspect.signature(get_method(str(node._target_))).parameters
    except Exception:  # noqa: BLE001 - unresolvable targets are reported by Hydra itself
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    for key in node.keys():
        if not str(key).startswith("_") and key not in params:
            try:
                full = node._get_full_key(key)
            except Exception:  # noqa: BLE001
                full = f"{path + '.' if path else ''}{key}"
            raise ConfigError(
                f"{full}: not an option of {node._target_} "
                "(a typo, or a key left over from another config group)"
            )
