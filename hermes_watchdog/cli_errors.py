"""How the command line ends: every usage error and every UserError as one line on stderr with exit code
2, Ctrl-C as its own code, and a bug of ours as one line (the traceback only with HERMES_WATCHDOG_DEBUG)."""

from __future__ import annotations

import difflib
import os
import re
import sys
from typing import Any

import typer

from hermes_watchdog import exitcodes
from hermes_watchdog.errors import UserError


def usage_error_types() -> tuple[type[Exception], ...]:
    # typer >= 0.2x vendors click (typer.TyperException); older typer raises click's own exceptions.
    found: list[type[Exception]] = []
    if hasattr(typer, "TyperException"):
        found.append(typer.TyperException)
    try:
        import click

        found.append(click.ClickException)
    except ImportError:
        pass
    return tuple(found)


def usage_message(exc: Exception, args: list[str]) -> str:
    """click's message, with two of its cases said better. Raises UserError for a negative PID."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    name = getattr(exc, "option_name", None)
    if type(exc).__name__ != "NoSuchOption" or not name:
        return message
    command = getattr(getattr(exc, "ctx", None), "info_name", None)
    if command == "diagnose" and re.fullmatch(r"-\d", name):
        # `diagnose -5`: click reads a negative number as options; it is a bad PID.
        from hermes_watchdog.commands.diagnose import parse_pid

        parse_pid(next((a for a in args if a.startswith(name) and re.fullmatch(r"-\d+", a)), name))
    best = difflib.get_close_matches(name, getattr(exc, "possibilities", None) or [], n=1, cutoff=0)
    return f"No such option: {name}" + (f" (did you mean {best[0]}?)" if best else "")


def run(app: Any, args: list[str]) -> int:
    """Run the typer ``app`` on ``args`` without its standalone error handling; the exit code."""
    try:
        code = app(args=args, prog_name="hermes-watchdog", standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        sys.stderr.write("hermes-watchdog: aborted\n")
        code = exitcodes.INTERRUPTED
    except usage_error_types() as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # no command at all: its message is the help
            sys.stderr.write((exc.format_message() or "Usage: hermes-watchdog COMMAND [ARGS]... (see --help)")
                             + "\n")
            code = exitcodes.USAGE
        else:
            try:
                message = usage_message(exc, args)
            except UserError as err:
                message = str(err)
            else:
                message += " (see --help)"
            sys.stderr.write(f"hermes-watchdog: {message}\n")
            code = exitcodes.USAGE
    except UserError as exc:
        sys.stderr.write(f"hermes-watchdog: {exc}\n")
        code = exitcodes.USAGE
    except KeyboardInterrupt:
        code = exitcodes.INTERRUPTED
    except Exception as exc:  # a bug of ours: one line, the traceback only on request
        if os.environ.get("HERMES_WATCHDOG_DEBUG"):
            raise
        sys.stderr.write(f"hermes-watchdog: internal error: {type(exc).__name__}: {exc} "
                         "(set HERMES_WATCHDOG_DEBUG=1 for the traceback)\n")
        code = exitcodes.USAGE
    return code if isinstance(code, int) else exitcodes.OK
