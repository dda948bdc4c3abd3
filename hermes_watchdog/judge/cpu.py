"""CPU arithmetic over samples. Pure: snapshots in, usage out; the clock comes in with the samples.

Two measures. CPU time (psutil, every platform) is what a thread *got*: on a loaded host a spinning
thread gets a small share of a core. CPU demand (Linux schedstat: nanoseconds on the CPU plus
nanoseconds runnable but waiting on the run queue, over elapsed time) is what it *wanted*: a thread that
is runnable all the time has a demand near 1.0 whether or not the scheduler gives it a core, and a thread
sleeping in epoll is not runnable, so its demand stays low.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from hermes_watchdog.facts.cpu import CpuSnapshot, ThreadTimes

DEMAND = "demand"
CPU_TIME = "cpu-time"


    # No process-wide run-queue figure here: the kernel keeps none (/proc/<pid>/schedstat is the main
    # thread's alone), so process demand is summed from the threads in usage().


@dataclass(frozen=True)
class ThreadUsage:
    tid: int
    cores: float  # CPU time over the span, in cores
    on_cpu: float | None = None  # schedstat run time over the span (about ``cores``), None without schedstat
    waiting: float | None = None  # schedstat run-queue wait over the span

    @property
    def demand(self) -> float | None:
        """How much of a core the thread wanted: on the CPU or waiting for one."""
        return None if self.on_cpu is None or self.waiting is None else self.on_cpu + self.waiting


@dataclass(frozen=True)
class CpuUsage:
    span: float  # seconds covered
    cores: float  # process CPU over the span, in cores (1.0 = one core fully busy)
    threads: tuple[ThreadUsage, ...]  # hottest first (by demand when known, else by CPU time)
    intervals: tuple[tuple[float, float], ...]  # (seconds since first sample, cores in that interval)
    # Process demand: the sum over its threads, so above 1 when several are runnable at once.
    demand: float | None = None
    demand_intervals: tuple[tuple[float, float], ...] = ()  # (seconds since first sample, process demand)

    @property
    def hot(self) -> ThreadUsage | None:
        return self.threads[0] if self.threads else None

    @property
    def measure(self) -> str:
        """Which measure judges "pegged": the hottest thread's demand when known, else CPU time."""
        hot = self.hot
        return DEMAND if hot is not None and hot.demand is not None else CPU_TIME

    @property
    def hot_demand(self) -> float | None:
        hot = self.hot
        return hot.demand if hot is not None else None

    @property
    def pegged_value(self) -> float:
        """The figure compared with the CPU threshold. With demand: the hottest thread's demand (one
        thread cannot want more than a core, the process sum can) or the process CPU time, as before."""
        hot = self.hot
        if hot is not None and hot.demand is not None:
            return max(hot.demand, self.cores)
        return max(self.cores, hot.cores if hot else 0.0)


def _rate(delta_cpu: float, delta_t: float) -> float:
    return max(0.0, delta_cpu) / delta_t if delta_t > 0 else 0.0


def _ns_rate(before: int | None, after: int | None, delta_t: float) -> float | None:
    if before is None or after is None:
        return None
    return _rate((after - before) / 1e9, delta_t)


def schedstat_usable(snapshots: Sequence[CpuSnapshot]) -> bool:
    """Run-queue data is trusted only if the threads have it and it moves: a kernel without sched_info
    shows "0 0 0", and CPU time that grows while run time stands still means the file does not follow
    the thread."""
    first, last = snapshots[0], snapshots[-1]
    if not last.threads or any(t.run_ns is None or t.wait_ns is None for t in last.threads):
        return False
    if sum(t.run_ns or 0 for t in last.threads) <= 0:
        return False
    before = {t.tid: t for t in first.threads}
    both = [(before[t.tid], t) for t in last.threads if t.tid in before and before[t.tid].run_ns is not None]
    got = sum(b.cpu - a.cpu for a, b in both)
    ran = sum((b.run_ns or 0) - (a.run_ns or 0) for a, b in both)
    # 0.05 s: well above psutil's 10 ms tick resolution, so a few ticks of jitter do not count.
    return not (got >= 0.05 and ran <= 0)


def usage(snapshots: Sequence[CpuSnapshot]) -> CpuUsage | None:
    """CPU over the snapshots; None when fewer than two (no interval to measure)."""
    if len(snapshots) < 2:
        return None
    first, last = snapshots[0], snapshots[-1]
    span = last.at - first.at
    with_demand = schedstat_usable(snapshots)
    # A thread that appears mid-window is measured from its first sighting (over the whole span).
    first_seen: dict[int, tuple[float, ThreadTimes]] = {}
    for snap in snapshots:
        for t in snap.threads:
            first_seen.setdefault(t.tid, (snap.at, t))
    threads = []
    for t in last.threads:  # a thread gone by the last sample is not measured
        seen_at, seen = first_seen[t.tid]
        if last.at - seen_at <= 0:
            continue
        on_cpu, waiting = _thread_demand(seen, t, span) if with_demand else (None, None)
        threads.append(ThreadUsage(t.tid, _rate(t.cpu - seen.cpu, span), on_cpu, waiting))
    # By what each thread wanted where known: under load the spinning thread gets little CPU time.
    threads.sort(key=lambda u: (u.demand if u.demand is not None else u.cores, u.cores), reverse=True)
    intervals = tuple(
        (round(b.at - first.at, 3), _rate(b.cpu - a.cpu, b.at - a.at))
        for a, b in itertools.pairwise(snapshots)
    )
    demand, demand_intervals = None, ()
    if with_demand:
        demand = sum(u.demand or 0.0 for u in threads)
        demand_intervals = tuple((round(b.at - first.at, 3), _interval_demand(a, b))
                                 for a, b in itertools.pairwise(snapshots))
    return CpuUsage(span, _rate(last.cpu - first.cpu, span), tuple(threads), intervals, demand, demand_intervals)


def _thread_demand(a: ThreadTimes, b: ThreadTimes, delta_t: float) -> tuple[float | None, float | None]:
    """(on CPU, waiting) of one thread between two samples, in cores; (None, None) without data."""
    on_cpu = _ns_rate(a.run_ns, b.run_ns, delta_t)
    waiting = _ns_rate(a.wait_ns, b.wait_ns, delta_t)
    if on_cpu is None or waiting is None:
        return None, None
    if on_cpu + waiting > 1.0:
        # One thread cannot want more than a core: the excess is the kernel booking a wait only when
        # the thread gets the CPU back, plus sampling jitter. Scale both parts down alike.
        scale = 1.0 / (on_cpu + waiting)
        on_cpu, waiting = on_cpu * scale, waiting * scale
    return on_cpu, waiting


def _interval_demand(a: CpuSnapshot, b: CpuSnapshot) -> float:
    """Process demand between two samples: the sum over the threads present in both."""
    before = {t.tid: t for t in a.threads}
    total = 0.0
    for t in b.threads:
        if t.tid in before:
            on_cpu, waiting = _thread_demand(before[t.tid], t, b.at - a.at)
            total += (on_cpu or 0.0) + (waiting or 0.0)
    return total
