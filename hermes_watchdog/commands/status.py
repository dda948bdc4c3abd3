"""``hermes-watchdog status``: what the daemon last wrote to STATE_DIR/state.json, and whether it runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.text import Text

from hermes_watchdog import exitcodes
from hermes_watchdog.errors import UserError
from hermes_watchdog.observe.statefile import hermes_home_default
from hermes_watchdog.record import jsonout
from hermes_watchdog.record.render import deaf_line, table
from hermes_watchdog.record.safetext import one_line
from hermes_watchdog.record.status_file import read_status


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def daemon_running(data: dict[str, Any]) -> bool:
    d = _dict(data.get("daemon"))
    try:
        proc = psutil.Process(int(d.get("pid")))
        return abs(proc.create_time() - float(d.get("create_time") or 0)) < 0.05
    except (psutil.Error, TypeError, ValueError, OverflowError):
        return False


def _cpu(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def main(state_dir: Path | None, hermes_home: Path | None, as_json: bool) -> int:
    state_dir = state_dir or (hermes_home or hermes_home_default()) / "watchdog"
    data = read_status(state_dir)
    if data is None:
        why = f"no watchdog state in {state_dir} (is `hermes-watchdog run` using another --state-dir?)"
        if as_json:  # a script gets JSON whatever happens: no gateways, and the reason
            sys.stdout.write(jsonout.dumps({"gateways": [], "daemon_running": False, "problem": why}, indent=2) + "\n")
            return exitcodes.USAGE
        raise UserError(why)
    running = daemon_running(data)
    if as_json:
        sys.stdout.write(jsonout.dumps({**data, "daemon_running": running}, indent=2) + "\n")
        return exitcodes.OK
    console = Console(highlight=False, soft_wrap=True)

    def say(text: str) -> None:
        # Everything shown comes from state.json: printed as text (no markup), control characters escaped.
        console.print(Text(one_line(text)))

    d = _dict(data.get("daemon"))
    say(f"hermes-watchdog daemon PID {d.get('pid')}: {'running' if running else 'NOT running'}; "
        f"state written {data.get('updated_at')}" + (" (dry run)" if d.get("dry_run") else ""))
    rows = []
    for g in _list(data.get("gateways")):
        if not isinstance(g, dict):
            continue
        v, b = _dict(g.get("verdict")), _dict(g.get("budget"))
        platforms = ", ".join(f"{k}: {s}" for k, s in _dict(g.get("platforms")).items()) or "-"
        rows.append([str(g.get("name") or g.get("profile") or "default"), str(g.get("pid") or "-"),
                     _cpu(g.get("cpu_now")), str(g.get("gateway_state") or "-"), platforms,
                     str(v.get("signature") or "-"),
                     f"{b.get('used', 0)}/{b.get('max', '?')}" + (" (exhausted)" if b.get("exhausted") else "")])
    console.print(table("Gateways", ["profile", "pid", "CPU cores", "state", "platforms", "verdict",
                                     "restarts used"], rows))
    for g in _list(data.get("gateways")):
        rel = _dict(g.get("release")) if isinstance(g, dict) else {}
        if rel.get("family"):
            say(f"{g.get('name') or g.get('profile') or 'default'}: Hermes release family: {rel.get('family')} "
                f"(recognised from: {rel.get('from')})")
    for g in _list(data.get("gateways")):
        line = deaf_line(_dict(g.get("deaf")) if isinstance(g, dict) else {})
        if line:
            say(f"{g.get('name') or g.get('profile') or 'default'}: {line}")
        restart = _dict(g.get("restart")) if isinstance(g, dict) else {}
        if restart.get("progress"):
            say(f"{g.get('name') or 'default'}: restarting: {restart['progress']}")
        for text in _list(g.get("known_issues")) if isinstance(g, dict) else []:
            say(f"{g.get('name') or 'default'}: {text}")
    for p in _list(data.get("problems")):
        console.print(Text("problem: ", style="yellow") + Text(one_line(p)))
    incidents = _list(data.get("incidents"))
    say("Latest incidents:" if incidents else "No incidents.")
    for path in incidents[:10]:
        say(f"  {path}")
    return exitcodes.OK

