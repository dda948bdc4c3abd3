"""CPU samples of a live process and its threads: psutil for CPU time, and on Linux the kernel's
schedstat (time on a CPU + time waiting on a run queue) for CPU demand. I/O only; cpu.py does the sums."""

from __future__ import annotations

import errno
import os
import sys
import time
from pathlib import Path

import psutil

from hermes_watchdog.facts.cpu import CpuSnapshot, ThreadTimes
from hermes_watchdog.observe.processes import inspecting

LINUX = sys.platform.startswith("linux")
_SCHEDSTAT_MAX = 128  # "<ns on cpu> <ns waiting> <timeslices>\n": three counters fit with room to spare
_GONE = (errno.ENOENT, errno.ESRCH)


class _Vanished(Exception):
    """The thread exited between listing it and reading its schedstat."""


def read_schedstat(path: str) -> tuple[int, int] | None:
    """(ns on a CPU, ns waiting on a run queue) from one schedstat file; None when it cannot be read or
    parsed. Raises _Vanished when the task is gone. One open and one bounded read."""
    got = _read_schedstat(path)
    return None if got is None else (got[0], got[1])


def _read_schedstat(path: str) -> tuple[int, int, int | None] | None:
    """... and the third field: how many times the thread was put on a CPU (its wake-ups, for gil-held)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        if e.errno in _GONE:
            raise _Vanished from None
        return None
    try:
        raw = os.read(fd, _SCHEDSTAT_MAX)
    except OSError as e:
        if e.errno in _GONE:
            raise _Vanished from None
        return None
    finally:
        os.close(fd)
    parts = raw.split()
    if len(parts) < 2:
        return None
    try:
        return int(parts[0]), int(parts[1]), int(parts[2]) if len(parts) > 2 else None
    except ValueError:
        return None


def snapshot(proc: psutil.Process | int) -> CpuSnapshot:
    """Raises processes.ProcessGone when the process is gone, ProcessHidden when it may not be read."""
    pid = proc if isinstance(proc, int) else proc.pid
    with inspecting(pid):
        return _snapshot(psutil.Process(proc) if isinstance(proc, int) else proc)


def _snapshot(proc: psutil.Process) -> CpuSnapshot:
    with proc.oneshot():
        times = proc.cpu_times()
        try:
            rss: int | None = proc.memory_info().rss
        except psutil.AccessDenied:
            rss = None
        try:
            listed = proc.threads()
        except psutil.AccessDenied:
            listed = []  # macOS hides other users' threads; the process total still tells
    threads = []
    for t in listed:
        run = wait = slices = None
        if LINUX:
            try:
                got = _read_schedstat(f"/proc/{proc.pid}/task/{t.id}/schedstat")
            except _Vanished:
                continue  # gone since psutil listed it: nothing left to measure
            if got is not None:
                run, wait, slices = got
        threads.append(ThreadTimes(t.id, t.user_time + t.system_time, run, wait, slices))
    # No read of /proc/<pid>/schedstat: it is the main thread's (also read above), not the process's.
    return CpuSnapshot(time.monotonic(), times.user + times.system, tuple(threads), time.time(), rss)


def thread_name(pid: int, tid: int) -> str | None:
    """The kernel's name for a thread (Linux only; Python < 3.14 leaves it as the process name)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip() or None
    except OSError:
        return None
