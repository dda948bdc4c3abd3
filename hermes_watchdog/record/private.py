"""Files and folders for users' eyes only: folders 0700, files 0600, written atomically.

Never through a symlink, and never changing a folder we did not create: the watchdog may run as root in
folders others can write (a planted symlink must not redirect a chmod, a write or a delete)."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from hermes_watchdog.record import jsonout


def _refuse_link(path: Path) -> None:
    raise OSError(errno.ELOOP, "is a symbolic link; not followed", str(path))


def _make_private(path: Path) -> None:
    """Create exactly one new folder 0700 (FileExistsError if anything is there)."""
    os.mkdir(path, 0o700)
    # mkdir's mode is filtered by the umask; fix it on the folder just made, never through a link.
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def make_dir(path: Path) -> Path:
    """``path`` as a folder: missing levels are created 0700; an existing folder keeps its own mode (it
    may be shared, e.g. 1777); a symlink at ``path`` or at a level we would create is refused."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            _refuse_link(path)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", str(path))
        return path
    if path.parent != path and not os.path.lexists(path.parent):
        make_dir(path.parent)
    try:
        _make_private(path)
    except FileExistsError:
        # Made by someone else meanwhile: fine if it is a real folder, which then keeps its mode.
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            _refuse_link(path)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", str(path)) from None
    return path


def new_dir(path: Path) -> Path:
    """A brand-new private folder at ``path`` (its parent must exist): FileExistsError when anything,
    a folder, a file or a symlink, is already there. Never reuses or changes an existing one."""
    _make_private(path)
    return path


def write_text(path: Path, text: str, durable: bool = True) -> None:
    """Write via a 0600 temp file in the same folder, then rename: a reader never sees half a file.
    ``durable=False`` skips the fsync: still whole after a crash, but perhaps the previous version.
    Text that cannot be UTF-8 (undecodable argv bytes arrive as surrogates) is written escaped."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
            os.fchmod(fh.fileno(), 0o600)  # mkstemp's own mode; on the descriptor, never through a path
            fh.write(text)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json(path: Path, data: Any, durable: bool = True) -> None:
    write_text(path, jsonout.dumps(data, indent=2) + "\n", durable)
