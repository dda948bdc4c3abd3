"""Real processes for the tests: the simulated gateway, the CLI, and polling instead of sleeping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEADLINE = 60.0  # generous: only to keep a broken test from hanging


def wait_for(cond: Callable[[], Any], timeout: float = DEADLINE, what: str = "condition", step: float = 0.05) -> Any:
    end = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def events(home: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(ln) for ln in (home / "sim-events.jsonl").read_text().splitlines() if ln.strip()]
    except (OSError, ValueError):
        return []


@dataclass
class Sim:
    home: Path
    proc: subprocess.Popen[bytes]
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_running(self) -> Sim:
        def ready() -> bool:
            st = read_json(self.home / "gateway_state.json")
            return bool(st and st.get("pid") == self.pid and st.get("gateway_state") == "running")

        wait_for(ready, what=f"simulated gateway {self.pid} to be running")
        return self

    def wait_spinning(self) -> Sim:
        wait_for(lambda: any(e["event"] == "spin" and e["pid"] == self.pid for e in events(self.home)),
                 what=f"simulated gateway {self.pid} to start spinning")
        return self

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


def sim_env(home: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "HERMES_HOME": str(home), **extra}


def start_sim(home: Path, mode: str, *args: str, env: dict[str, str] | None = None,
              preexec: list[str] | None = None) -> Sim:
    home.mkdir(parents=True, exist_ok=True)
    cmd = [*(preexec or []), sys.executable, "-m", "hermes_watchdog.sim.gateway", "--mode", mode, *args]
    proc = subprocess.Popen(cmd, env=env or sim_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return Sim(home, proc)


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120, prefix: list[str] | None = None) -> Result:
    """Run the real CLI in a fresh interpreter, as a user would."""
    proc = subprocess.run([*(prefix or []), sys.executable, "-m", "hermes_watchdog", *args],
                          capture_output=True, text=True, env=env, timeout=timeout, check=False)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(r: Result, code: int = 2) -> None:
    assert r.code == code, (r.code, r.out, r.err)
    assert "Traceback" not in r.err and "Traceback" not in r.out
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert len(lines) == 1, r.err
    assert lines[0].startswith("hermes-watchdog: ")


def all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]
