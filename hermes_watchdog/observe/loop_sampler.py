"""Background threads per watched gateway: loop-stack bursts when the plan says so, loop-tick socket
probes while suspect, watches of the loop thread's system calls when the judge asks for one, and
all-thread dumps when the tick asks for one (observe/thread_dumps.py).

Bursts run back to back while the watch is suspect, so the stretches they cover have no holes a tick
would leave; the daemon's tick only updates the plan and drains what is finished, never waits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from hermes_watchdog.facts.loop_samples import Burst
from hermes_watchdog.facts.plan import SamplingPlan
from hermes_watchdog.facts.readings import SyscallProbe, TickProbe
from hermes_watchdog.facts.stacks import Dump
from hermes_watchdog.observe import syscalls

BurstFn = Callable[[int, int, int | None, bool, threading.Event], Burst]  # (pid, s, main thread, dense, stop)
ProbeFn = Callable[[], TickProbe | None]
TraceFn = Callable[[int], tuple[SyscallProbe | None, str]]  # (loop thread) -> (what was seen, why not)
DumpFn = Callable[[], tuple[Dump | None, str | None]]  # one all-thread dump (observe/thread_dumps.py)
PROBE_EVERY = 10.0  # seconds between loop-tick probes while suspect: a witness, not worth every tick
MIN_BACKOFF = 30.0  # seconds before retrying bursts that failed for a lasting reason, --stack-every 0 too


class LoopSampler:
    def __init__(self, pid: int, plan: SamplingPlan, take: BurstFn | None, probe: ProbeFn | None = None,
                 trace: TraceFn | None = None, dump: DumpFn | None = None) -> None:
        """``take`` None: no loop stacks (``--stack-with none``); the socket is still probed."""
        self.pid = pid
        # The main thread's current plan: it replaces this reference (never changes the plan itself), and
        # this sampler's threads read it once per decision.
        self.plan = plan
        self._last_start: float | None = None  # these two only the burst thread writes
        self._backoff_until = 0.0
        self._take = take
        self._probe = probe
        self._lock = threading.Lock()
        self._bursts: list[Burst] = []
        self._probes: list[TickProbe] = []
        self._trace = trace
        self._traces: list[SyscallProbe] = []
        self._trace_tid: int | None = None  # a watch asked for (the main thread sets it, the thread clears it)
        self._trace_wake = threading.Event()
        self._watching = False  # a watch runs now: asked again meanwhile is not asked twice
        self.trace_problem: str | None = None  # why the last watch could not be made, if it could not
        self._dump = dump
        self._dumps: list[tuple[float, Dump | None, str | None]] = []  # (monotonic, dump, why none)
        self._dump_wake = threading.Event()
        self._dumping = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads = [] if take is None else [
            threading.Thread(target=self._bursting, name=f"loop-stacks-{pid}", daemon=True)]
        if probe is not None:
            self._threads.append(threading.Thread(target=self._probing, name=f"loop-tick-{pid}", daemon=True))
        if trace is not None:
            self._threads.append(threading.Thread(target=self._tracing, name=f"loop-syscalls-{pid}", daemon=True))
        if dump is not None:
            self._threads.append(threading.Thread(target=self._dumps_thread, name=f"thread-dumps-{pid}", daemon=True))
        for t in self._threads:
            t.start()

    def poke(self) -> None:
        """The plan turned dense: start the next burst now rather than at the next check."""
        self._wake.set()

    def trace(self, tid: int) -> None:
        """Watch the loop thread's system calls once, soon (a watch in progress is not repeated)."""
        if self._trace is not None and not self._watching:
            self._trace_tid = tid
            self._trace_wake.set()

    def dump(self) -> None:
        """Take one all-thread dump, soon (one in progress is not repeated)."""
        if self._dump is not None and not self._dumping:
            self._dump_wake.set()

    def drain(self) -> tuple[list[Burst], list[TickProbe], list[SyscallProbe]]:
        with self._lock:
            bursts, self._bursts = self._bursts, []
            probes, self._probes = self._probes, []
            traces, self._traces = self._traces, []
        return bursts, probes, traces

    def drain_dumps(self) -> list[tuple[float, Dump | None, str | None]]:
        with self._lock:
            dumps, self._dumps = self._dumps, []
        return dumps

    def close(self, wait: float = 0.0) -> None:
        """Stop; ``wait`` seconds at most for a burst in progress to end (and remove its temp files)."""
        self._stop.set()
        self._wake.set()
        self._trace_wake.set()
        self._dump_wake.set()
        deadline = time.monotonic() + wait
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def _bursting(self) -> None:
        while not self._stop.is_set():
            now, plan = time.monotonic(), self.plan
            seconds = plan.due(now, self._last_start, self._backoff_until)
            if seconds is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            self._last_start = now
            assert self._take is not None
            try:
                b = self._take(self.pid, round(seconds), self.pid, plan.dense(now), self._stop)
            except Exception as exc:  # a full /tmp, no file descriptors: said as a failed burst, not a dead thread
                b = Burst(now, time.monotonic(), "stack sampler", error=f"{type(exc).__name__}: {exc}")
            if self._stop.is_set():
                return
            with self._lock:
                self._bursts.append(b)
            if b.error and (b.hint or not b.loop_found):
                # Not permitted (ptrace), no hook, nothing to sample: retrying at once changes nothing.
                # Back off to the background pace; the suspicion itself stays (the probe thread uses it).
                self._backoff_until = time.monotonic() + max(self.plan.background, MIN_BACKOFF)

    def _probing(self) -> None:
        assert self._probe is not None
        while not self._stop.is_set():
            if self.plan.dense(time.monotonic()):
                try:
                    tick = self._probe()
                except OSError:
                    tick = None  # no descriptors left, ...: no answer is not an answer
                if tick is not None:
                    with self._lock:
                        self._probes.append(tick)
                self._stop.wait(PROBE_EVERY)
            else:
                self._stop.wait(1.0)

    def _tracing(self) -> None:
        assert self._trace is not None
        while not self._stop.is_set():
            self._trace_wake.wait()
            self._trace_wake.clear()
            tid, self._trace_tid = self._trace_tid, None
            if tid is None or self._stop.is_set():
                continue
            self._watching = True
            try:
                got, why = self._trace(tid)
            except OSError as exc:  # no descriptors, no memory for a process: no watch this time
                got, why = None, f"cannot watch system calls: {exc.strerror or exc}"
            finally:
                self._watching = False
            self.trace_problem = None if got is not None else why
            if got is not None:
                with self._lock:
                    self._traces.append(got)
            elif syscalls.lasting(why):
                self._stop.wait(MIN_BACKOFF)  # a lasting reason: asking again at once changes nothing

    def _dumps_thread(self) -> None:
        assert self._dump is not None
        while not self._stop.is_set():
            self._dump_wake.wait()
            self._dump_wake.clear()
            if self._stop.is_set():
                return
            self._dumping = True
            try:
                got, why = self._dump()
            except OSError as exc:  # no descriptors for py-spy's pipes: no dump this time
                got, why = None, f"cannot dump the threads: {exc.strerror or exc}"
            finally:
                self._dumping = False
            with self._lock:
                self._dumps.append((time.monotonic(), got, why))
