"""The event loop, judged from stack samples of its thread. Pure: samples in, findings out.

What defines a wedged asyncio gateway is that its event-loop thread does not get back to its selector.
The loop thread is found by structure, not by name: its stack runs ``run_forever`` -> ``_run_once``. Each
sample of it is one of three kinds, read from the frame ``_run_once`` called:

- ``selector``: ``_run_once`` is in ``<Selector>.select`` (epoll/poll/select/kqueue): the loop waits for I/O;
- ``turning``: ``_run_once`` is in its own bookkeeping (timers, ``_process_events``), or a task is
  suspending or resuming (the innermost frame is asyncio's own: ``sleep``, ``Handle._run``): between steps;
- ``callback``: ``_run_once`` is in ``Handle._run`` and the innermost frame is outside asyncio: a callback
  or a coroutine step is running its own code.

A loop that shows only ``callback`` samples for a long, densely sampled stretch never returned to its
selector in that stretch: a spin if its thread wants the CPU all the time (demand), a blocking call if
it sits off the CPU in one call. One ``selector`` or ``turning`` sample proves the loop turned.

Sampling rate and coverage (what makes "never reached its selector" safe). Bursts of ``py-spy record``
at ``RATE`` Hz are taken back to back while something is suspect; a run of bursts counts as one stretch
only if no gap between them is over ``MAX_GAP`` seconds and each burst holds at least ``MIN_COVERAGE`` of
the samples its length should give (py-spy needs ~0.3 s to attach, so a 3 s burst samples ~2.7 s). A loop
that rests in its selector for 0.5 s in every 4.5 s (the simulated "bursty" gateway) gives about 50
selector samples per visit at 100 Hz, and ``proof`` (8 s) always holds a whole cycle: it is never taken
for starved. Several tasks taking turns show asyncio's own frames as they suspend and resume (``turning``)
and more than one callback: not a busy loop either, which needs one callback the loop never got back
from (``Stretch.one_callback``).

The limit of sampling, and the error a proof from samples alone states: judge/proof.py.

Adapter and function names never decide anything here: they only say where the loop was.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hermes_watchdog.facts.cpu import CpuSnapshot
from hermes_watchdog.facts.loop_samples import (
    Burst,
)
from hermes_watchdog.facts.stacks import Frame
from hermes_watchdog.judge.cpu import usage

MAX_GAP = 1.0  # seconds between two bursts that still count as one stretch (py-spy startup is ~0.3 s)
SAME_SHARE = 0.95  # of a stretch's samples in one frame for "the same call" / "one callback"
MIN_SHARE = 0.02  # cores: a thread that ran less than this over a stretch is not proven to want a core


@dataclass(frozen=True)
class Stretch:
    """The newest run of dense bursts in which the loop never turned, and what it ran meanwhile."""

    since: float  # monotonic start of the run's first burst
    until: float  # end of its newest burst
    samples: int
    bursts: int
    tid: int | None
    same_call: Frame | None  # every callback sample of the run in this one innermost frame, else None
    top: Frame | None  # the innermost frame seen most
    entry: Frame | None  # the callback the loop called, seen most
    one_callback: bool = True  # (nearly) every sample under that one entry frame

    @property
    def seconds(self) -> float:
        return self.until - self.since


@dataclass(frozen=True)
class LoopFindings:
    """The loop over the window: the stretch without its selector, and when it last turned."""

    bursts: tuple[Burst, ...] = ()
    stretch: Stretch | None = None
    last_turned: float | None = None  # monotonic end of the newest burst that saw the loop turn
    turned_samples: int = 0  # selector + turning samples of that burst
    loop_demand: float | None = None  # the loop thread's demand (or CPU time) over the stretch, in cores
    problem: str | None = None  # why there is no stack evidence (py-spy not permitted, no loop thread...)
    hint: str | None = None
    method: str = ""
    loop_on_cpu: float | None = None  # the share of the stretch the loop thread ran (its CPU time, in cores)

    @property
    def has_evidence(self) -> bool:
        return any(b.usable for b in self.bursts)

    @property
    def loop_tid(self) -> int | None:
        """The loop thread: the stretch's, else the newest usable burst's (no stretch yet)."""
        if self.stretch is not None:
            return self.stretch.tid
        return next((b.tid for b in reversed(self.bursts) if b.usable), None)

    def to_dict(self) -> dict[str, Any]:
        s = self.stretch
        return {
            "method": self.method,
            "bursts": len(self.bursts),
            "usable_bursts": sum(1 for b in self.bursts if b.usable),
            "loop_thread": self.loop_tid,
            "off_selector_seconds": round(s.seconds, 1) if s else 0.0,
            "off_selector_samples": s.samples if s else 0,
            "same_call": str(s.same_call) if s and s.same_call else None,
            "top_frame": str(s.top) if s and s.top else None,
            "entry_frame": str(s.entry) if s and s.entry else None,
            "loop_demand": None if self.loop_demand is None else round(self.loop_demand, 3),
            "loop_on_cpu": None if self.loop_on_cpu is None else round(self.loop_on_cpu, 3),
            "last_turned_ago": None,
            "problem": self.problem,
        }


def stretch(bursts: Sequence[Burst]) -> tuple[Stretch | None, Burst | None]:
    """(the newest stretch without the selector, the newest burst that saw the loop turn). A burst that
    failed, found no loop thread or has too few samples ends a stretch: no proof across a hole."""
    run: list[Burst] = []
    turned: Burst | None = None
    for b in reversed(bursts):
        if b.usable and b.turned:
            turned = b
            break
        if not b.usable or b.turned:
            break
        if run and run[-1].start - b.end > MAX_GAP:
            break
        if run and b.tid != run[-1].tid:
            break
        run.append(b)
    if turned is None:
        turned = next((b for b in reversed(bursts) if b.usable and b.turned), None)
    if not run:
        return None, turned
    run.reverse()
    inner: Counter[Frame] = Counter()
    entries: Counter[Frame] = Counter()
    for b in run:
        for f, n in b.innermost:
            inner[f] += n
        for f, n in b.entries:
            entries[f] += n
    total = sum(b.samples for b in run)
    # Frames are compared by function and file, not line: a loop body runs through several lines.
    # "The same call": (nearly) every sample of every burst in one innermost function; a spin moves about.
    # A few strays are allowed: --nonblocking sampling can read a stack mid-change.
    top, top_n = _most(inner)
    same = top if top is not None and top_n >= SAME_SHARE * total else None
    # One callback the loop never got back from: the same entry function (the coroutine or callback the
    # loop called) in (nearly) every sample. Many tasks taking turns show several.
    entry, entry_n = _most(entries)
    one_callback = entry is not None and entry_n >= SAME_SHARE * total
    return Stretch(run[0].start, run[-1].end, total, len(run), run[0].tid, same, top, entry,
                   one_callback), turned


def _most(frames: Counter[Frame]) -> tuple[Frame | None, int]:
    """The function (by name and file) seen most, as its most frequent frame, and its count."""
    by_fn: Counter[tuple[str, str]] = Counter()
    for f, n in frames.items():
        by_fn[(f.function, f.file)] += n
    if not by_fn:
        return None, 0
    key, n = by_fn.most_common(1)[0]
    return max((f for f in frames if (f.function, f.file) == key), key=lambda f: frames[f]), n


def thread_demand(snaps: Sequence[CpuSnapshot], tid: int | None, since: float, until: float) -> float | None:
    """The thread's demand (on CPU + waiting; CPU time without schedstat) between ``since`` and ``until``,
    from the CPU samples that cover it; None when too few samples cover it."""
    return thread_usage(snaps, tid, since, until)[0]


def thread_usage(snaps: Sequence[CpuSnapshot], tid: int | None, since: float, until: float
                 ) -> tuple[float | None, float | None]:
    """(demand, CPU time) of the thread between ``since`` and ``until``, in cores; Nones when unknown."""
    if tid is None:
        return None, None
    inside = [s for s in snaps if since - 1.5 <= s.at <= until + 1.5]
    u = usage(inside)
    if u is None or u.span < 0.5 * (until - since):
        return None, None
    for t in u.threads:
        if t.tid == tid:
            ran = t.cores if t.on_cpu is None else min(t.on_cpu, t.cores)  # two clocks: the lower one
            if t.demand is None or ran < MIN_SHARE:
                # Run-queue wait alone proves no want: a thread that wants a core gets at least 1/N of one
                # under a fair scheduler, and a sleeping thread can be booked wait it never had (a ptrace
                # stop wakes it; a full CI run once showed a loop in time.sleep at 0.43 core of "demand").
                return ran, t.cores  # without schedstat (no demand) there is no run time either: CPU time
            return t.demand, t.cores
    return None, None


def findings(bursts: Sequence[Burst], snaps: Sequence[CpuSnapshot]) -> LoopFindings:
    if not bursts:
        return LoopFindings()
    st, turned = stretch(bursts)
    last = bursts[-1]
    problem, hint = (last.error, last.hint) if last.error else (None, None)
    if problem is None and not last.loop_found:
        problem = "no thread runs an asyncio event loop (run_forever/_run_once) in the samples"
    demand, on_cpu = thread_usage(snaps, st.tid, st.since, st.until) if st else (None, None)
    return LoopFindings(tuple(bursts), st, turned.end if turned else None, turned.selector + turned.turning
                        if turned else 0, demand, problem, hint, last.method, on_cpu)
