"""The command line: declares commands and options, hands each to its module in ``commands/``.

``main`` runs typer without its standalone error handling so that every usage error and every
UserError comes out as one line on stderr with exit code 2, never a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from hermes_watchdog import __version__
from hermes_watchdog.errors import UserError


def _usage_error_types() -> tuple[type[Exception], ...]:
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


app = typer.Typer(
    name="hermes-watchdog",
    help="CPU-liveness watchdog and diagnostics for the Hermes Agent gateway.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Lets a negative PID reach our own check instead of being read as an unknown option.
_PID_ARG = {"ignore_unknown_options": True}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hermes-watchdog {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    pass


@app.command(context_settings=_PID_ARG)
def diagnose(
    pid: Annotated[str, typer.Argument(help="PID of the process to diagnose (any Python process).")],
    seconds: Annotated[float, typer.Option("--seconds", "-s", help="How long to sample CPU.")] = 5.0,
    hermes_home: Annotated[Path | None, typer.Option(help="The gateway's HERMES_HOME.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write a redacted evidence folder here.")] = None,
) -> None:
    """Diagnose a process now: CPU per thread, state file, hot thread's stack, verdict.

    Exit code 0 healthy, 1 a failure signature found, 2 bad input or error.
    """
    from hermes_watchdog.commands import diagnose as cmd

    raise typer.Exit(cmd.main(pid, seconds, hermes_home, json_out, out))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    try:
        code = app(args=args, prog_name="hermes-watchdog", standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        sys.stderr.write("hermes-watchdog: aborted\n")
        code = 130
    except _usage_error_types() as exc:
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        sys.stderr.write(f"hermes-watchdog: {message} (see --help)\n")
        code = 2
    except UserError as exc:
        sys.stderr.write(f"hermes-watchdog: {exc}\n")
        code = 2
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # a bug of ours: one line, the traceback only on request
        if os.environ.get("HERMES_WATCHDOG_DEBUG"):
            raise
        sys.stderr.write(f"hermes-watchdog: internal error: {type(exc).__name__}: {exc} "
                         "(set HERMES_WATCHDOG_DEBUG=1 for the traceback)\n")
        code = 2
    sys.exit(code if isinstance(code, int) else 0)
