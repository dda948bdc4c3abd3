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
    heartbeat_stale: Annotated[float, typer.Option(
        help="Seconds without an event-loop heartbeat (Hermes >= 0.19) that mean a frozen loop.")] = 60.0,
) -> None:
    """Diagnose a process now: CPU per thread, state file, hot thread's stack, verdict.

    Exit code 0 healthy, 1 a failure signature found, 2 bad input or error.
    """
    from hermes_watchdog.commands import diagnose as cmd

    raise typer.Exit(cmd.main(pid, seconds, hermes_home, json_out, out, heartbeat_stale))


@app.command()
def run(
    config_file: Annotated[Path | None, typer.Option(
        "--config", help="TOML file (default ~/.hermes/watchdog.toml).")] = None,
    hermes_home: Annotated[list[Path] | None, typer.Option(help="A gateway's HERMES_HOME; repeatable.")] = None,
    all_profiles: Annotated[bool, typer.Option("--all-profiles", help="Watch ~/.hermes and every profile.")] = False,
    interval: Annotated[float | None, typer.Option(help="Seconds between samples [5].")] = None,
    window: Annotated[float | None, typer.Option(help="Seconds a verdict must hold before acting [60].")] = None,
    cpu_threshold: Annotated[float | None, typer.Option(help="Cores that count as pegged [0.9].")] = None,
    restart_with: Annotated[str | None, typer.Option(
        help="auto|launchd|systemd|command|signal|none [auto].")] = None,
    restart_command: Annotated[str | None, typer.Option(
        help="Argv for --restart-with command, split like a shell but never run by one.")] = None,
    grace: Annotated[float | None, typer.Option(help="Seconds before SIGKILL after a restart request [20].")] = None,
    max_restarts: Annotated[int | None, typer.Option(help="Restarts allowed per --restart-window [3].")] = None,
    restart_window: Annotated[float | None, typer.Option(help="Seconds of the restart budget [1800].")] = None,
    cooldown: Annotated[float | None, typer.Option(
        help="Seconds after a restart before another; doubles each time [60].")] = None,
    start_timeout: Annotated[float | None, typer.Option(help="Seconds for the new gateway to come up [90].")] = None,
    stuck_action: Annotated[str | None, typer.Option(help="alert|restart for stuck-disconnected [alert].")] = None,
    state_dir: Annotated[Path | None, typer.Option(help="Incidents and state.json [HERMES_HOME/watchdog].")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide and record, never signal.")] = False,
    once: Annotated[bool, typer.Option("--once", help="Watch one full window, act if needed, exit (cron).")] = False,
    frozen_action: Annotated[str | None, typer.Option(
        help="alert|restart when the event-loop heartbeat (Hermes >= 0.19) stays stale [alert].")] = None,
    heartbeat_stale: Annotated[float | None, typer.Option(
        help="Seconds without a heartbeat that mean a frozen loop (Hermes >= 0.19) [60].")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        help="Serve Prometheus /metrics on this port (0: any free port).")] = None,
    metrics_host: Annotated[str | None, typer.Option(help="Address for --metrics-port [127.0.0.1].")] = None,
    metrics_textfile: Annotated[Path | None, typer.Option(
        help="Also write metrics here for node_exporter's textfile collector (atomic).")] = None,
    notify_command: Annotated[str | None, typer.Option(
        help="Argv run per event with the event JSON on stdin; split like a shell, never run by one.")] = None,
    notify_webhook: Annotated[str | None, typer.Option(help="POST each event as JSON to this http(s) URL.")] = None,
    notify_timeout: Annotated[float | None, typer.Option(help="Seconds per notification attempt [5].")] = None,
    notify_retries: Annotated[int | None, typer.Option(help="Webhook retries, with backoff 1, 2, 4 s.. [3].")] = None,
    notify_desktop: Annotated[bool, typer.Option(
        "--notify-desktop", help="macOS: a desktop notification per event (osascript).")] = False,
    check: Annotated[bool, typer.Option("--check", help="Only validate the configuration, then exit.")] = False,
) -> None:
    """Watch the gateway: detect a busy loop, capture evidence, restart it, verify, record."""
    from hermes_watchdog.commands import run as cmd

    flags = {
        "hermes_home": [str(h) for h in hermes_home] if hermes_home else None,
        "all_profiles": all_profiles or None, "interval": interval, "window": window,
        "cpu_threshold": cpu_threshold, "restart_with": restart_with, "restart_command": restart_command,
        "grace": grace, "max_restarts": max_restarts, "restart_window": restart_window, "cooldown": cooldown,
        "start_timeout": start_timeout, "stuck_action": stuck_action,
        "state_dir": str(state_dir) if state_dir else None, "dry_run": dry_run or None, "once": once or None,
        "frozen_action": frozen_action, "heartbeat_stale": heartbeat_stale, "metrics_port": metrics_port,
        "metrics_host": metrics_host, "metrics_textfile": str(metrics_textfile) if metrics_textfile else None,
        "notify_command": notify_command, "notify_webhook": notify_webhook, "notify_timeout": notify_timeout,
        "notify_retries": notify_retries, "notify_desktop": notify_desktop or None,
    }
    raise typer.Exit(cmd.main(config_file, flags, check))


@app.command()
def status(
    state_dir: Annotated[Path | None, typer.Option(help="The daemon's state dir [HERMES_HOME/watchdog].")] = None,
    hermes_home: Annotated[Path | None, typer.Option(help="HERMES_HOME whose watchdog/ to read.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show what the watchdog sees: gateways, CPU, platforms, verdicts, incidents, restart budget."""
    from hermes_watchdog.commands import status as cmd

    raise typer.Exit(cmd.main(state_dir, hermes_home, json_out))


@app.command()
def demo() -> None:
    """Watch a simulated spinning gateway get detected, captured and restarted (under a minute)."""
    from hermes_watchdog.commands import demo as cmd

    raise typer.Exit(cmd.main())


_EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command(context_settings=_EXTRA_ARGS)
def install(
    ctx: typer.Context,
    manager: Annotated[str, typer.Option(help="auto, launchd or systemd.")] = "auto",
    hermes_home: Annotated[Path | None, typer.Option(help="The gateway's HERMES_HOME [~/.hermes].")] = None,
    profile: Annotated[str | None, typer.Option(help="A Hermes profile: ~/.hermes/profiles/NAME.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the file and the commands; change nothing.")
                       ] = False,
    system: Annotated[bool, typer.Option("--system", help="A system-wide service (as root).")] = False,
) -> None:
    """Install the watchdog as a service (launchd agent / systemd user unit). Flags after -- go to `run`."""
    from hermes_watchdog.commands import install as cmd

    raise typer.Exit(cmd.install(manager, hermes_home, profile, list(ctx.args), dry_run, system))


@app.command()
def uninstall(
    manager: Annotated[str, typer.Option(help="auto, launchd or systemd.")] = "auto",
    hermes_home: Annotated[Path | None, typer.Option(help="The gateway's HERMES_HOME [~/.hermes].")] = None,
    profile: Annotated[str | None, typer.Option(help="A Hermes profile: ~/.hermes/profiles/NAME.")] = None,
    system: Annotated[bool, typer.Option("--system", help="The system-wide service (as root).")] = False,
) -> None:
    """Stop, disable and remove the watchdog's service. A second run does nothing."""
    from hermes_watchdog.commands import install as cmd

    raise typer.Exit(cmd.uninstall(manager, hermes_home, profile, system))


@app.command()
def patch(
    action: Annotated[str, typer.Argument(help="status, install or uninstall.")],
    python: Annotated[Path | None, typer.Option(help="The gateway's Python interpreter.")] = None,
    hermes_home: Annotated[Path | None, typer.Option(help="Find the interpreter from this home's gateway.")
                           ] = None,
    restart: Annotated[bool, typer.Option("--restart", help="Restart the gateway so it loads the change.")] = False,
) -> None:
    """The QQBot busy-loop fix inside an installed Hermes (0.14.0 to 0.16.0), without editing its files."""
    from hermes_watchdog.commands import patch as cmd

    raise typer.Exit(cmd.main(action, python, hermes_home, restart))


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
