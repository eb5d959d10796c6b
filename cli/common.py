"""What every console script shares: one-line errors instead of tracebacks."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from dmphn_core.errors import DMPHNError
from dmphn_core.fileio import describe_os_error
from dmphn_core.precision import PRECISIONS
from runtimes import runtime_names

try:  # recent typer vendors click as typer._click; older releases use click itself
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - depends on the installed typer
    from click.exceptions import ClickException

F = TypeVar("F", bound=Callable)

#: Set to 1 to see the full traceback of an error (for bug reports).
DEBUG_ENV = "DMPHN_DEBUG"

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 3

#: where dmphn-deblur writes when no -o is given (images keep their names; a video its own)
DEFAULT_OUTPUT_FOLDER = Path("deblurred")


def runtime_help() -> str:
    """``--runtime`` help naming every registered runtime (the registry is the one list)."""
    return f"runtime key: {', '.join(runtime_names())}"


def precision_help() -> str:
    return ", ".join(PRECISIONS)


def auto_precision_help() -> str:
    """``--precision`` help of the commands that run a checkpoint through ``--precision auto``."""
    return f"{precision_help()}, or auto: the fastest verified precision meeting --min-psnr (fp32 without it)"


#: ``--min-psnr``: the quality floor of ``--precision auto`` (export.auto)
MinPsnrOpt = Annotated[float | None, typer.Option(
    "--min-psnr", help="with --precision auto: lowest PSNR (dB) vs fp32, as verified on frames, the choice may have",
    show_default="none: fp32 exactness")]


class OneLineErrorApp(typer.Typer):
    """A Typer app whose usage errors (unknown option, bad value, missing argument) print as
    one ``error: ...`` line plus a pointer to ``--help``, like every other error here, instead
    of typer's boxed panel with the usage string."""

    def __call__(self, *args, **kwargs):
        kwargs["standalone_mode"] = False  # exceptions come back to us instead of being printed
        try:
            code = super().__call__(*args, **kwargs)
        except ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            command = ctx.command_path if ctx is not None else kwargs.get("prog_name") or Path(sys.argv[0]).name
            print(f"error: {exc.format_message().rstrip('.')}; see {command} --help", file=sys.stderr)
            sys.exit(exc.exit_code)
        except typer.Abort:
            print("error: aborted", file=sys.stderr)
            sys.exit(1)
        # standalone_mode=False returns the exit code of a typer.Exit, and None on success
        sys.exit(code if isinstance(code, int) else 0)


def new_app(help_text: str) -> typer.Typer:
    return OneLineErrorApp(help=help_text, add_completion=False, pretty_exceptions_enable=False, no_args_is_help=False)


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
            if describe_os_error(exc) is not None:  # a full disk, a read-only folder: the user's situation
                raise fail(f"cannot go on: {describe_os_error(exc)}") from None
            first_line = (str(exc).strip().splitlines() or [""])[0]
            raise fail(
                f"internal error: {type(exc).__name__}: {first_line} (rerun with {DEBUG_ENV}=1 for the traceback)",
                EXIT_INTERNAL_ERROR,
            ) from None

    return wrapper  # type: ignore[return-value]
