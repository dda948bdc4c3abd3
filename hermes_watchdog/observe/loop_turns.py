"""Reading the loop-turn counter the fix pack's hook keeps inside the gateway (patches/loop_turns.py).

The file is trusted as the hook's marker is: a regular file (never through a symlink, never a FIFO), owned
by the gateway's user, 0600, exactly 64 bytes, naming that very process (pid and start time). The descriptor
is kept open for the gateway it was proven for, so each tick costs one ``pread`` of 64 bytes; the header
is checked again on every read (it comes in the same 64 bytes).
"""

from __future__ import annotations

import os
import stat
import struct
import time
from pathlib import Path

from hermes_watchdog.facts.identity import Identity
from hermes_watchdog.facts.readings import TurnSample
from hermes_watchdog.observe.statefile import open_regular

FILE = "hermes-watchdog-loop-turns.bin"  # as patches/loop_turns.py writes it
MAGIC = b"HWDTURN1"
SIZE = 64
_LAYOUT = struct.Struct("<8sqqqqdQd")  # magic, pid, start, uid, loop thread, period, turns, newest turn


def path_of(home: Path) -> Path:
    return home / "state" / FILE


def parse(raw: bytes, ident: Identity, at: float) -> tuple[TurnSample | None, str]:
    """The sample, if these 64 bytes are this process's counter; else (None, why not)."""
    if len(raw) != SIZE:
        return None, f"the loop-turn counter holds {len(raw)} bytes, not {SIZE}"
    magic, pid, start, _uid, tid, period, turns, last = _LAYOUT.unpack(raw)
    if magic != MAGIC:
        return None, "the loop-turn counter is not in the hook's format"
    if pid != ident.pid:
        return None, f"the loop-turn counter names PID {pid}, not {ident.pid}: an earlier gateway's"
    if start < 0 or ident.start_ticks is None or abs(start - ident.start_ticks) > 1:
        return None, f"the loop-turn counter's start time {start} is not PID {pid}'s: an earlier process's"
    if not (0 < period < 3600) or last != last:  # NaN: not written by the hook
        return None, "the loop-turn counter's period or stamp is out of range"
    return TurnSample(at, turns, last, tid or None, period), "this gateway's"


class TurnReader:
    """The counter of one gateway process: opened and proven once, then one pread a tick."""

    def __init__(self, ident: Identity, home: Path) -> None:
        self.ident, self.home = ident, home
        self._fd: int | None = None
        self.why = "not read yet"

    def _open(self) -> int | None:
        path = path_of(self.home)
        try:
            fd = open_regular(path)  # O_NOFOLLOW, non-blocking, regular files only
        except FileNotFoundError:
            self.why = "no loop-turn counter (the fix pack's hook is not armed in this gateway)"
            return None
        except OSError as exc:
            self.why = f"cannot read {path}: {exc.strerror or exc}"
            return None
        st = os.fstat(fd)
        uid = self.ident.uid if self.ident.uid is not None else os.getuid()
        why = ("not owned by the gateway's user" if st.st_uid != uid else
               f"open to other users (mode {stat.S_IMODE(st.st_mode):o})" if st.st_mode & 0o077 else
               f"{st.st_size} bytes, not {SIZE}" if st.st_size != SIZE else "")
        if why:
            os.close(fd)
            self.why = f"{path} is {why}: not written by the hook"
            return None
        return fd

    def sample(self) -> TurnSample | None:
        if self._fd is None:
            self._fd = self._open()
            if self._fd is None:
                return None
        try:
            raw = os.pread(self._fd, SIZE, 0)
        except OSError as exc:
            self.why = f"cannot read the loop-turn counter: {exc.strerror or exc}"
            self.close()
            return None
        got, self.why = parse(raw, self.ident, time.monotonic())
        if got is None:
            self.close()  # a file of an earlier gateway: opened again next time, maybe renewed by then
        return got

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
