"""Alive but deaf, as read from the process itself: its descriptors against its limit, its half-closed
sockets and how long each has been so, memory over a long stretch (observe/deaf.py reads and keeps them;
judge/descriptors.py, halfclosed.py and growth.py are the rules)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hermes_watchdog.facts.threads import WorkersSample

# Kinds of descriptor, by what /proc/<pid>/fd/<n> links to.
SOCKETS = "sockets"


FILES = "files"


PIPES = "pipes"


OTHER = "other"


@dataclass(frozen=True)
class Descriptors:
    """The gateway's open descriptors against its soft RLIMIT_NOFILE."""

    open: int
    soft_limit: int | None  # None: not readable (macOS, another user) or unlimited: no verdict
    kinds: dict[str, int] | None = None  # sockets/files/pipes/other, when classified (near the limit, diagnose)
    top_paths: tuple[tuple[str, int], ...] = ()  # files held most often, most first (not redacted here)

    @property
    def ratio(self) -> float | None:
        return self.open / self.soft_limit if self.soft_limit else None

    def to_dict(self) -> dict[str, Any]:
        return {"open": self.open, "soft_limit": self.soft_limit,
                "ratio": None if self.ratio is None else round(self.ratio, 3), "kinds": self.kinds,
                "top_paths": [{"path": p, "count": n} for p, n in self.top_paths]}


@dataclass(frozen=True)
class HalfClosed:
    """One TCP socket of the gateway in CLOSE_WAIT: the peer closed, the gateway never did."""

    local: str  # "127.0.0.1:5123"
    remote: str
    seconds: float  # how long it has been seen in CLOSE_WAIT (0: first seen in this read)

    def to_dict(self) -> dict[str, Any]:
        return {"local": self.local, "remote": self.remote, "seconds": round(self.seconds, 1)}


@dataclass(frozen=True)
class Sockets:
    half_closed: tuple[HalfClosed, ...]
    counts: tuple[tuple[float, int], ...] = ()  # (monotonic, CLOSE_WAIT count) per read, oldest first
    established: int | None = None  # for context: a deaf gateway often holds no live connection at all

    @property
    def oldest(self) -> float:
        return max((h.seconds for h in self.half_closed), default=0.0)


@dataclass(frozen=True)
class DeafSeen:
    fds: Descriptors | None = None
    sockets: Sockets | None = None
    rss: tuple[tuple[float, int], ...] = ()  # (monotonic, bytes), thinned, kept --memory-growth-for and more
    mem_available: int | None = None  # the machine's, bytes
    mem_total: int | None = None
    workers: tuple[WorkersSample, ...] = ()  # the agent pool in all-thread dumps, oldest first (facts/threads.py)


@dataclass(frozen=True)
class DeafThresholds:
    fd_alert: float = 0.8  # open descriptors / soft RLIMIT_NOFILE
    fd_restart: float = 0.95
    half_closed_after: float = 300.0  # seconds a socket may sit in CLOSE_WAIT
    growth_rate: float = (1 << 30) / 3600.0  # bytes of RSS per second (1 GiB/h)
    growth_for: float = 600.0  # seconds the growth must be sustained
    workers_busy_after: float = 180.0  # seconds every agent worker may be busy with no room for another


GROWTH_SPAN = 120.0  # seconds the series must cover (at most half_closed_after)


Key = tuple[str, str]


def track(first_seen: Mapping[Key, float], current: Iterable[Key], now: float) -> dict[Key, float]:
    """When each socket now in CLOSE_WAIT was first seen so (monotonic): kept across reads while it stays,
    forgotten once it leaves (closed, or gone)."""
    return {k: first_seen.get(k, now) for k in current}


def slope(samples: list[tuple[float, int]]) -> float | None:
    """Least-squares bytes per second; None for fewer than 2 distinct times."""
    if len(samples) < 2:
        return None
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if var <= 0:
        return None
    return sum((t - mt) * (r - mr) for t, r in samples) / var
