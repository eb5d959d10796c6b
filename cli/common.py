"""What every console script shares: one-line errors instead of tracebacks."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TypeVar

import typer

from dmphn_core.errors import DMPHNError
from dmphn_core.precision import PRECISIONS
from runtimes import runtime_names

F = TypeVar("F", bound=Callable)

#: Set to 1 to see the full traceback of an error (for bug reports).
DEBUG_ENV = "DMPHN_DEBUG"

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 3


def runtime_help(default: str) -> str:
    """``--runtime`` help naming every registered runtime (the registry is the one list)."""
    return f"runtime key ({', '.join(runtime_names())}) [default: {default}]"


def precision_help(default: str) -> str:
    return f"{', '.join(PRECISIONS)} [default: {default}]"


def new_app(help_text: str) -> typer.Typer:
    return typer.Typer(help=help_text, add_completion=False, pretty_exceptions_enable=False, no_args_is_help=False)


def fail(message: str, code: int = EXIT_USER_ERROR) -> typer.Exit:
    """Print ``error: message`` to stderr; return the Exit to raise."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code)


def user_errors(func: F) -> F:
    """Turn exceptions into one line on stderr and a non-zero exit (traceback with DMPHN_DEBUG=1)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except Exception as exc:  # noqa: BLE001 - the point is to catch everything
            if os.environ.get(DEBUG_ENV) == "1":
                raise
            if isinstance(exc, (DMPHNError, ValueError, FileNotFoundError, PermissionError, IsADirectoryError)):
                raise fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
            first_line = (str(exc).strip().splitlines() or [""])[0]
            raise fail(
                f"internal error: {type(exc).__name__}: {first_line} (rerun with {DEBUG_ENV}=1 for the traceback)",
                EXIT_INTERNAL_ERROR,
            ) from None

    return wrapper  # type: ignore[return-value]
