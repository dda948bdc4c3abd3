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
from dataclasses import dataclass
from pathlib import Path

TRIES = 3
TIMEOUT = 1.0
PAUSE = 0.2


@dataclass(frozen=True)
class TickProbe:
    at: float  # monotonic, when the probe ended
    answered: bool
    detail: str

    def to_dict(self) -> dict[str, object]:
        return {"answered": self.answered, "detail": self.detail}


def socket_path(home: Path, pid: int) -> Path:
    return home / "state" / f"gateway.loop-tick.{pid}.sock"


def _once(path: Path, timeout: float) -> bool | None:
    """True: a byte came. False: connected, and silence. None: no connection at all (refused, denied):
    a frozen loop's socket still accepts into its backlog, so that says nothing about the loop."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(path))
        except OSError:
            return None
        try:
            return s.recv(1) == b"1"
        except OSError:  # TimeoutError included: silence
            return False


def probe(home: Path, pid: int, uid: int | None, tries: int = TRIES, timeout: float = TIMEOUT,
          pause: float = PAUSE) -> TickProbe | None:
    """None when this gateway has no loop-tick socket (or one not owned by its user: not its own)."""
    path = socket_path(home, pid)
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISSOCK(st.st_mode) or (uid is not None and st.st_uid != uid):
        return None
    for i in range(tries):
        got = _once(path, timeout)
        if got is None:
            return None
        if got:
            return TickProbe(time.monotonic(), True, f"{path.name} answered (probe {i + 1} of {tries})")
        if i < tries - 1:
            time.sleep(pause)
    return TickProbe(time.monotonic(), False, f"{path.name} stayed silent: {tries} probes of {timeout:.0f} s")
