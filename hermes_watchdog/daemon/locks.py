"""Lock files held with flock for the daemon's whole life (one daemon per state dir, one per Hermes home),
and reading back the private files only this daemon writes.

Lock files are opened with O_NOFOLLOW and never truncated on open: a planted symlink is refused, never
followed, and a lock file some other user owns is locked but never written.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hermes_watchdog import safepath
from hermes_watchdog.observe.statefile import MAX_BYTES, open_regular, parse_json_object, read_fd

_FAMILY = re.compile(r"^[0-9a-f]{32}$")


class LockError(Exception):
    """The lock file cannot be used (a symlink, not a regular file): said in one line."""


class Held(LockError):
    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is held by PID {holder}")
        self.holder = holder


@dataclass
class Lock:
    path: Path
    fd: int
    ours: bool  # a regular file we own with one link: only then is it written
    previous: str  # what it said before we took it, when it is ours

    def write(self, text: str) -> str | None:
        """Our PID (and family) in the lock: only for messages and resuming. Returns a problem or None."""
        if not self.ours:
            return None
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, text.encode(), 0)
        except OSError as exc:
            return f"cannot write {self.path}: {exc.strerror or exc}"
        return None

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


def take(path: Path, mode: int) -> Lock:
    """Create or open ``path`` and flock it. Raises Held (another process has it), LockError (a symlink or
    not a regular file), FileNotFoundError (its folder is missing) or another OSError."""
    flags = os.O_CREAT | os.O_NONBLOCK  # safepath adds O_NOFOLLOW and walks the folders without links
    try:
        try:
            fd = safepath.open_file(path, flags | os.O_RDWR, mode)
        except PermissionError:
            fd = safepath.open_file(path, flags | os.O_RDONLY)  # another user's lock: flock needs no write access
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LockError(f"lock file {path} is a symbolic link: refusing to follow it (remove it)") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LockError(f"lock file {path} is not a regular file (remove it)")
        ours = st.st_uid == os.geteuid() and st.st_nlink == 1
        text = os.pread(fd, 256, 0).decode("utf-8", "replace")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            words = text.split()
            holder = words[0] if words and words[0].isdigit() else "?"
            raise Held(path, holder) from None
    except BaseException:
        os.close(fd)
        raise
    return Lock(path, fd, ours, text if ours else "")


def family_of(previous: str) -> str | None:
    """The family token a previous daemon of this state dir left in its lock ("PID FAMILY")."""
    words = previous.split()
    return words[1] if len(words) >= 2 and _FAMILY.match(words[1]) else None


def read_own_json(path: Path) -> tuple[dict[str, Any] | None, str]:
    """A JSON object from a file this daemon wrote itself: a regular file, not a symlink, not hard-linked,
    owned by us, mode 0600. Else (None, why not), without following or blocking on anything."""
    try:
        fd = open_regular(path)  # the readers' one safe open: no symlink, no FIFO, regular files only
    except FileNotFoundError:
        return None, "missing"
    except OSError as exc:
        return None, exc.strerror or str(exc)
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            return None, f"owned by uid {st.st_uid}, not by this watchdog (uid {os.geteuid()})"
        if stat.S_IMODE(st.st_mode) != 0o600:
            return None, f"mode {stat.S_IMODE(st.st_mode):04o}, not 0600"
        if st.st_nlink != 1:
            return None, "hard-linked elsewhere"
        raw = read_fd(fd, MAX_BYTES + 1)
    except OSError as exc:
        return None, exc.strerror or str(exc)
    finally:
        os.close(fd)
    read = parse_json_object(str(path), raw)
    return (read.data, "") if read.ok and read.data is not None else (None, read.problem or read.status)
