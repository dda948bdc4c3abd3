"""Process identity through psutil: who a PID is, and whether it is still the same process.

Every signal the watchdog sends is preceded by ``same_process``: a PID alone is not an identity, since
the kernel recycles PIDs; pid + create time + command line is.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil

# Besides `hermes_cli.main ... gateway run`: the programs Hermes itself treats as the gateway
# (gateway/status.py), and our simulated gateway, so the demo and tests go through the same checks.
# Matched as the program or module that runs, never as a substring of some argument.
_GATEWAY_PROGRAMS = ("hermes-gateway",)
_GATEWAY_SCRIPTS = ("gateway/run.py",)
_GATEWAY_MODULES = ("hermes_watchdog.sim.gateway",)


@dataclass(frozen=True)
class Identity:
    pid: int
    create_time: float
    cmdline: tuple[str, ...]
    start_ticks: int | None  # what Hermes records as start_time (see start_ticks())
    exe: str | None = None
    username: str | None = None

    @property
    def command(self) -> str:
        return " ".join(self.cmdline)

    def to_dict(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "create_time": self.create_time,
            "start_ticks": self.start_ticks,
            "cmdline": list(self.cmdline),
            "exe": self.exe,
            "username": self.username,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Identity:
        cmd = data.get("cmdline")
        ticks = data.get("start_ticks")
        return cls(
            pid=int(data["pid"]),  # type: ignore[arg-type]
            create_time=float(data["create_time"]),  # type: ignore[arg-type]
            cmdline=tuple(str(c) for c in cmd) if isinstance(cmd, list) else (),
            start_ticks=int(ticks) if isinstance(ticks, int) else None,
            exe=str(data["exe"]) if data.get("exe") else None,
            username=str(data["username"]) if data.get("username") else None,
        )


def looks_like_gateway(cmdline: tuple[str, ...] | list[str]) -> bool:
    """``python -m hermes_cli.main [--profile X] gateway run [--replace]``, ``hermes gateway run``, and
    the markers above; not ``gateway status`` or other Hermes commands."""
    args = [a.replace("\\", "/") for a in cmdline]
    head = args[:3]  # interpreter, then script or -m module
    if any(os.path.basename(a) in _GATEWAY_PROGRAMS or a.endswith(_GATEWAY_SCRIPTS) for a in head):
        return True
    if any(a == "-m" and b in _GATEWAY_MODULES for a, b in itertools.pairwise(head)):
        return True
    hermes = any(a.endswith(("hermes_cli.main", "hermes_cli/main.py")) or os.path.basename(a) == "hermes"
                 for a in head)
    return hermes and any(a == "gateway" and b == "run" for a, b in itertools.pairwise(args))


def start_ticks(pid: int, create_time: float) -> int | None:
    """Hermes' ``start_time``: /proc/<pid>/stat field 22 (clock ticks since boot) on Linux, else
    psutil's create_time in centiseconds."""
    stat = Path(f"/proc/{pid}/stat")
    if sys.platform.startswith("linux"):
        try:
            # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            return int(fields[19])
        except (OSError, IndexError, ValueError):
            return None
    return round(create_time * 100)


def identity(pid: int) -> Identity:
    """Raises psutil.NoSuchProcess / psutil.AccessDenied; callers decide what that means."""
    proc = psutil.Process(pid)
    with proc.oneshot():
        create_time = proc.create_time()
        try:
            cmdline = tuple(proc.cmdline())
        except (psutil.AccessDenied, psutil.ZombieProcess):
            cmdline = ()
        try:
            exe = proc.exe() or None
        except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
            exe = None
        try:
            username = proc.username()
        except (psutil.AccessDenied, KeyError):
            username = None
    return Identity(pid, create_time, cmdline, start_ticks(pid, create_time), exe, username)


def same_process(expected: Identity) -> tuple[bool, str]:
    """Is ``expected.pid`` still the process we identified? Returns (yes, why not)."""
    # Called before every signal and on every tick: only what identity needs (create time, command line,
    # status), read in one pass of /proc.
    try:
        proc = psutil.Process(expected.pid)
        with proc.oneshot():
            create_time = proc.create_time()
            zombie = proc.status() == psutil.STATUS_ZOMBIE
            try:
                cmdline = tuple(proc.cmdline())
            except (psutil.AccessDenied, psutil.ZombieProcess):
                cmdline = ()
    except psutil.NoSuchProcess:
        return False, f"PID {expected.pid} no longer exists"
    except psutil.AccessDenied:
        return False, f"PID {expected.pid} can no longer be inspected (permission denied)"
    if abs(create_time - expected.create_time) > 0.05:
        return False, f"PID {expected.pid} was reused by another process (create time changed)"
    if zombie:
        return False, f"PID {expected.pid} has exited (zombie)"
    if expected.cmdline and cmdline != expected.cmdline:
        return False, f"PID {expected.pid} now runs another command: {' '.join(cmdline)[:120]}"
    return True, ""


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def environ(pid: int) -> dict[str, str] | None:
    """The process's environment, or None when it cannot be read (another user, macOS hardening)."""
    try:
        return dict(psutil.Process(pid).environ())
    except (psutil.Error, OSError):
        return None


def matches_record(ident: Identity, pid: int | None, start_time: float | None) -> tuple[bool, str]:
    """Does a pid/start_time pair written by Hermes describe this live process?"""
    if pid is None:
        return False, "names no PID"
    if pid != ident.pid:
        return False, f"names PID {pid}, not {ident.pid}"
    if start_time is None or ident.start_ticks is None:
        return True, "names this PID (start time not comparable)"
    if abs(start_time - ident.start_ticks) > 1:
        return False, (f"names PID {pid} but start time {start_time:g} != {ident.start_ticks}: "
                       "written by an earlier process that had the same PID")
    return True, "names this PID and start time"


_PYTHON_NAME = re.compile(r"^(python|pypy)(\d+(\.\d+)*)?[a-z]?(\.exe)?$|^Python$")


def python_kind(pid: int) -> tuple[bool | None, str]:
    """(is it a Python process, what it is): True/False, or None when we cannot tell (then go on).
    For False, the text completes "PID N ..." in an error message.

    The interpreter binary's name says it for nearly every case (``python3.11``, a venv's ``python``,
    macOS's framework ``Python``); an embedded interpreter shows as libpython in the memory maps."""
    try:
        proc = psutil.Process(pid)
        name = proc.name()
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False, f"({name}) has exited: a zombie its parent has not reaped yet"
        exe = proc.exe()
    except psutil.ZombieProcess:
        return False, "has exited: a zombie its parent has not reaped yet"
    except psutil.NoSuchProcess:
        return None, ""  # the caller reports the missing PID itself
    except (psutil.AccessDenied, OSError):
        return None, "cannot tell"
    if not exe:
        return False, (f"({name}) is a kernel thread" if not proc.cmdline() else f"({name})") + \
            ", not a Python process"
    if _PYTHON_NAME.match(Path(exe).name) or _PYTHON_NAME.match(name):
        return True, Path(exe).name
    try:
        maps = proc.memory_maps(grouped=True)
    except (psutil.Error, OSError, NotImplementedError):
        return None, "cannot tell"
    if any("libpython" in Path(m.path).name for m in maps):
        return True, f"{Path(exe).name} (embedded Python)"
    return False, f"({Path(exe).name}) is not a Python process"
