"""Typed structured-config schemas, so Hydra checks the method / evaluator / data configs when it composes them.

For every option of the schema'd groups (`SCHEMA_GROUPS`), a dataclass is derived from the signature of the
option's `_target_` (its parameters, their type hints and defaults) and stored in Hydra's ConfigStore as
`schema/<group>/<option>`. Each option's yaml lists it first in its defaults::

    defaults:
      - /schema/evaluator/finetune@_here_
      - _self_

so at compose time Hydra rejects a key the target does not take (`+evaluator.n_splitz=3`, a typo in an
experiment) and a value of the wrong type (`evaluator.epochs=ten`), with a message naming the key, before any
work starts. The schema is derived, not written by hand, so it cannot drift from the code; a new option only
needs its `defaults` line (a test checks that every option has one).

Value ranges (`evaluator.epochs >= 1`) are checked by the targets' constructors and, for keys needed before
anything is built, by `utils.config_check.validate_config`; both raise the same one-line `ConfigError`.

Type hints map to what OmegaConf can check: int, float, bool, str (and `X | None`) and lists of those; anything
else (nested mappings, modules, paths, unions) is `Any`, so only the key is checked. Parameters whose default OmegaConf cannot
hold (objects, factories) are left out (the target's own default applies).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import types
import typing
from pathlib import Path
from typing import Any, List, Optional  # noqa: UP035 - OmegaConf validates typing generics

from omegaconf import MISSING, OmegaConf

__all__ = ["SCHEMA_GROUPS", "register_schemas", "schema_for"]

SCHEMA_GROUPS = ("method", "evaluator", "data/eval")
SCHEMA_ROOT = "schema"
_PRIMITIVES = (int, float, bool, str)
_DUNDER = ("_target_", "_recursive_", "_convert_", "_partial_")
_registered = False


def _omegaconf_type(hint: Any) -> Any:
    """A type hint -> the closest type OmegaConf validates (Any when it cannot)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint in _PRIMITIVES:
        return hint
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(rest) < len(args):
            inner = _omegaconf_type(rest[0])
            return Any if inner is Any else Optional[inner]  # noqa: UP045 - OmegaConf needs typing.Optional
        return Any
    if origin in (list, tuple, collections.abc.Sequence):
        item = args[0] if args else Any
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            item = args[0] if args and all(a == args[0] for a in args) else Any
        item = _omegaconf_type(item)
        return List[item] if item in _PRIMITIVES else List[Any]  # noqa: UP006 - OmegaConf needs typing.List
    return Any  # includes mappings: nested nodes (often `${...}` interpolations of whole groups) stay untyped


def _default(value: Any) -> tuple[bool, Any]:
    """(representable, dataclass field default or factory) for a signature default."""
    if value is inspect.Parameter.empty:
        return True, dataclasses.field(default=MISSING)
    if value is None or isinstance(value, _PRIMITIVES):
        return True, dataclasses.field(default=value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, _PRIMITIVES) for v in value):
        return True, dataclasses.field(default_factory=lambda v=list(value): list(v))
    return False, None


def schema_for(target: str, dunders: dict[str, Any] | None = None) -> type | None:
    """A dataclass with one typed field per parameter of `target` (plus the `_target_`-style keys in `dunders`),
    or None when the target takes `**kwargs` (any key is valid) or cannot be imported."""
    from hydra.utils import get_object

    try:
        obj = get_object(target)
        sig = inspect.signature(obj)
    except Exception:  # noqa: BLE001 - Hydra reports an unimportable target itself, at instantiate time
        return None
    fn = obj.__init__ if isinstance(obj, type) else obj
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - an unresolvable annotation: check names only
        hints = {}
    fields: list[tuple[str, Any, Any]] = []
    for key, value in (dunders or {"_target_": target}).items():
        fields.append((key, Any, dataclasses.field(default=value)))
    for name, p in sig.parameters.items():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if p.kind is inspect.Parameter.VAR_POSITIONAL or name in {f[0] for f in fields}:
            continue
        ok, default = _default(p.default)
        if ok:
            fields.append((name, _omegaconf_type(hints.get(name, Any)), default))
    cls_name = target.rsplit(".", 1)[-1] + "Schema"
    return dataclasses.make_dataclass(cls_name, fields)


def register_schemas(conf_dir: Path | None = None) -> None:
    """Store `schema/<group>/<option>` in Hydra's ConfigStore for every option of `SCHEMA_GROUPS` (once)."""
    global _registered
    if _registered:
        return
    from hydra.core.config_store import ConfigStore

    if conf_dir is None:
        from iqa_bench.utils.resolvers import CONF_DIR as conf_dir
    cs = ConfigStore.instance()
    for group in SCHEMA_GROUPS:
        for path in sorted((conf_dir / group).glob("*.yaml")):
            node = OmegaConf.load(path)
            if "_target_" not in node and isinstance(node.get("method"), dict | type(node)):
                node = node.method  # a `# @package _global_` method config (it overrides another group)
            target = node.get("_target_")
            if not isinstance(target, str):
                continue
            schema = schema_for(target, {k: node[k] for k in _DUNDER if k in node})
            if schema is not None:
                cs.store(group=f"{SCHEMA_ROOT}/{group}", name=path.stem, node=schema)
    _registered = True
