"""The gateway's open descriptors and its soft RLIMIT_NOFILE. I/O only; judge/descriptors.py decides.

Cost (Linux): ``count`` is one listdir of /proc/<pid>/fd (tens of microseconds for a few hundred
descriptors), every tick; ``soft_limit`` one prlimit(2) call, every minute; ``classify`` one readlink per
descriptor, only near the limit (or in ``diagnose``). Elsewhere psutil's ``num_fds``; no limit is read for
another process off Linux, so no verdict there.
"""

from __future__ import annotations

import os
import sys
from collections import Counter

import psutil

from hermes_watchdog.facts.deaf import FILES, OTHER, PIPES, SOCKETS

LINUX = sys.platform.startswith("linux")
TOP = 5


def count(pid: int) -> int | None:
    """Open descriptors; None when they cannot be listed (gone, another user's)."""
    try:
        if LINUX:
            return len(os.listdir(f"/proc/{pid}/fd"))
        return psutil.Process(pid).num_fds()
    except (OSError, psutil.Error):
        return None


def soft_limit(pid: int) -> int | None:
    """The soft RLIMIT_NOFILE of ``pid``; None when unreadable or unlimited."""
    if not hasattr(psutil.Process, "rlimit"):
        return None
    try:
        soft, _hard = psutil.Process(pid).rlimit(psutil.RLIMIT_NOFILE)
    except (OSError, psutil.Error):
        return None
    return None if soft == psutil.RLIM_INFINITY or soft <= 0 else int(soft)


def classify(pid: int, top: int = TOP) -> tuple[dict[str, int], tuple[tuple[str, int], ...]] | None:
    """Counts by kind and the file paths held most often (the same path open many times is the classic
    leak: 750 descriptors on ``state.db``, upstream #83512). Linux only; None elsewhere or when unreadable.
    Paths are returned as they are: the record's redactor shortens the home and hides secrets."""
    if not LINUX:
        return None
    base = f"/proc/{pid}/fd"
    try:
        names = os.listdir(base)
    except OSError:
        return None
    kinds: Counter[str] = Counter({SOCKETS: 0, FILES: 0, PIPES: 0, OTHER: 0})
    paths: Counter[str] = Counter()
    for name in names:
        try:
            target = os.readlink(f"{base}/{name}")
        except OSError:
            continue  # closed since the listing
        if target.startswith("socket:"):
            kinds[SOCKETS] += 1
        elif target.startswith("pipe:"):
            kinds[PIPES] += 1
        elif target.startswith("/"):
            kinds[FILES] += 1
            paths[target.removesuffix(" (deleted)")] += 1
        else:
            kinds[OTHER] += 1  # anon_inode:[eventpoll], [eventfd], ...
    return dict(kinds), tuple(paths.most_common(top))
