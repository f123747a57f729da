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


def exit_on_user_error(fn: F) -> F:
    """Decorator for entry points: a `UserError` prints `error: <message>` on stderr and exits with status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]
