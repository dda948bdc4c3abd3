"""The stack hook's marker (patches/hook.py writes it inside the gateway), checked against the live process.

``read_marker``: is the hook armed in this very process (pid and start time, a private regular file of the
gateway's user)? If so, the marker gives the stack thread's address (patches/stack_thread.py), whether
faulthandler prints the stacks on a fatal signal (the SIGABRT last words), and how SIGUSR2 is registered (for
``patch status`` only: the watchdog never sends SIGUSR2, whose faulthandler dump can crash a busy gateway).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hermes_watchdog import safepath
from hermes_watchdog.facts.identity import Identity
from hermes_watchdog.observe.statefile import open_regular, parse_json_object, read_fd

MARKER = "hermes-watchdog-hook.json"  # written by patches/hook.py inside the gateway
STACKS_PREFIX = "hermes-watchdog-stacks"  # as patches/stack_thread.py names its socket


@dataclass(frozen=True)
class Marker:
    """The hook's marker, checked against the live process."""

    main_thread: int | None
    fatal_handler: bool
    stacks: str | None  # the stack thread's address: "@name" (a Linux abstract socket) or a path in state/
    sigusr2: dict[str, Any] | None = None  # how SIGUSR2 is registered, when someone registered it
    stacks_why: str = ""  # why there is no address to ask, when there is none

    def registration(self) -> str:
        """How SIGUSR2 is registered, for patch status."""
        if not self.sigusr2:
            return "SIGUSR2 not registered"
        asked = " (Hermes asked for chain=True; the hook turned it)" if self.sigusr2.get("chain_requested") else ""
        where = f" -> {self.sigusr2.get('file')}" if self.sigusr2.get("file") else ""
        return f"SIGUSR2{where}, chain=False{asked}"


def stacks_address(data: dict[str, Any], home: Path) -> tuple[str | None, str]:
    """Pure: the stack thread's address if the marker names the one this process would bind, else why not.
    Never an address of the user's choosing: the abstract name carries the pid and start time the marker was
    proven by, a path must be the one in this home's state/."""
    addr, pid, start = data.get("stacks"), data.get("pid"), data.get("start_time")
    if not isinstance(addr, str) or not addr:
        failed = data.get("stacks_error")
        if isinstance(failed, str) and failed:
            return None, f"the hook's stack thread did not start in this gateway: {failed[:300]}"
        return None, "the hook started no stack thread in this gateway (an older fix pack? `patch install` again)"
    if addr.startswith("@"):
        if re.fullmatch(re.escape(f"@{STACKS_PREFIX}.{pid}.{start}.") + "[0-9a-f]{16}", addr):
            return addr, ""
    elif addr == str(home / "state" / f"{STACKS_PREFIX}.{pid}.sock"):
        return addr, ""
    return None, f"the marker's stack address {addr!r} is not this gateway's"


def _private_regular(path: Path, uid: int | None, *, private: bool) -> tuple[os.stat_result | None, str]:
    """lstat-level checks: a regular file (no symlink) of the gateway's user, 0600 when ``private``."""
    try:
        st = safepath.lstat(path)  # no folder on the way may be a link of the user's
    except FileNotFoundError:
        return None, f"{path} does not exist"
    except OSError as exc:
        return None, f"cannot read {path}: {exc.strerror or exc}"
    if not stat.S_ISREG(st.st_mode):
        return None, f"{path} is not a regular file"
    if uid is not None and st.st_uid != uid:
        return None, f"{path} is not owned by the gateway's user (uid {st.st_uid}, not {uid})"
    if private and st.st_mode & 0o077:
        return None, f"{path} is open to other users (mode {stat.S_IMODE(st.st_mode):o}): not written by the hook"
    return st, ""


def read_marker(ident: Identity, home: Path | None) -> tuple[Marker | None, str]:
    """The hook's marker if it proves the hook armed in this very process; else (None, why not)."""
    if home is None:
        return None, "no HERMES_HOME known for this process, so no hook marker to check"
    path = home / "state" / MARKER
    uid = ident.uid if ident.uid is not None else os.getuid()
    st, why = _private_regular(path, uid, private=True)
    if st is None:
        return None, ("the hook is not armed in this gateway (no marker: is the fix pack installed and the "
                      "gateway restarted since? `hermes-watchdog patch status`)") if "does not exist" in why else why
    try:
        fd = open_regular(path)
        try:
            raw = read_fd(fd, 65536)
        finally:
            os.close(fd)
    except OSError as exc:
        return None, f"cannot read {path}: {exc.strerror or exc}"
    data = parse_json_object(str(path), raw).data
    if data is None:
        return None, f"{path} is not a marker the hook wrote"
    pid, start = data.get("pid"), data.get("start_time")
    if pid != ident.pid:
        return None, f"the marker names PID {pid}, not {ident.pid}: armed in an earlier gateway"
    if not isinstance(start, int) or isinstance(start, bool) or ident.start_ticks is None:
        return None, "the marker's start time cannot be compared with the process's: not proof enough"
    if abs(start - ident.start_ticks) > 1:
        return None, (f"the marker's start time {start} is not PID {pid}'s ({ident.start_ticks}): written by an "
                      "earlier process with the same PID")
    main = data.get("main_thread")
    sigusr2 = data.get("sigusr2") if isinstance(data.get("sigusr2"), dict) else None
    stacks, stacks_why = stacks_address(data, home)
    return Marker(main if isinstance(main, int) else None, bool(data.get("fatal_handler")), stacks,
                  sigusr2, stacks_why), "armed in this process"
