"""Files and folders for users' eyes only: folders 0700, files 0600, written atomically.

Never through a symlink, and never changing a folder we did not create: the watchdog may run as root in
folders others can write (a planted symlink must not redirect a chmod, a write or a delete)."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from hermes_watchdog import safepath
from hermes_watchdog.record import jsonout


def _refuse_link(path: Path) -> None:
    raise OSError(errno.ELOOP, "is a symbolic link; not followed", str(path))


def _make_private(path: Path) -> None:
    """Create exactly one new folder 0700 (FileExistsError if anything is there), through its parent's
    descriptor (safepath: no folder on the way can be swapped for a link)."""
    with safepath.parent_of(path) as (dfd, name):
        os.mkdir(name, 0o700, dir_fd=dfd)
        # mkdir's mode is filtered by the umask; fix it on the folder just made, never through a link.
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    try:
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return safepath.lstat(path)
    except FileNotFoundError:
        return None


def make_dir(path: Path) -> Path:
    """``path`` as a folder: missing levels are created 0700; an existing folder keeps its own mode (it
    may be shared, e.g. 1777); a symlink at ``path`` or at a level we would create is refused."""
    st = _lstat(path)
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            _refuse_link(path)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", str(path))
        return path
    if path.parent != path and _lstat(path.parent) is None:
        make_dir(path.parent)
    try:
        _make_private(path)
    except FileExistsError:
        # Made by someone else meanwhile: fine if it is a real folder, which then keeps its mode.
        st = safepath.lstat(path)
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
    Text that cannot be UTF-8 (undecodable argv bytes arrive as surrogates) is written escaped.
    The temp file, the rename and the cleanup all go through one descriptor of the folder (safepath)."""
    data = text.encode("utf-8", errors="backslashreplace")
    with safepath.parent_of(path) as (dfd, name):
        for _ in range(100):
            tmp = f".{name}.{secrets.token_hex(6)}.tmp"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                             dir_fd=dfd)
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))
        try:
            try:
                os.fchmod(fd, 0o600)  # the umask cannot widen it, but an old umask of 0 must not matter
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            raise


def write_json(path: Path, data: Any, durable: bool = True) -> None:
    write_text(path, jsonout.dumps(data, indent=2) + "\n", durable)
