"""The interface every service manager implements, and the guarded signal every one of them ends in."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from hermes_watchdog.gateway import reprove
from hermes_watchdog.processes import Identity


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

    def describe(self) -> str:
        return self.name


class NoRestart(ServiceManager):
    name = "none"
    relaunches = False

    def restart(self, target: Target, stop: threading.Event) -> RestartResult:
        return RestartResult(self.name, False, "restarts are disabled (--restart-with none)")


def guarded_signal(ident: Identity, sig: signal.Signals, home: Path) -> tuple[bool, str]:
    """The watchdog's only way to signal a process. Sends ``sig`` only if the PID is still the process
    identified at discovery (create time, user, command line) and still proves to be ``home``'s gateway,
    so neither a recycled PID nor a process the files merely name is ever hit."""
    pidfd = _pidfd(ident.pid)  # taken first: if the PID is recycled after the check, this fd still
    try:                       # points at the process that was checked, and the send fails instead
        ok, why = reprove(ident, home)
        if not ok:
            return False, f"not sent {sig.name}: {why}"
        try:
            if pidfd is not None:
                signal.pidfd_send_signal(pidfd, sig)
            else:
                os.kill(ident.pid, sig)
        except ProcessLookupError:
            return False, f"not sent {sig.name}: PID {ident.pid} exited"
        except PermissionError:
            return False, f"not sent {sig.name}: permission denied for PID {ident.pid}"
        return True, f"sent {sig.name} to PID {ident.pid}"
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _pidfd(pid: int) -> int | None:
    """A pidfd on Linux >= 5.3; None elsewhere (then os.kill right after the check)."""
    if not hasattr(os, "pidfd_open") or not hasattr(signal, "pidfd_send_signal"):
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


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
