"""Opening paths inside a user's Hermes home so that the user cannot steer them (issue 20).

The watchdog may run as root over a home that belongs to someone else, and everything in that home, every
folder on the way to a file included, is that user's to swap for a symlink at any moment. ``O_NOFOLLOW``
guards only the last component, and a path checked once then opened again by name can be swapped in
between. So every open here walks the path one component at a time from ``/`` with ``openat``
(``dir_fd``), each step with ``O_NOFOLLOW``: a symbolic link is followed only when it belongs to root or to
the watchdog's own user (system links such as macOS's ``/var`` -> ``/private/var``, or the watchdog user's
own), never one that another user could have planted. Each step is one system call on a descriptor, so
there is no window between a check and a use. A home swapped for a link while the daemon runs is refused
from the next open on: the daemon says so and stops reading and writing there.

Linux opens the folders on the way with ``O_PATH`` (search permission is enough, as for a plain path).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

_DIR_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_LINKS = 16  # as the kernel's own limit on nested links, roughly


def _trusted(uid: int) -> bool:
    return uid in (0, os.geteuid())


def _untrusted_link(name: str, uid: int) -> OSError:
    return OSError(errno.ELOOP, f"is a symbolic link of uid {uid}; not followed", name)


def _walk(parts: list[str], links: int = 0) -> tuple[int, int]:
    """A directory descriptor on ``parts`` (absolute, no trailing file), and the links followed so far."""
    fd = os.open("/", _DIR_FLAGS)
    queue = list(parts)
    try:
        while queue:
            name = queue.pop(0)
            if name in ("", ".", "/"):
                continue
            try:
                new = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    raise
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if not stat.S_ISLNK(st.st_mode):
                    raise OSError(errno.ENOTDIR, "is not a directory", name) from None
                if not _trusted(st.st_uid):
                    raise _untrusted_link(name, st.st_uid) from None
                links += 1
                if links > MAX_LINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links", name) from None
                target = os.readlink(name, dir_fd=fd)
                if target.startswith("/"):
                    os.close(fd)
                    fd = os.open("/", _DIR_FLAGS)
                queue[:0] = [p for p in target.split("/") if p]
                continue
            os.close(fd)
            fd = new
    except BaseException:
        os.close(fd)
        raise
    return fd, links


def _split(path: Path | str) -> list[str]:
    return [p for p in os.path.abspath(os.fspath(path)).split("/") if p]


def open_dir(path: Path | str) -> int:
    """A descriptor on the folder ``path`` (O_PATH on Linux): usable as ``dir_fd``. OSError otherwise."""
    fd, _ = _walk(_split(path))
    return fd


@contextlib.contextmanager
def parent_of(path: Path | str) -> Iterator[tuple[int, str]]:
    """(descriptor of the folder holding ``path``, the last component's name), closed on exit."""
    parts = _split(path)
    if not parts:
        raise OSError(errno.EISDIR, "is the root folder", str(path))
    fd, _ = _walk(parts[:-1])
    try:
        yield fd, parts[-1]
    finally:
        os.close(fd)


def open_file(path: Path | str, flags: int, mode: int = 0o600, follow: bool = False) -> int:
    """``os.open(path, flags | O_NOFOLLOW | O_CLOEXEC, mode)``, reached without following untrusted links on
    the way; ``follow``: a trusted link as the last component is followed too (never an untrusted one)."""
    parts = _split(path)
    if not parts:
        raise OSError(errno.EISDIR, "is the root folder", str(path))
    links = 0
    while True:
        dfd, links = _walk(parts[:-1], links)
        name = parts[-1]
        try:
            try:
                return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dfd)
            except OSError as exc:
                if not follow or exc.errno not in (errno.ELOOP, errno.EMLINK):
                    raise
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                if not stat.S_ISLNK(st.st_mode):
                    raise
                if not _trusted(st.st_uid):
                    raise _untrusted_link(name, st.st_uid) from None
                links += 1
                if links > MAX_LINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links", name) from None
                target = os.readlink(name, dir_fd=dfd)
                base = [] if target.startswith("/") else parts[:-1]
                parts = _normalise(base + [p for p in target.split("/") if p])
        finally:
            os.close(dfd)


def _normalise(parts: list[str]) -> list[str]:
    out: list[str] = []
    for p in parts:
        if p == "..":
            if out:
                out.pop()
        elif p not in ("", "."):
            out.append(p)
    return out


def lstat(path: Path | str) -> os.stat_result:
    """``os.lstat`` of ``path``, reached without following untrusted links on the way."""
    with parent_of(path) as (dfd, name):
        return os.stat(name, dir_fd=dfd, follow_symlinks=False)
