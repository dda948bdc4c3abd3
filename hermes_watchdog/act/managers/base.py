"""The interface every service manager implements; every signal they send goes through observe/signals.py."""

from __future__ import annotations

import subprocess
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from hermes_watchdog.facts.identity import Identity


@dataclass(frozen=True)
class Target:
    home: Path
    profile: str | None
    ident: Identity


@dataclass(frozen=True)
class RestartResult:
    manager: str
    ok: bool
    detail: str
    argv: list[str] = field(default_factory=list)
    signals: list[str] = field(default_factory=list)


class ServiceManager(ABC):
    name = "base"
    relaunches = True  # False: nothing will start a new gateway after the old one ends

    @abstractmethod
    def restart(self, target: Target, stop: threading.Event) -> RestartResult:
        """Ask for a restart. Must return promptly; the daemon escalates to SIGKILL itself after grace."""

    def start(self, target: Target, stop: threading.Event) -> RestartResult:
        """Start the gateway when nothing runs it (Hermes' own watchdog made it exit and nothing relaunched
        it). ``target.ident`` is the process that ended. Managers that cannot start one say so."""
        return RestartResult(self.name, False, self.cannot_start())

    def cannot_start(self) -> str:
        """Why this manager cannot start a gateway; empty when it can."""
        return f"--restart-with {self.name} cannot start a gateway"

    def describe(self) -> str:
        return self.name


class NoRestart(ServiceManager):
    name = "none"
    relaunches = False

    def restart(self, target: Target, stop: threading.Event) -> RestartResult:
        return RestartResult(self.name, False, "restarts are disabled (--restart-with none)")

    def cannot_start(self) -> str:
        return "restarts are disabled (--restart-with none): nothing starts it"


def run_argv(argv: list[str], timeout: float, stop: threading.Event) -> tuple[int | None, str]:
    """Run a command from an argv list (never a shell) with a time limit; returns (exit code or None
    on timeout / stop / failure to start, combined output trimmed)."""
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                text=True, start_new_session=True)
    except OSError as exc:
        return None, f"cannot run {argv[0]}: {exc.strerror or exc}"
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if stop.is_set() or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            why = "stopped" if stop.is_set() else f"timed out after {timeout:g} s"
            return None, f"{argv[0]} {why}"
        time.sleep(0.05)
    out = (proc.stdout.read() if proc.stdout else "").strip()
    return proc.returncode, out[-2000:]
