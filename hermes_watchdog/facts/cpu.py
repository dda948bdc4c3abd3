"""CPU samples as observe/sampler.py takes them: per-process and per-thread CPU time and run-queue demand
at one instant (judge/cpu.py turns two or more into usage)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ThreadTimes:
    tid: int
    cpu: float  # user + system seconds since the thread started
    run_ns: int | None = None  # schedstat: ns on a CPU (None: not read, e.g. not Linux)
    wait_ns: int | None = None  # schedstat: ns runnable, waiting on a run queue
    slices: int | None = None  # schedstat: times put on a CPU (a thread waiting for the GIL wakes every 5 ms)


@dataclass(frozen=True)
class CpuSnapshot:
    at: float  # monotonic seconds
    cpu: float  # process user + system seconds
    threads: tuple[ThreadTimes, ...] = ()
    wall: float = 0.0  # epoch seconds, for reports only
    rss: int | None = None  # resident memory, bytes (read with the CPU times: one more field of one file)
