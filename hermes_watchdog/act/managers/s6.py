"""s6 (s6-overlay in containers, upstream's Docker image among them): ``s6-svc -r <service dir>``.

The service directory is the one, among the scan directories, whose supervised process is the gateway
(``s6-svstat -o pid``): itself, or a parent that started it (a run script that did not ``exec``).
``-r`` sends the service its down-signal (SIGTERM) and s6-supervise starts it again once it has died;
a starved gateway ignores SIGTERM, so the daemon's own escalation SIGKILLs it after the grace, proven
again first, as with every manager.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import psutil

from hermes_watchdog import safepath
from hermes_watchdog.act.managers.base import RestartResult, ServiceManager, Target, run_argv
from hermes_watchdog.observe import processes

# s6-overlay v3 keeps its live scan directory in /run/service; v2 in /var/run/s6/services.
SCANDIRS = (Path("/run/service"), Path("/var/run/s6/services"))
S6_TIMEOUT = 15.0
FIND_BUDGET = 5.0  # seconds for one search of every service (it runs on the daemon's tick): then it gives up
PROBE_TIMEOUT = 2.0  # one s6-svstat of a service while searching; a real one answers in milliseconds
_ANCESTORS = 3  # how far up from the gateway a supervised run script may sit


def scandirs(extra: Iterable[Path] = ()) -> list[Path]:
    return list(dict.fromkeys([*extra, *SCANDIRS]))


def _status_is_regular(service: Path) -> bool:
    """s6-supervise keeps ``supervise/status`` as a regular file. Anything else there (a FIFO: s6-svstat
    would wait on it for its whole timeout) is not a live service, and is not probed."""
    try:
        return stat.S_ISREG(safepath.lstat(service / "supervise" / "status").st_mode)
    except OSError:
        return False


def supervised_pid(service: Path, stop: threading.Event | None = None, timeout: float = S6_TIMEOUT) -> int | None:
    if not _status_is_regular(service):
        return None
    code, out = run_argv(["s6-svstat", "-o", "pid", str(service)], timeout, stop or threading.Event())
    if code != 0:
        return None
    try:
        pid = int(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return pid if pid > 0 else None


def _lineage(pid: int) -> list[int]:
    """The gateway's PID and its parents' (nearest first)."""
    chain = [pid]
    try:
        proc = psutil.Process(pid)
        for _ in range(_ANCESTORS):
            proc = proc.parent()
            if proc is None or proc.pid <= 1:
                break
            chain.append(proc.pid)
    except psutil.Error:
        pass
    return chain


def services(scandir: Path) -> list[Path]:
    """Service directories of a scan directory (dot-entries are s6's own, or half-written)."""
    try:
        return sorted(p for p in scandir.iterdir() if not p.name.startswith(".") and p.is_dir())
    except OSError:
        return []


def find_service(pid: int, dirs: Iterable[Path], stop: threading.Event | None = None,
                 budget: float = FIND_BUDGET) -> Path | None:
    """The service supervising the gateway, searched within ``budget`` seconds in all: a scan directory of
    many services that do not answer must not hold the daemon's tick (nor trip its own WatchdogSec)."""
    lineage = _lineage(pid)
    if not any(d.is_dir() for d in dirs):
        return None
    deadline = time.monotonic() + budget
    for scandir in dirs:
        for service in services(scandir):
            left = deadline - time.monotonic()
            if left <= 0 or (stop is not None and stop.is_set()):
                return None
            if not (service / "supervise").is_dir():
                continue
            if supervised_pid(service, stop, min(PROBE_TIMEOUT, left)) in lineage:
                return service
    return None


class S6Manager(ServiceManager):
    name = "s6"

    def __init__(self, service: Path | None, searched: list[Path]) -> None:
        self.service = service
        self.searched = searched

    @classmethod
    def for_target(cls, target: Target, extra: Iterable[Path] = ()) -> S6Manager | None:
        dirs = scandirs(extra)
        found = find_service(target.ident.pid, dirs)
        return cls(found, dirs) if found else None

    def restart(self, target: Target, stop: threading.Event) -> RestartResult:
        if self.service is None:
            where = ", ".join(str(d) for d in self.searched)
            return RestartResult(self.name, False, f"no s6 service supervises PID {target.ident.pid} (searched "
                                                   f"{where}; --s6-scandir DIR adds a scan directory)")
        # Checked again right before: the service must still supervise this very gateway.
        pid = supervised_pid(self.service, stop)
        same, _ = processes.same_process(target.ident)
        if pid not in _lineage(target.ident.pid) or not same:
            return RestartResult(self.name, False, f"{self.service} supervises PID {pid}, not the gateway's "
                                                   f"{target.ident.pid}: not restarting that service",
                                 argv=["s6-svstat", "-o", "pid", str(self.service)])
        argv = ["s6-svc", "-r", str(self.service)]
        code, out = run_argv(argv, S6_TIMEOUT, stop)
        return RestartResult(self.name, code == 0,
                             f"exit {code}" + (f": {out}" if out else "") if code is not None else out, argv=argv)

    def start(self, target: Target, stop: threading.Event) -> RestartResult:
        """``s6-svc -u``: wanted up (s6-supervise starts it unless it was marked down)."""
        if self.service is None:
            return RestartResult(self.name, False, self.cannot_start())
        argv = ["s6-svc", "-u", str(self.service)]
        code, out = run_argv(argv, S6_TIMEOUT, stop)
        return RestartResult(self.name, code == 0,
                             f"exit {code}" + (f": {out}" if out else "") if code is not None else out, argv=argv)

    def cannot_start(self) -> str:
        return "" if self.service else ("no s6 service was found supervising the gateway that ended (searched "
                                        + ", ".join(str(d) for d in self.searched) + ")")

    def describe(self) -> str:
        return f"s6 ({self.service})" if self.service else "s6 (no service found)"


def scandir_is_live(scandir: Path) -> bool:
    """An s6-svscan runs on it (its control directory exists)."""
    return (scandir / ".s6-svscan").is_dir() and os.access(scandir / ".s6-svscan", os.X_OK)
