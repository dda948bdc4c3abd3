"""Shared pieces of the bench scripts: real simulated gateways, real daemons, polling, summaries.

Run from the project root with the project's venv, e.g. ``.venv/bin/python bench/detection.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from hermes_watchdog.sim.poll import poll
from hermes_watchdog.sim.s6service import s6_service


def machine() -> dict[str, Any]:
    return {"cpus": psutil.cpu_count(), "python": platform.python_version(), "system": platform.platform(),
            "processor": platform.processor() or platform.machine()}


def wait_for(cond: Callable[[], Any], timeout: float, step: float = 0.05) -> Any:
    """The project's one poller (None on timeout): bench scripts report a miss, they do not fail."""
    return poll(cond, timeout, step)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def sim_events(home: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(x) for x in (home / "sim-events.jsonl").read_text().splitlines() if x.strip()]
    except (OSError, ValueError):
        return []


def start_gateway(home: Path, mode: str, *args: str) -> subprocess.Popen[bytes]:
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "hermes_watchdog.sim.gateway", "--mode", mode, *args],
                            env={**os.environ, "HERMES_HOME": str(home)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def start_supervised(home: Path, root: Path, mode: str, *args: str) -> subprocess.Popen[bytes]:
    """The gateway under a relaunching supervisor, as launchd KeepAlive / systemd Restart= would run it."""
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "hermes_watchdog.sim.supervisor", "--state", str(root / "supervisor.json"),
         "--stop-timeout", "120", "--", "--mode", mode, *args],
        env={**os.environ, "HERMES_HOME": str(home)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)


@dataclass
class Managed:
    """The gateway under a relaunching manager: the real s6 where it is installed (as in upstream's Docker
    image), else the stand-in supervisor. ``config`` is what the daemon needs to know of it: under s6 only
    where the scan directory is (the restart is the default, auto, which finds s6); under the stand-in,
    ``restart_with: signal`` (the stand-in relaunches on exit, as KeepAlive / Restart=always)."""

    proc: subprocess.Popen[bytes]
    service: Path | None
    config: dict[str, Any]

    @property
    def manager(self) -> str:
        return "s6 (restart: auto)" if self.service else "stand-in supervisor (restart: signal)"

    def stop(self) -> None:
        if self.service is not None:  # no relaunch, and SIGKILL: a starved loop ignores SIGTERM
            subprocess.run(["s6-svc", "-O", "-k", str(self.service)], capture_output=True, check=False)
        stop_group(self.proc)


def start_managed(home: Path, root: Path, mode: str, *args: str, stand_in: bool = False) -> Managed:
    if stand_in or not (shutil.which("s6-svscan") and shutil.which("s6-svc")):
        return Managed(start_supervised(home, root, mode, *args), None, {"restart_with": "signal"})
    home.mkdir(parents=True, exist_ok=True)
    proc, service, _ = s6_service(root / "s6", [sys.executable, "-m", "hermes_watchdog.sim.gateway", "--mode", mode,
                                                *args], {**os.environ, "HERMES_HOME": str(home)})
    return Managed(proc, service, {"s6_scandir": [str(service.parent)]})


def running(home: Path) -> bool:
    st = read_json(home / "gateway_state.json")
    return bool(st and st.get("gateway_state") == "running")


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def start_daemon(*args: str, log: Path) -> subprocess.Popen[bytes]:
    fh = open(log, "ab")  # noqa: SIM115 - the child keeps it
    return subprocess.Popen([sys.executable, "-m", "hermes_watchdog", "run", *args], stdout=fh, stderr=fh,
                            start_new_session=True)


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "max": round(max(values), 3),
            "min": round(min(values), 3), "n": len(values)}


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def emit(name: str, headers: list[str], rows: list[list[Any]], data: dict[str, Any]) -> None:
    print(table(headers, rows))
    print(json.dumps({"bench": name, "machine": machine(), "date": time.strftime("%Y-%m-%d"), **data}))
