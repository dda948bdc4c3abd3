"""The stack hook's marker (patches/hook.py writes it inside the gateway), checked against the live process.

Two questions, kept apart:
- ``read_marker``: is the hook armed in this very process (pid and start time, a private regular file of
  the gateway's user, its stack file in ``HERMES_HOME/logs``)? ``patch status`` and the SIGABRT last words
  ask only this.
- ``signal_marker``: may SIGUSR2 be sent? Only if, besides, the marker proves a handler that does not chain
  (an explicit ``"chain": false``: Hermes 0.19.1-0.21.3 registered ``chain=True``, which dumps and then dies
  of SIGUSR2's default action, upstream #84373) and, where /proc shows it, the process still catches
  SIGUSR2. Every path that can send SIGUSR2 asks this one, right before the signal.
"""

from __future__ import annotations

import os
import signal
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hermes_watchdog import safepath
from hermes_watchdog.observe.processes import Identity
from hermes_watchdog.observe.statefile import open_regular, parse_json_object, read_fd

MARKER = "hermes-watchdog-hook.json"  # written by patches/hook.py inside the gateway
HOOK_SIGNALS = {"SIGUSR2": signal.SIGUSR2} if hasattr(signal, "SIGUSR2") else {}  # never any other signal


@dataclass(frozen=True)
class Marker:
    """The hook's marker, checked against the live process."""

    signal: signal.Signals
    file: Path
    owner: str  # hermes-watchdog (our file) or hermes (a Hermes release that registers SIGUSR2 itself)
    main_thread: int | None
    fatal_handler: bool
    chain: bool | None = None  # False only when the marker says so explicitly; None: not said (an older hook)
    chain_requested: bool | None = None  # what the caller asked (True: a 0.19.1-0.21.3 release, turned by the hook)

    def registration(self) -> str:
        """How SIGUSR2 is registered, for patch status and reasons."""
        if self.chain is False:
            asked = " (Hermes asked for chain=True; the hook turned it)" if self.chain_requested else ""
            return f"chain=False{asked}"
        return "chain not proven False"


def chain_proof(data: dict[str, Any]) -> str | None:
    """Pure: None when the marker's fields prove a non-chaining handler, else why not."""
    chain = data.get("chain")
    if chain is False:
        return None
    if "chain" not in data:
        return ("the marker does not say how SIGUSR2 is registered (written by an older hook?): a handler that "
                "chains dies of SIGUSR2 after the dump")
    return (f"the marker says SIGUSR2 is registered with chain={chain!r}: after the dump the signal would fall "
            "through to its default action and end the gateway")


def caught_mask_proof(status_text: str | None, sig: signal.Signals) -> str | None:
    """Pure: None unless /proc/PID/status's ``SigCgt`` shows ``sig`` not caught (then why). No text, no
    SigCgt line (not Linux): no objection from here; the marker's own proof stands."""
    if not status_text:
        return None
    for line in status_text.splitlines():
        if line.startswith("SigCgt:"):
            try:
                mask = int(line.split(":", 1)[1].strip(), 16)
            except ValueError:
                return None
            if mask & (1 << (int(sig) - 1)):
                return None
            return (f"the process does not catch {sig.name} (SigCgt in /proc/PID/status): its default action would "
                    "end it, whatever the marker says")
    return None


def _proc_status(pid: int) -> str | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:  # /proc, not a home file
            return fh.read(65536)
    except OSError:
        return None


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
        return None, "the marker's start time cannot be compared with the process's: not proof enough to signal"
    if abs(start - ident.start_ticks) > 1:
        return None, (f"the marker's start time {start} is not PID {pid}'s ({ident.start_ticks}): written by an "
                      "earlier process with the same PID")
    sig = HOOK_SIGNALS.get(str(data.get("signal")))
    if sig is None:
        return None, f"the marker names signal {data.get('signal')!r}; only SIGUSR2 is ever sent"
    owner = str(data.get("owner") or "hermes-watchdog")
    file = Path(str(data.get("file") or ""))
    logs = home / "logs"
    if not file.is_absolute() or os.path.realpath(file.parent) != os.path.realpath(logs):
        return None, f"the marker's stack file {file} is not in {logs}"
    st, why = _private_regular(file, uid, private=owner == "hermes-watchdog")
    if st is None:
        return None, why
    main = data.get("main_thread")
    chain = data.get("chain") if isinstance(data.get("chain"), bool) else None
    asked = data.get("chain_requested") if isinstance(data.get("chain_requested"), bool) else None
    return Marker(sig, file, owner, main if isinstance(main, int) else None,
                  bool(data.get("fatal_handler")), chain, asked), "armed in this process"


def signal_marker(ident: Identity, home: Path | None) -> tuple[Marker | None, str]:
    """The marker if it proves that SIGUSR2 is harmless to this very process (armed here, registered without
    chaining, still caught); else (None, why no signal may be sent)."""
    marker, why = read_marker(ident, home)
    if marker is None:
        return None, why
    objection = chain_proof({"chain": marker.chain} if marker.chain is not None else {})
    if objection is None:
        objection = caught_mask_proof(_proc_status(ident.pid), marker.signal)
    if objection is not None:
        return None, f"no {marker.signal.name} sent: {objection}"
    return marker, why
