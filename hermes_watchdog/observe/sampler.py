"""CPU samples of a live process and its threads, through psutil."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil

from hermes_watchdog.judge.cpu import CpuSnapshot, ThreadTimes


def snapshot(proc: psutil.Process) -> CpuSnapshot:
    """Raises psutil.NoSuchProcess when the process is gone, AccessDenied when it may not be read."""
    with proc.oneshot():
        times = proc.cpu_times()
        try:
            threads = tuple(ThreadTimes(t.id, t.user_time + t.system_time) for t in proc.threads())
        except psutil.AccessDenied:
            threads = ()  # macOS hides other users' threads; the process total still tells
    return CpuSnapshot(time.monotonic(), times.user + times.system, threads, time.time())


def thread_name(pid: int, tid: int) -> str | None:
    """The kernel's name for a thread (Linux only; Python < 3.14 leaves it as the process name)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip() or None
    except OSError:
        return None
