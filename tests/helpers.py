"""Real processes for the tests: the simulated gateway, the CLI, and polling instead of sleeping."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hermes_watchdog.sim.poll import poll

DEADLINE = 60.0  # generous: only to keep a broken test from hanging


def wait_for(cond: Callable[[], Any], timeout: float = DEADLINE, what: str = "condition", step: float = 0.05) -> Any:
    value = poll(cond, timeout, step)
    if not value:
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
    return value


# What a failed test shows beside its traceback: CI prints only the output, so the processes' own
# accounts (a daemon's log, a gateway's log) must be in it. Fixtures add (title, callable) here and
# conftest's pytest_runtest_makereport adds them to the failure's report.
ON_FAILURE = pytest.StashKey[list[tuple[str, Callable[[], str]]]]()


def on_failure(request: pytest.FixtureRequest, title: str, text: Callable[[], str]) -> None:
    request.node.stash.setdefault(ON_FAILURE, []).append((title, text))


def demand(pid: int, seconds: float = 0.5) -> float:
    """Cores the main thread of ``pid`` wanted over ``seconds``: time on a CPU plus time waiting for one
    (Linux schedstat). Unlike its CPU time, this stays near 1.0 for a spin on a machine whose cores other
    processes keep busy. 0.0 where schedstat cannot be read."""
    from hermes_watchdog.observe.sampler import read_schedstat

    path = f"/proc/{pid}/task/{pid}/schedstat"
    before, t0 = read_schedstat(path), time.monotonic()
    time.sleep(seconds)
    after, t1 = read_schedstat(path), time.monotonic()
    if before is None or after is None:
        return 0.0
    return (sum(after) - sum(before)) / 1e9 / (t1 - t0)


def epoch(text: str | None) -> float | None:
    """An ISO time from the daemon's files as epoch seconds (None if absent)."""
    if not text:
        return None
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


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


def signals_received(path: Path) -> list[str]:
    """The signals a sim started with ``--signal-log path`` recorded, in order (none: the file is absent).
    The proof that nothing signalled a gateway that ignores SIGTERM anyway: "still alive" proves nothing."""
    try:
        return path.read_text().split()
    except FileNotFoundError:
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


STANDINS = Path(__file__).resolve().parent / "standins"


@dataclass
class Supervised:
    """A simulated gateway under the relaunching supervisor (KeepAlive / Restart=always stand-in)."""

    home: Path
    state: Path
    proc: subprocess.Popen[bytes]

    def info(self) -> dict[str, Any]:
        return read_json(self.state) or {}

    @property
    def child(self) -> int | None:
        return self.info().get("child")

    @property
    def launches(self) -> int:
        return int(self.info().get("launches") or 0)

    def wait_running(self, launches: int = 1) -> int:
        def ready() -> int | None:
            info = self.info()
            st = read_json(self.home / "gateway_state.json")
            if info.get("launches", 0) >= launches and st and st.get("pid") == info.get("child") \
                    and st.get("gateway_state") == "running":
                return int(info["child"])
            return None

        return wait_for(ready, what=f"launch {launches} of the supervised gateway to be running")

    def stop(self) -> None:
        # Teardown: the whole group at once (a SIGTERM-deaf spinning child would hold a polite stop up).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(5)


def start_supervised(home: Path, *gateway_args: str, stop_timeout: float = 60, env: dict[str, str] | None = None,
                     relaunch_delay: float = 0.3) -> Supervised:
    home.mkdir(parents=True, exist_ok=True)
    state = home.parent / f"supervisor-{home.name}.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hermes_watchdog.sim.supervisor", "--state", str(state), "--stop-timeout",
         str(stop_timeout), "--relaunch-delay", str(relaunch_delay), "--", *gateway_args],
        env=env or sim_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return Supervised(home, state, proc)


@dataclass
class DaemonProc:
    """`hermes-watchdog run` as a real background process; its stderr goes to a file we poll."""

    proc: subprocess.Popen[bytes]
    log: Path
    state_dir: Path

    def events(self) -> str:
        try:
            return self.log.read_text()
        except OSError:
            return ""

    def wait_event(self, text: str, timeout: float = DEADLINE) -> str:
        return wait_for(lambda: text in self.events() and self.events(), timeout, what=f"event {text!r}")

    def status(self) -> dict[str, Any]:
        return read_json(self.state_dir / "state.json") or {}

    def gateway(self) -> dict[str, Any]:
        gws = self.status().get("gateways") or [{}]
        return gws[0]

    def gateway_named(self, name: str) -> dict[str, Any]:
        return next((g for g in self.status().get("gateways") or [] if g.get("name") == name), {})

    def gateway_at(self, home: Path) -> dict[str, Any]:
        """The watched gateway of ``home`` (any name: the first home is "default", others their path)."""
        return next((g for g in self.status().get("gateways") or [] if g.get("home") == str(home)), {})

    def verdict_held(self, signature: str, seconds: float, name: str | None = None) -> bool:
        """By the daemon's own clock (state.json), ``signature`` has been the verdict for ``seconds``:
        the daemon had that long to act on it. A condition to poll, not a sleep."""
        st = self.status()
        g = self.gateway_named(name) if name else self.gateway()
        since, now = epoch(g.get("verdict_since")), epoch(st.get("updated_at"))
        return (g.get("verdict") or {}).get("signature") == signature and since is not None and now is not None \
            and now - since >= seconds

    def settled_healthy(self, window: float, name: str | None = None) -> bool:
        """The daemon has watched the current gateway for a full window and found it healthy."""
        g = self.gateway_named(name) if name else self.gateway()
        v = g.get("verdict") or {}
        return g.get("phase") == "watching" and v.get("signature") == "healthy" and v.get("span_seconds", 0) >= window

    def incidents(self) -> list[Path]:
        d = self.state_dir / "incidents"
        return sorted(p for p in d.iterdir() if p.is_dir()) if d.is_dir() else []

    def incident(self, index: int = -1) -> dict[str, Any]:
        return read_json(self.incidents()[index] / "incident.json") or {}

    def terminate(self) -> None:
        """SIGTERM, and wait (at most 30 s) for the daemon to exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


def start_daemon(state_dir: Path, *args: str, env: dict[str, str] | None = None) -> DaemonProc:
    log = Path(tempfile.mkdtemp(prefix="hermes-watchdog-test-log-")) / f"daemon-{state_dir.name}.log"
    fh = open(log, "w")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([sys.executable, "-m", "hermes_watchdog", "run", "--state-dir", str(state_dir), *args],
                            stdout=fh, stderr=subprocess.STDOUT, env=env)
    fh.close()
    return DaemonProc(proc, log, state_dir)


def standin_env(log: Path, supervisor: Supervised | None, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{STANDINS}{os.pathsep}{os.environ.get('PATH', '')}", "STANDIN_LOG": str(log),
           **extra}
    if supervisor is not None:
        env["STANDIN_SUPERVISOR"] = str(supervisor.state)
    return env


def standin_calls(log: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(ln) for ln in log.read_text().splitlines() if ln.strip()]
    except OSError:
        return []
