"""The watchdog's only signal sender. Every signal, whatever the manager or the restart phase, goes
through ``guarded_signal``: the PID is re-proven to be the home's gateway first (psutil's model: the
pid-reuse check lives inside the only sender), and on Linux a pidfd taken before the check keeps a PID
recycled after it from being hit."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from hermes_watchdog.facts.identity import Identity
from hermes_watchdog.observe.discovery import reprove


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
