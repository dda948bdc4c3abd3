"""CPU arithmetic over samples. Pure: snapshots in, usage out; the clock comes in with the samples."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ThreadTimes:
    tid: int
    cpu: float  # user + system seconds since the thread started


@dataclass(frozen=True)
class CpuSnapshot:
    at: float  # monotonic seconds
    cpu: float  # process user + system seconds
    threads: tuple[ThreadTimes, ...] = ()
    wall: float = 0.0  # epoch seconds, for reports only


@dataclass(frozen=True)
class ThreadUsage:
    tid: int
    cores: float


@dataclass(frozen=True)
class CpuUsage:
    span: float  # seconds covered
    cores: float  # process CPU over the span, in cores (1.0 = one core fully busy)
    threads: tuple[ThreadUsage, ...]  # hottest first
    intervals: tuple[tuple[float, float], ...]  # (seconds since first sample, cores in that interval)

    @property
    def hot(self) -> ThreadUsage | None:
        return self.threads[0] if self.threads else None


def _rate(delta_cpu: float, delta_t: float) -> float:
    return max(0.0, delta_cpu) / delta_t if delta_t > 0 else 0.0


def usage(snapshots: Sequence[CpuSnapshot]) -> CpuUsage | None:
    """CPU over the snapshots; None when fewer than two (no interval to measure)."""
    if len(snapshots) < 2:
        return None
    first, last = snapshots[0], snapshots[-1]
    span = last.at - first.at
    # A thread that appears mid-window is measured from its first sighting.
    first_seen: dict[int, tuple[float, float]] = {}
    for snap in snapshots:
        for t in snap.threads:
            first_seen.setdefault(t.tid, (snap.at, t.cpu))
    threads = []
    for t in last.threads:
        seen_at, seen_cpu = first_seen[t.tid]
        if last.at - seen_at > 0:
            threads.append(ThreadUsage(t.tid, _rate(t.cpu - seen_cpu, span)))
    threads.sort(key=lambda u: u.cores, reverse=True)
    intervals = tuple(
        (round(b.at - first.at, 3), _rate(b.cpu - a.cpu, b.at - a.at))
        for a, b in itertools.pairwise(snapshots)
    )
    return CpuUsage(span, _rate(last.cpu - first.cpu, span), tuple(threads), intervals)
