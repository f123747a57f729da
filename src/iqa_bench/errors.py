"""User-facing errors: raised for bad input or configuration, reported as one line without a traceback."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


class UserError(Exception):
    """An error caused by the user's input (config value, path, file); the message names the key or file."""


class ConfigError(UserError):
    """A configuration value is invalid; the message starts with the offending key."""


def user_error_in_chain(exc: BaseException) -> UserError | None:
    """The `UserError` that caused `exc` (itself, or one wrapped e.g. by Hydra's instantiate), else None."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, UserError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def exit_on_user_error(fn: F) -> F:
    """Decorator for entry points: a `UserError` prints `error: <message>` on stderr and exits with status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            user_error = user_error_in_chain(exc)
            if user_error is None:
                raise
            print(f"error: {user_error}", file=sys.stderr, flush=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]
