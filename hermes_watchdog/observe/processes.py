"""Process identity through psutil: who a PID is, and whether it is still the same process.

Every signal the watchdog sends is preceded by ``same_process``: a PID alone is not an identity, since
the kernel recycles PIDs; pid + create time + command line is.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from hermes_watchdog.facts.identity import Identity

# Besides `hermes_cli.main ... gateway run`: the programs Hermes itself treats as the gateway
# (gateway/status.py), and our simulated gateway, so the demo and tests go through the same checks.
# Matched as the program, script or module that runs, never as some other argument.
_GATEWAY_PROGRAMS = ("hermes-gateway",)
_GATEWAY_SCRIPTS = ("gateway/run.py",)
_GATEWAY_MODULES = ("hermes_watchdog.sim.gateway",)
_PYTHON_NAME = re.compile(r"^(python|pypy)(\d+(\.\d+)*)?[a-z]?(\.exe)?$|^Python$")
_PY_VALUE_FLAGS = "WX"  # python -W arg, -X opt: the value is not the script


@dataclass(frozen=True)
class Program:
    """What a command line runs: ``kind`` is exe (argv[0] itself), script, module (-m), or code (-c,
    stdin, ``--version``...: never a gateway); ``args`` are the program's own arguments."""

    kind: str
    name: str
    args: tuple[str, ...]


def program_of(cmdline: tuple[str, ...] | list[str]) -> Program:
    """argv[0], or for a Python interpreter the script or ``-m`` module after the interpreter's options."""
    args = [a.replace("\\", "/") for a in cmdline]
    if not args:
        return Program("code", "", ())
    if not _PYTHON_NAME.match(os.path.basename(args[0])):
        return Program("exe", args[0], tuple(args[1:]))
    i = 1
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if arg == "-" or arg.startswith("--"):  # stdin, or --version/--help and the like
            return Program("code", arg, tuple(args[i + 1:]))
        if not arg.startswith("-"):
            break
        # Short options may be bundled (-uBm mod, -Wdefault): walk the letters.
        for j, letter in enumerate(arg[1:], start=1):
            if letter in "mc" or letter in _PY_VALUE_FLAGS:
                value = arg[j + 1:]
                if not value:
                    i += 1
                    value = args[i] if i < len(args) else ""
                if letter == "m":
                    return Program("module", value, tuple(args[i + 1:]))
                if letter == "c":
                    return Program("code", value, tuple(args[i + 1:]))
                break
        i += 1
    if i >= len(args):
        return Program("code", "", ())  # an interactive interpreter
    return Program("script", args[i], tuple(args[i + 1:]))


def _subcommand(args: tuple[str, ...]) -> tuple[str, ...]:
    """The first two positional arguments, past Hermes' global options (``--profile X``, ``-p X``)."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in {"--profile", "-p"}:
            skip = True
        elif not arg.startswith("-"):
            out.append(arg)
            if len(out) == 2:
                break
    return tuple(out)


def looks_like_gateway(cmdline: tuple[str, ...] | list[str]) -> bool:
    """By the program that runs and its arguments: ``hermes [--profile X] gateway [run]``, ``python -m
    hermes_cli.main [--profile X] gateway [run]``, a ``hermes-gateway`` program, a ``.../gateway/run.py``
    script, our simulator's module. Not ``gateway status``, and not a program (``tail``, ``journalctl``,
    ``s6-supervise``) that merely names one of these in its arguments."""
    prog = program_of(cmdline)
    base = os.path.basename(prog.name)
    if prog.kind in {"exe", "script"}:
        if base in _GATEWAY_PROGRAMS or any(prog.name == s or prog.name.endswith("/" + s) for s in _GATEWAY_SCRIPTS):
            return True
        hermes = base == "hermes" or prog.name.endswith("hermes_cli/main.py")
    elif prog.kind == "module":
        if prog.name in _GATEWAY_MODULES:
            return True
        hermes = prog.name == "hermes_cli.main"
    else:
        return False
    sub = _subcommand(prog.args)
    # `hermes gateway` with no subcommand runs the gateway too.
    return hermes and sub[:1] == ("gateway",) and sub[1:] in {(), ("run",)}


def start_ticks(pid: int, create_time: float) -> int | None:
    """Hermes' ``start_time``: /proc/<pid>/stat field 22 (clock ticks since boot) on Linux, else
    psutil's create_time in centiseconds."""
    stat = Path(f"/proc/{pid}/stat")
    if sys.platform.startswith("linux"):
        try:
            # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
            fields = stat.read_text().rsplit(")", 1)[1].split()  # safe: /proc, the kernel's file
            return int(fields[19])
        except (OSError, IndexError, ValueError):
            return None
    return round(create_time * 100)


class ProcessGone(Exception):
    """The PID is not (or no longer) a running process."""


class ProcessHidden(Exception):
    """The process exists but may not be inspected (another user, macOS hardening)."""


@contextlib.contextmanager
def inspecting(pid: int) -> Iterator[None]:
    """psutil's errors become ours once, here at the boundary, with the sentence callers show."""
    try:
        yield
    except psutil.NoSuchProcess:  # ZombieProcess included: it has exited
        raise ProcessGone(f"PID {pid} is not running") from None
    except psutil.AccessDenied:
        raise ProcessHidden(f"PID {pid} cannot be inspected (permission denied)") from None


def identity(pid: int) -> Identity:
    """Raises ProcessGone / ProcessHidden; callers decide what that means."""
    with inspecting(pid):
        return _identity(pid)


def _identity(pid: int) -> Identity:
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
        uid = proc.uids().real
    return Identity(pid, create_time, cmdline, start_ticks(pid, create_time), exe, username, uid)


def same_process(expected: Identity) -> tuple[bool, str]:
    """Is ``expected.pid`` still the process we identified? Returns (yes, why not)."""
    # Called before every signal and on every tick: only what identity needs (create time, command line,
    # status), read in one pass of /proc.
    try:
        proc = psutil.Process(expected.pid)
        with proc.oneshot():
            create_time = proc.create_time()
            zombie = proc.status() == psutil.STATUS_ZOMBIE
            uid = proc.uids().real
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
    if expected.uid is not None and uid != expected.uid:
        return False, f"PID {expected.pid} now runs as another user (uid {uid}, not {expected.uid})"
    # An identity without a command line proves nothing: it never matches.
    if not expected.cmdline or cmdline != expected.cmdline:
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


def python_kind(pid: int) -> tuple[bool | None, str]:
    """(is it a Python process, what it is): True/False, or None when we cannot tell (then go on).
    For False, the text completes "PID N ..." in an error message.

    One rule for every process: it is Python when its executable, its name or its argv[0] names a Python
    interpreter (``python3.11``, a venv's ``python``, macOS's framework ``Python``; a console script's
    shebang puts the interpreter in argv[0]), or when libpython is mapped into it (an embedded interpreter).
    Whatever of these can be read decides: a hidden executable (another user's process, a container's
    init) does not turn "not Python" into "cannot tell"."""
    try:
        proc = psutil.Process(pid)
        name = proc.name()
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False, f"({name}) has exited: a zombie its parent has not reaped yet"
    except psutil.ZombieProcess:
        return False, "has exited: a zombie its parent has not reaped yet"
    except psutil.NoSuchProcess:
        return None, ""  # the caller reports the missing PID itself
    except (psutil.AccessDenied, OSError):
        return None, "cannot tell"

    unreadable = (psutil.AccessDenied, psutil.ZombieProcess, OSError, NotImplementedError)
    exe: str | None = None
    cmdline: list[str] = []
    maps = None
    try:
        with contextlib.suppress(*unreadable):
            exe = proc.exe()
        with contextlib.suppress(*unreadable):
            cmdline = proc.cmdline()
        if exe == "":  # psutil's answer for a kernel thread or a vanished binary
            return False, (f"({name}) is a kernel thread" if not cmdline else f"({name})") + ", not a Python process"
        names = [n for n in (Path(exe).name if exe else "", name, Path(cmdline[0]).name if cmdline else "") if n]
        if any(_PYTHON_NAME.match(n) for n in names):
            return True, names[0]
        with contextlib.suppress(*unreadable):
            maps = proc.memory_maps(grouped=True)
    except psutil.NoSuchProcess:
        return None, ""
    if maps and any("libpython" in Path(m.path).name for m in maps):
        return True, f"{names[0]} (embedded Python)"
    if exe is None and not cmdline and maps is None:
        return None, "cannot tell"
    how = "" if exe is not None else " by its name and command line (its executable cannot be read)"
    return False, f"({names[0]}) is not a Python process{how}"
