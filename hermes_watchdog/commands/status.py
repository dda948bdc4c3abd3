"""``hermes-watchdog status``: what the daemon last wrote to STATE_DIR/state.json, and whether it runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console

from hermes_watchdog.daemon import read_status
from hermes_watchdog.errors import UserError
from hermes_watchdog.render import table
from hermes_watchdog.statefile import hermes_home_default


def daemon_running(data: dict[str, Any]) -> bool:
    d = data.get("daemon") or {}
    try:
        proc = psutil.Process(int(d.get("pid")))
        return abs(proc.create_time() - float(d.get("create_time") or 0)) < 0.05
    except (psutil.Error, TypeError, ValueError):
        return False


def main(state_dir: Path | None, hermes_home: Path | None, as_json: bool) -> int:
    state_dir = state_dir or (hermes_home or hermes_home_default()) / "watchdog"
    data = read_status(state_dir)
    if data is None:
        raise UserError(f"no watchdog state in {state_dir} (is `hermes-watchdog run` using another --state-dir?)")
    running = daemon_running(data)
    if as_json:
        sys.stdout.write(json.dumps({**data, "daemon_running": running}, indent=2) + "\n")
        return 0
    console = Console(highlight=False, soft_wrap=True)
    d = data.get("daemon") or {}
    console.print(f"hermes-watchdog daemon PID {d.get('pid')}: {'running' if running else 'NOT running'}; "
                  f"state written {data.get('updated_at')}" + (" (dry run)" if d.get("dry_run") else ""))
    rows = []
    for g in data.get("gateways", []):
        v = g.get("verdict") or {}
        b = g.get("budget") or {}
        platforms = ", ".join(f"{k}: {s}" for k, s in (g.get("platforms") or {}).items()) or "-"
        rows.append([g.get("name") or g.get("profile") or "default", str(g.get("pid") or "-"),
                     "-" if g.get("cpu_now") is None else f"{g['cpu_now']:.2f}",
                     str(g.get("gateway_state") or "-"), platforms, str(v.get("signature") or "-"),
                     f"{b.get('used', 0)}/{b.get('max', '?')}" + (" (exhausted)" if b.get("exhausted") else "")])
    console.print(table("Gateways", ["profile", "pid", "CPU cores", "state", "platforms", "verdict",
                                     "restarts used"], rows))
    for p in data.get("problems") or []:
        console.print(f"[yellow]problem:[/yellow] {p}")
    incidents = data.get("incidents") or []
    console.print("Latest incidents:" if incidents else "No incidents.")
    for path in incidents[:10]:
        console.print(f"  {path}")
    return 0
