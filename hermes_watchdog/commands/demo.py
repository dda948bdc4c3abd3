"""``hermes-watchdog demo``: the whole product in under a minute, with no Hermes installed.

A simulated gateway runs under a small relaunching supervisor (as launchd KeepAlive / systemd
Restart=always would run the real one) in a temporary directory. After three seconds its QQBot stand-in
loses the socket and spins one core, ignoring SIGTERM like the real 0.14.0 gateway. The daemon, with an
8 s window, detects it, captures the stack, restarts it (SIGTERM, then SIGKILL after a 2 s grace),
verifies the relaunched gateway, and the demo shows where the incident folder is.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console

from hermes_watchdog import config, exitcodes
from hermes_watchdog.daemon.loop import Daemon
from hermes_watchdog.record.events import EventLog
from hermes_watchdog.sim.gateway import PLANTED_SECRETS
from hermes_watchdog.sim.poll import poll

DEADLINE = 55.0


def _restart_verified(d: Daemon) -> bool:
    return any(h.get("result") in {"restarted", "restart-failed"} for w in d.watches.values() for h in w.history)


def main() -> int:
    console = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    root = Path(tempfile.mkdtemp(prefix="hermes-watchdog-demo-"))
    home = root / "hermes"
    home.mkdir()
    sup_state = root / "supervisor.json"
    env = {**os.environ, "HERMES_HOME": str(home)}
    console.print(f"[bold]hermes-watchdog demo[/bold] in {root}")
    console.print("Starting a simulated Hermes gateway under a relaunching supervisor. In 3 s its QQBot adapter "
                  "loses the WebSocket, the reconnect fails, and _listen_loop spins one core (SIGTERM ignored).")
    sup = subprocess.Popen(
        [sys.executable, "-m", "hermes_watchdog.sim.supervisor", "--state", str(sup_state), "--stop-timeout", "90",
         "--", "--mode", "spin", "--spin-after", "3", "--spin-once-marker", str(root / "spun-once")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    stop = threading.Event()
    deadline = time.monotonic() + DEADLINE
    try:
        if not poll(lambda: (home / "gateway_state.json").exists(), 15):
            err.print("demo: the simulated gateway did not start")
            return exitcodes.PROBLEM
        cfg = config.build(None, {"hermes_home": [str(home)], "interval": 1.0, "window": 8.0, "grace": 2.0,
                                  "restart_with": "signal", "cooldown": 0.0, "start_timeout": 30.0,
                                  "state_dir": str(root / "watchdog")})
        console.print("Running the watchdog: window 8 s, interval 1 s, grace 2 s, restart by signal.\n")
        timer = threading.Timer(max(1.0, deadline - time.monotonic()), stop.set)
        timer.daemon = True
        timer.start()
        daemon = Daemon(cfg, EventLog(), stop=stop, until=_restart_verified)
        daemon.run()
        timer.cancel()
        return _summary(console, daemon, root)
    finally:
        _stop_supervisor(sup)


def _summary(console: Console, daemon: Daemon, root: Path) -> int:
    history = [h for w in daemon.watches.values() for h in w.history]
    if not history:
        console.print("\n[red]No restart happened within the time limit.[/red]")
        return exitcodes.PROBLEM
    h = history[-1]
    folder = root / "watchdog" / "incidents" / str(h.get("incident"))
    console.print()
    try:
        incident = json.loads((folder / "incident.json").read_text())
        stack = (folder / "stack.txt").read_text()
    except (OSError, ValueError):
        console.print(f"[red]The incident folder {folder} is incomplete.[/red]")
        return exitcodes.PROBLEM
    frames = (incident.get("stack") or {}).get("hot_thread", {}).get("frames", [])
    console.print(f"[bold]Detected[/bold]: {incident['signature']} (confidence {incident['confidence']}) on PID "
                  f"{incident['pid']}")
    for reason in incident.get("reasons", []):
        console.print(f"  - {reason}")
    console.print(f"[bold]Hot thread stack[/bold] ({(incident.get('stack') or {}).get('dumps')} dumps; the verdict "
                  "is the event loop's, above):")
    for f in frames[:4]:
        console.print(f"    {f['function']} ({Path(f['file']).name}:{f['line']})")
    r = incident.get("restart") or {}
    v = incident.get("verify") or {}
    console.print(f"[bold]Restart[/bold]: {r.get('manager')}, signals {', '.join(r.get('signals', []))}; "
                  f"old PID {h.get('pid')} -> new PID {h.get('new_pid')}")
    console.print(f"[bold]Verified[/bold]: {v.get('detail')} ({v.get('seconds')} s after the restart)")
    leaked = sum(secret in p.read_text() for p in folder.iterdir() if p.is_file() for secret in PLANTED_SECRETS)
    console.print(f"[bold]Incident folder[/bold]: {folder}  (report.md redacted: {leaked} of "
                  f"{len(PLANTED_SECRETS)} planted secrets left)")
    console.print(f"Read the report: cat {folder / 'report.md'}")
    ok = h.get("result") == "restarted" and "_listen_loop" in stack and leaked == 0
    console.print("[bold green]demo passed[/bold green]" if ok else "[bold red]demo failed[/bold red]")
    return exitcodes.OK if ok else 1


def _stop_supervisor(sup: subprocess.Popen[bytes]) -> None:
    """End the supervisor and the gateway it runs; the supervisor kills its child on SIGTERM."""
    if sup.poll() is None:
        sup.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            sup.wait(10)
    # Whatever is left in the demo's process group (only our own processes) is killed.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(sup.pid, signal.SIGKILL)
    if sup.poll() is None:
        sup.wait(5)
