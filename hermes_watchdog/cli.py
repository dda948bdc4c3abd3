"""The command line: declares commands and options, hands each to its module in ``commands/``.

How parameters are shown, and the options several commands share, are in ``cli_params``. ``main`` hands the
run to ``cli_errors.run``: typer without its standalone error handling, so every usage error and every
UserError comes out as one line on stderr with exit code 2, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from hermes_watchdog import __version__, cli_errors, exitcodes
from hermes_watchdog.cli_params import (
    EXTRA_ARGS,
    STACK_WITH_HELP,
    Command,
    Manager,
    Profile,
    S6Scandir,
    ServiceHome,
    opt,
)

app = typer.Typer(
    name="hermes-watchdog",
    help="CPU-liveness watchdog and diagnostics for the Hermes Agent gateway.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: rich markup would eat "[auto]" and other bracketed text, and shows type tags.
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hermes-watchdog {__version__}")
        raise typer.Exit(exitcodes.OK)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    pass


@app.command(cls=Command)
def diagnose(
    pid: Annotated[str, typer.Argument(help="PID of the process to diagnose (any Python process).", metavar="PID",
                                       show_default=False)],
    seconds: Annotated[float, opt("--seconds", "-s", help="How long to sample CPU.", default=5,
                                  metavar="SECONDS")] = 5.0,
    hermes_home: Annotated[Path | None, opt("--hermes-home", help="The gateway's HERMES_HOME.",
                                            default="found from the process", metavar="PATH")] = None,
    json_out: Annotated[bool, opt("--json", help="Print one JSON object.")] = False,
    out: Annotated[Path | None, opt("--out", help="Write a redacted evidence folder here.", metavar="DIR")] = None,
    frozen_after: Annotated[float, opt(
        "--frozen-after", "--heartbeat-stale", help="Seconds the event loop must not turn (stack, heartbeat, "
        "loop-tick socket) to be called frozen.", default=60, metavar="SECONDS")] = 60.0,
    stack_with: Annotated[str, opt("--stack-with", help=STACK_WITH_HELP, default="auto", metavar="METHOD")
                          ] = "auto",
) -> None:
    """Diagnose a process now: CPU per thread, state file, hot thread's stack, verdict.

    Exit code 0 healthy, 1 a failure signature found, 2 bad input or error.
    """
    from hermes_watchdog.commands import diagnose as cmd

    raise typer.Exit(cmd.main(pid, seconds, hermes_home, json_out, out, frozen_after, stack_with))


@app.command()
def check(
    hermes_home: Annotated[Path | None, opt("--hermes-home", help="The gateway's HERMES_HOME.",
                                            default="$HERMES_HOME, else ~/.hermes", metavar="PATH")] = None,
    seconds: Annotated[float, opt("--seconds", "-s", help="How long to sample CPU.", default=2,
                                  metavar="SECONDS")] = 2.0,
    json_out: Annotated[bool, opt("--json", help="Print one JSON object.")] = False,
    frozen_after: Annotated[float, opt(
        "--frozen-after", "--heartbeat-stale", help="Seconds without an event-loop heartbeat (or a silent "
        "loop-tick socket) that mean a frozen loop.", default=60, metavar="SECONDS")] = 60.0,
) -> None:
    """A health probe (Docker HEALTHCHECK, Kubernetes exec probe): is this home's gateway healthy now?

    Exit code 0 healthy, 1 a failure signature, 2 cannot tell (no gateway, no verdict, bad input).
    """
    from hermes_watchdog.commands import check as cmd

    raise typer.Exit(cmd.main(hermes_home, seconds, json_out, frozen_after))


@app.command()
def run(
    config_file: Annotated[Path | None, opt("--config", help="TOML file.", default="~/.hermes/watchdog.toml",
                                            metavar="FILE")] = None,
    hermes_home: Annotated[list[Path] | None, opt("--hermes-home", help="A gateway's HERMES_HOME; repeatable.",
                                                  default="$HERMES_HOME, else ~/.hermes", metavar="PATH")] = None,
    all_profiles: Annotated[bool, opt("--all-profiles", help="Watch ~/.hermes and every profile.")] = False,
    interval: Annotated[float | None, opt("--interval", help="Seconds between samples.", default=5,
                                          metavar="SECONDS")] = None,
    window: Annotated[float | None, opt("--window", help="Seconds a verdict must hold before acting.", default=60,
                                        metavar="SECONDS")] = None,
    cpu_threshold: Annotated[float | None, opt("--cpu-threshold", help="Cores that count as pegged.", default=0.9,
                                               metavar="CORES")] = None,
    restart_with: Annotated[str | None, opt("--restart-with", help="auto|launchd|systemd|s6|command|signal|none.",
                                            default="auto", metavar="MANAGER")] = None,
    restart_command: Annotated[str | None, opt(
        "--restart-command", help="Restart by running this argv (implies --restart-with command); split like a "
        "shell but never run by one.", metavar="COMMAND")] = None,
    s6_scandir: Annotated[list[Path] | None, opt(
        "--s6-scandir", help="An s6 scan directory to search for the gateway's service; repeatable.",
        default="/run/service, /var/run/s6/services", metavar="DIR")] = None,
    grace: Annotated[float | None, opt("--grace", help="Seconds before SIGKILL after a restart request.",
                                       default=20, metavar="SECONDS")] = None,
    max_restarts: Annotated[int | None, opt("--max-restarts", help="Restarts allowed per --restart-window.",
                                            default=3, metavar="N")] = None,
    restart_window: Annotated[float | None, opt("--restart-window", help="Seconds of the restart budget.",
                                                default=1800, metavar="SECONDS")] = None,
    cooldown: Annotated[float | None, opt(
        "--cooldown", help="Seconds after a restart before another; doubles each time.", default=60,
        metavar="SECONDS")] = None,
    start_timeout: Annotated[float | None, opt("--start-timeout", help="Seconds for a gateway to come up (a "
                                               "restart's, or any: longer is startup-hang).",
                                               default=90, metavar="SECONDS")] = None,
    stuck_action: Annotated[str | None, opt("--stuck-action", help="alert|restart for stuck-disconnected.",
                                            default="alert", metavar="ACTION")] = None,
    state_dir: Annotated[Path | None, opt("--state-dir", help="Incidents and state.json.",
                                          default="HERMES_HOME/watchdog", metavar="DIR")] = None,
    dry_run: Annotated[bool, opt("--dry-run", help="Decide and record, never signal.")] = False,
    once: Annotated[bool, opt("--once", help="Watch one full window, act if needed, exit (cron).")] = False,
    frozen_action: Annotated[str | None, opt(
        "--frozen-action", help="alert|restart for loop-frozen (a restart also needs two witnesses that agree).",
        default="alert", metavar="ACTION")] = None,
    frozen_after: Annotated[float | None, opt(
        "--frozen-after", "--heartbeat-stale", help="Seconds the event loop must not turn to be called frozen.",
        default=60, metavar="SECONDS")] = None,
    loop_proof: Annotated[float | None, opt(
        "--loop-proof", help="Seconds of dense stack samples, the loop never in its selector, that prove a busy "
        "loop.", default=8, metavar="SECONDS")] = None,
    starved_grace: Annotated[float | None, opt(
        "--starved-grace", help="Seconds before SIGKILL when the stack proved the loop starved (it cannot run its "
        "SIGTERM handler).", default=3, metavar="SECONDS")] = None,
    stack_every: Annotated[float | None, opt(
        "--stack-every", help="Seconds between background loop-stack samples (0: only when suspect).", default=120,
        metavar="SECONDS")] = None,
    memory_limit: Annotated[str | None, opt(
        "--memory-limit", help="RSS above this for the whole window is memory-high (e.g. 2GiB, 400MiB).",
        default="off", metavar="SIZE")] = None,
    memory_action: Annotated[str | None, opt("--memory-action", help="alert|restart for memory-high.",
                                             default="restart", metavar="ACTION")] = None,
    fd_alert: Annotated[float | None, opt(
        "--fd-alert", help="fd-exhaustion alert from this fraction of the soft RLIMIT_NOFILE.", default=0.8,
        metavar="FRACTION")] = None,
    fd_restart: Annotated[float | None, opt(
        "--fd-restart", help="fd-exhaustion restart from this fraction (with --fd-action restart).", default=0.95,
        metavar="FRACTION")] = None,
    fd_action: Annotated[str | None, opt("--fd-action", help="alert|restart for fd-exhaustion past --fd-restart.",
                                         default="restart", metavar="ACTION")] = None,
    half_closed_after: Annotated[float | None, opt(
        "--half-closed-after", help="Seconds a TCP socket of the gateway may sit in CLOSE_WAIT.", default=300,
        metavar="SECONDS")] = None,
    deaf_action: Annotated[str | None, opt("--deaf-action", help="alert|restart for sockets-half-closed and "
                                           "workers-saturated.", default="alert", metavar="ACTION")] = None,
    workers_busy_after: Annotated[float | None, opt(
        "--workers-busy-after", help="Seconds every agent worker may be busy, the pool full, before "
        "workers-saturated.", default=180, metavar="SECONDS")] = None,
    memory_growth: Annotated[str | None, opt(
        "--memory-growth", help="RSS growth per hour that is memory-growth (e.g. 1GiB, 500MiB/h).", default="1GiB",
        metavar="SIZE")] = None,
    memory_growth_for: Annotated[float | None, opt(
        "--memory-growth-for", help="Seconds that growth must be sustained.", default=600, metavar="SECONDS")] = None,
    metrics_port: Annotated[int | None, opt(
        "--metrics-port", help="Serve Prometheus /metrics on this port (0: any free port).", metavar="PORT")] = None,
    metrics_host: Annotated[str | None, opt("--metrics-host", help="Address for --metrics-port.",
                                            default="127.0.0.1", metavar="HOST")] = None,
    metrics_textfile: Annotated[Path | None, opt(
        "--metrics-textfile", help="Also write metrics here for node_exporter's textfile collector (atomic).",
        metavar="FILE")] = None,
    notify_command: Annotated[str | None, opt(
        "--notify-command", help="Argv run per event with the event JSON on stdin; split like a shell, never run "
        "by one.", metavar="COMMAND")] = None,
    notify_webhook: Annotated[str | None, opt("--notify-webhook", help="POST each event as JSON to this http(s) "
                                              "URL.", metavar="URL")] = None,
    notify_timeout: Annotated[float | None, opt("--notify-timeout", help="Seconds per notification attempt.",
                                                default=5, metavar="SECONDS")] = None,
    notify_retries: Annotated[int | None, opt("--notify-retries", help="Webhook retries, with backoff 1, 2, 4 s...",
                                              default=3, metavar="N")] = None,
    notify_desktop: Annotated[bool, opt(
        "--notify-desktop", help="macOS: a desktop notification per event (osascript).")] = False,
    stack_with: Annotated[str | None, opt("--stack-with", help=STACK_WITH_HELP, default="auto", metavar="METHOD")
                          ] = None,
    check: Annotated[bool, opt("--check", help="Only validate the configuration, say what it would do, exit.")
                     ] = False,
) -> None:
    """Watch the gateway: detect a busy loop, capture evidence, restart it, verify, record."""
    from hermes_watchdog.commands import run as cmd

    flags = {
        "hermes_home": [str(h) for h in hermes_home] if hermes_home else None,
        "all_profiles": all_profiles or None, "interval": interval, "window": window,
        "cpu_threshold": cpu_threshold, "restart_with": restart_with, "restart_command": restart_command,
        "s6_scandir": [str(s) for s in s6_scandir] if s6_scandir else None,
        "grace": grace, "max_restarts": max_restarts, "restart_window": restart_window, "cooldown": cooldown,
        "start_timeout": start_timeout, "stuck_action": stuck_action,
        "state_dir": str(state_dir) if state_dir else None, "dry_run": dry_run or None, "once": once or None,
        "frozen_action": frozen_action, "frozen_after": frozen_after, "loop_proof": loop_proof,
        "starved_grace": starved_grace, "stack_every": stack_every, "memory_limit": memory_limit,
        "memory_action": memory_action, "metrics_port": metrics_port,
        "fd_alert": fd_alert, "fd_restart": fd_restart, "fd_action": fd_action,
        "half_closed_after": half_closed_after, "deaf_action": deaf_action, "memory_growth": memory_growth,
        "memory_growth_for": memory_growth_for, "workers_busy_after": workers_busy_after,
        "metrics_host": metrics_host, "metrics_textfile": str(metrics_textfile) if metrics_textfile else None,
        "notify_command": notify_command, "notify_webhook": notify_webhook, "notify_timeout": notify_timeout,
        "notify_retries": notify_retries, "notify_desktop": notify_desktop or None, "stack_with": stack_with,
    }
    raise typer.Exit(cmd.main(config_file, flags, check))


@app.command()
def status(
    state_dir: Annotated[Path | None, opt("--state-dir", help="The daemon's state dir.",
                                          default="HERMES_HOME/watchdog", metavar="DIR")] = None,
    hermes_home: Annotated[Path | None, opt("--hermes-home", help="HERMES_HOME whose watchdog/ to read.",
                                            default="$HERMES_HOME, else ~/.hermes", metavar="PATH")] = None,
    json_out: Annotated[bool, opt("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show what the watchdog sees: gateways, CPU, platforms, verdicts, incidents, restart budget."""
    from hermes_watchdog.commands import status as cmd

    raise typer.Exit(cmd.main(state_dir, hermes_home, json_out))


@app.command()
def demo() -> None:
    """Watch a simulated spinning gateway get detected, captured and restarted (under a minute)."""
    from hermes_watchdog.commands import demo as cmd

    raise typer.Exit(cmd.main())


@app.command(context_settings=EXTRA_ARGS)
def install(
    ctx: typer.Context,
    manager: Manager = "auto",
    hermes_home: ServiceHome = None,
    profile: Profile = None,
    dry_run: Annotated[bool, opt("--dry-run", help="Print the file and the commands; change nothing.")] = False,
    system: Annotated[bool, opt("--system", help="A system-wide service (as root).")] = False,
    s6_scandir: S6Scandir = None,
    gateway_watchdog: Annotated[bool, opt("--gateway-watchdog", help="Instead: a drop-in giving the gateway's own "
                                          "systemd unit a WatchdogSec its loop pings (releases that ping).")
                                ] = False,
) -> None:
    """Install the watchdog as a service (launchd agent / systemd user unit / s6 service). Flags after -- go to
    `run`."""
    from hermes_watchdog.commands import install as cmd

    if gateway_watchdog:
        raise typer.Exit(cmd.gateway_watchdog(hermes_home, profile, dry_run))

    # The run flags are checked by this very app: handed in, so commands/install.py never imports cli.py.
    raise typer.Exit(cmd.install(manager, hermes_home, profile, list(ctx.args), dry_run, system,
                                 lambda args: app(args=args, prog_name="hermes-watchdog", standalone_mode=False),
                                 s6_scandir))


@app.command()
def uninstall(
    manager: Manager = "auto",
    hermes_home: ServiceHome = None,
    profile: Profile = None,
    system: Annotated[bool, opt("--system", help="The system-wide service (as root).")] = False,
    s6_scandir: S6Scandir = None,
    gateway_watchdog: Annotated[bool, opt("--gateway-watchdog", help="Instead: remove the gateway unit's loop "
                                          "watchdog drop-in.")] = False,
) -> None:
    """Stop, disable and remove the watchdog's service. A second run does nothing."""
    from hermes_watchdog.commands import install as cmd

    if gateway_watchdog:
        raise typer.Exit(cmd.gateway_watchdog(hermes_home, profile, False, remove=True))

    raise typer.Exit(cmd.uninstall(manager, hermes_home, profile, system, s6_scandir))


@app.command(cls=Command)
def patch(
    action: Annotated[str, typer.Argument(help="status, install or uninstall.", metavar="ACTION",
                                          show_default=False)],
    python: Annotated[Path | None, opt("--python", help="The gateway's Python interpreter.",
                                       default="found from the running gateway or its service", metavar="PATH")
                      ] = None,
    hermes_home: Annotated[Path | None, opt("--hermes-home", help="Find the interpreter from this home's gateway.",
                                            default="$HERMES_HOME, else ~/.hermes", metavar="PATH")] = None,
    restart: Annotated[bool, opt("--restart", help="Restart the gateway so it loads the change.")] = False,
) -> None:
    """The fix pack (QQBot busy loop, WeCom closed socket) and the stack hook inside an installed Hermes."""
    from hermes_watchdog.commands import patch as cmd

    raise typer.Exit(cmd.main(action, python, hermes_home, restart))


@app.command(cls=Command)
def skill(
    action: Annotated[str, typer.Argument(help="install, uninstall or show.", metavar="ACTION", show_default=False)],
    hermes_home: ServiceHome = None,
    profile: Profile = None,
) -> None:
    """A Hermes skill, so the agent can answer "are you healthy?" from the watchdog (read-only commands)."""
    from hermes_watchdog.commands import skill as cmd

    raise typer.Exit(cmd.main(action, hermes_home, profile))


def main(argv: list[str] | None = None) -> None:
    sys.exit(cli_errors.run(app, sys.argv[1:] if argv is None else argv))
