"""A last stack on the way down: when no stack could be taken from a wedged gateway that has faulthandler
on for fatal signals (``PYTHONFAULTHANDLER=1``, or the fix pack's hook enabled it), the restart ends it with
SIGABRT instead of SIGKILL. faulthandler's C handler then prints every thread's stack to the gateway's stderr
before it dies: ``logs/gateway.error.log`` under launchd, the journal under systemd. After the relaunch the
incident collects it from there.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import replace
from pathlib import Path

from hermes_watchdog.facts.identity import Identity
from hermes_watchdog.facts.stacks import StackAnalysis
from hermes_watchdog.observe import faulthandler_text
from hermes_watchdog.observe.hook_marker import read_marker
from hermes_watchdog.observe.stacks import analyse
from hermes_watchdog.observe.statefile import open_regular, read_fd

ERROR_LOG = "gateway.error.log"  # launchd's StandardErrorPath in Hermes' plist
TAIL_BYTES = 1024 * 1024
METHOD = "sigabrt"


def _on(value: str | None) -> bool:
    # Python's own rule: any non-empty PYTHONFAULTHANDLER turns it on.
    return bool(value)


def final_signal(ident: Identity, home: Path, proc_env: dict[str, str] | None,
                 stack_captured: bool) -> tuple[signal.Signals, str | None]:
    """SIGABRT (with why) when no stack was taken and the gateway will print one as it dies; else SIGKILL."""
    if stack_captured:
        return signal.SIGKILL, None
    if proc_env is not None and _on(proc_env.get("PYTHONFAULTHANDLER")):
        return signal.SIGABRT, ("no stack was taken and the gateway runs with PYTHONFAULTHANDLER: SIGABRT instead of "
                                "SIGKILL, so it prints every thread's stack to its stderr as it dies")
    marker, _ = read_marker(ident, home)
    if marker is not None and marker.fatal_handler:
        return signal.SIGABRT, ("no stack was taken and the hook enabled faulthandler in this gateway: SIGABRT "
                                "instead of SIGKILL, so it prints every thread's stack to its stderr as it dies")
    return signal.SIGKILL, None


def _tail(path: Path, offset: int) -> str | None:
    try:
        fd = open_regular(path)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        start = offset if offset <= size else 0  # a shorter file was rotated or truncated: read it all
        return read_fd(fd, TAIL_BYTES, max(start, size - TAIL_BYTES)).decode(errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def _journal(pid: int) -> str | None:
    """The dead process's stderr lines from the journal (systemd stores them with its _PID)."""
    journalctl = shutil.which("journalctl")
    if journalctl is None:
        return None
    argv = [journalctl, *([] if os.geteuid() == 0 else ["--user"]), f"_PID={pid}", "-o", "cat", "--no-pager",
            "-n", "3000"]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=15, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 else None


def error_log_size(home: Path) -> int:
    """Where the stderr log ends now: what the aborted gateway prints comes after it."""
    try:
        return os.lstat(home / "logs" / ERROR_LOG).st_size
    except OSError:
        return 0


def collect(home: Path, old: Identity, manager: str, offset: int = 0) -> tuple[StackAnalysis | None, str]:
    """The stack the aborted gateway printed, from its stderr log past ``offset`` (or the journal under
    systemd)."""
    sources: list[tuple[str, str | None]] = [(str(home / "logs" / ERROR_LOG),
                                              _tail(home / "logs" / ERROR_LOG, offset))]
    if manager == "systemd":
        sources.append((f"the journal (_PID={old.pid})", _journal(old.pid)))
    for where, text in sources:
        fatal = faulthandler_text.last_fatal(text or "")
        dumps = faulthandler_text.parse(fatal) if fatal else []
        if dumps:
            return replace(analyse(dumps[:1], None), method=METHOD), where
    return None, " and ".join(w for w, _ in sources)
