"""`hydra.utils.instantiate` that lets our own `UserError`s through unwrapped.

Hydra wraps every exception raised by a `_target_` in `InstantiationException`; a `UserError` (bad path, offline
weights, bad value) would then reach the user as a multi-page traceback instead of one line naming the key.
"""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate as _hydra_instantiate

from iqa_bench.errors import UserError


def instantiate(config: Any, *args: Any, **kwargs: Any) -> Any:
    """Like `hydra.utils.instantiate`; a `UserError` raised anywhere inside is re-raised as itself."""
    try:
        return _hydra_instantiate(config, *args, **kwargs)
    except InstantiationException as exc:
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, UserError):
                raise cause from None
            cause = cause.__cause__ or cause.__context__
        raise
