"""The loop-tick socket of Hermes git releases 0.19.1 and later: ``HERMES_HOME/state/gateway.loop-tick.<pid>.sock``.

The gateway's event loop serves it: on connect the loop writes one byte ``1`` and closes; the client sends
nothing. A byte proves the loop turned just now (it vetoes "frozen"); three probes of 1 s, 0.2 s apart,
that stay silent are what upstream's own CLI takes for a wedged loop. Older versions have no socket.
"""

from __future__ import annotations

import os
import socket
import stat
import time
from pathlib import Path

from hermes_watchdog import safepath
from hermes_watchdog.facts.readings import TickProbe

TRIES = 3
TIMEOUT = 1.0
PAUSE = 0.2


def socket_path(home: Path, pid: int) -> Path:
    return home / "state" / f"gateway.loop-tick.{pid}.sock"


def _open_socket_node(path: Path, uid: int | None) -> int | None:
    """An O_PATH descriptor on the socket file itself, reached without following any link (safepath), and
    proven a socket of the gateway's user; None otherwise. Connecting through ``/proc/self/fd/N`` then
    reaches exactly that inode: the user cannot swap the path between the check and the connect."""
    try:
        fd = safepath.open_file(path, os.O_PATH)
    except OSError:
        return None
    st = os.fstat(fd)
    if not stat.S_ISSOCK(st.st_mode) or (uid is not None and st.st_uid != uid):
        os.close(fd)
        return None
    return fd


def socket_address(path: Path, uid: int | None) -> tuple[str | None, int | None]:
    """(what to connect to, a descriptor to close after). Linux: the checked inode through /proc; elsewhere
    (no O_PATH) the path after an lstat check, and only when the watchdog runs as the gateway's own user,
    who gains nothing by steering it."""
    if hasattr(os, "O_PATH") and os.path.isdir("/proc/self/fd"):
        fd = _open_socket_node(path, uid)
        return (None, None) if fd is None else (f"/proc/self/fd/{fd}", fd)
    if uid is not None and uid != os.geteuid():
        return None, None
    try:
        st = os.lstat(path)
    except OSError:
        return None, None
    ok = stat.S_ISSOCK(st.st_mode) and (uid is None or st.st_uid == uid)
    return (str(path) if ok else None), None


def _once(path: Path, timeout: float, uid: int | None = None) -> bool | None:
    """True: a byte came. False: connected, and silence. None: no connection at all (refused, denied, not
    the gateway's socket): a frozen loop's socket still accepts into its backlog, so that says nothing."""
    address, fd = socket_address(path, uid)
    if address is None:
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(address)
        except OSError:
            return None
        finally:
            if fd is not None:
                os.close(fd)
        try:
            return s.recv(1) == b"1"
        except OSError:  # TimeoutError included: silence
            return False


def probe(home: Path, pid: int, uid: int | None, tries: int = TRIES, timeout: float = TIMEOUT,
          pause: float = PAUSE) -> TickProbe | None:
    """None when this gateway has no loop-tick socket (or one not owned by its user: not its own)."""
    path = socket_path(home, pid)
    for i in range(tries):
        got = _once(path, timeout, uid)  # each connect proves the socket again: it may be swapped meanwhile
        if got is None:
            return None
        if got:
            return TickProbe(time.monotonic(), True, f"{path.name} answered (probe {i + 1} of {tries})")
        if i < tries - 1:
            time.sleep(pause)
    return TickProbe(time.monotonic(), False, f"{path.name} stayed silent: {tries} probes of {timeout:.0f} s")
