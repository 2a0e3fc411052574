"""One place that turns every bad-input error of the ``detopt`` command into one line on stderr.

Bad input -- a :class:`~detopt.errors.DetoptError` raised anywhere below a command
(``ConfigError(field, message)``, ``DataError``) or a usage error of the command line
itself (unknown option, an option value of the wrong type) -- prints::

    error: <field>: <message>

and exits with status 2, without a traceback. Any other exception is a bug and keeps
its traceback. The handling lives in the root command's ``main`` (the click entry point
that both the console script and ``typer.testing.CliRunner`` call), so commands do not
repeat it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from detopt.errors import ConfigError, DetoptError

__all__ = ["EXIT_BAD_INPUT", "OneLineErrorGroup", "error_line", "renamed"]

EXIT_BAD_INPUT = 2
"""Exit status for bad input: the same as a command-line usage error."""


def error_line(exc: BaseException) -> str:
    """The one line printed for a bad-input error, ``error: <field>: <message>``."""
    if isinstance(exc, DetoptError):
        text = str(exc)
    elif isinstance(exc, typer.TyperException):
        text = _usage_text(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return "error: " + " ".join(text.split())


def renamed(exc: ConfigError, field: str) -> ConfigError:
    """The same error reported under the command-line option ``field`` (e.g. ``particles`` -> ``--particles``)."""
    return ConfigError(field, exc.message)


def _usage_text(exc: typer.TyperException) -> str:
    """``<field>: <message>`` of a command-line usage error, with a pointer to ``--help``."""
    ctx = getattr(exc, "ctx", None)
    command = getattr(ctx, "command_path", None) or "detopt"
    hint = f" (see '{command} --help')"
    param = getattr(exc, "param", None)
    opts = getattr(param, "opts", None)
    param_hint = getattr(exc, "param_hint", None)
    option_name = getattr(exc, "option_name", None)
    if type(exc).__name__ == "MissingParameter":
        return exc.format_message().rstrip(".") + hint
    if opts:
        return f"{opts[0]}: {exc.message}{hint}"
    if param_hint:
        field = param_hint if isinstance(param_hint, str) else " / ".join(param_hint)
        return f"{field}: {exc.message}{hint}"
    if option_name:
        return f"{option_name}: {exc.message}{hint}"
    return f"{command}: {exc.format_message()}{hint}"


class OneLineErrorGroup(TyperGroup):
    """The root ``detopt`` command: reports bad input as one line (see the module docstring)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, windows_expand_args, **extra)
        try:
            status = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except typer.TyperException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare ``detopt``: show the help
                exc.show()  # type: ignore[attr-defined]
            else:
                print(error_line(exc), file=sys.stderr)
            sys.exit(getattr(exc, "exit_code", EXIT_BAD_INPUT))
        except DetoptError as exc:
            print(error_line(exc), file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
        except typer.Abort:  # Ctrl-C (click turns KeyboardInterrupt into Abort)
            print("interrupted: files are written whole or not at all, so nothing half-written is left; "
                  "rerun the command to do that step again (detopt optimize resumes after its last complete iteration)",
                  file=sys.stderr)
            sys.exit(130)
        sys.exit(status if isinstance(status, int) else 0)
