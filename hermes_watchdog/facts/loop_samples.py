"""Samples of a gateway's threads and what one burst of them says about its event-loop thread.

The loop thread is found by structure: its stack runs ``run_forever`` -> ``_run_once``. Each sample of it is
read by the frame ``_run_once`` called: ``selector`` (waiting for I/O), ``turning`` (the loop's own
bookkeeping, or a task suspending or resuming in asyncio's frames) or ``callback`` (a callback or a
coroutine step running its own code). That is a reading of where the loop was, with no threshold in it;
what a run of bursts means is judge/loop.py's."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hermes_watchdog.facts.stacks import Frame

RATE = 100  # samples per second of a py-spy record burst


MIN_SAMPLES = 10  # of the loop thread in a burst, for the burst to count


MIN_COVERAGE = 0.5  # samples / (rate x burst seconds): less means py-spy itself was starved or slow to attach


SELECTOR = "selector"


TURNING = "turning"


CALLBACK = "callback"


_LOOP_FN = re.compile(r"(?:^|\.)(?:run_forever|_run_once)$")


_RUN_ONCE = re.compile(r"(?:^|\.)_run_once$")


_SELECT_FN = re.compile(r"(?:^|\.)(?:select|poll|epoll|kqueue|control|_poll|_select)$")


_HANDLE_RUN = re.compile(r"(?:^|\.)_run$")


_ASYNCIO_PART = re.compile(r"(?:^|/)asyncio/")


@dataclass(frozen=True)
class StackSample:
    """One distinct stack of one thread in a burst, and how many samples showed it."""

    tid: int | None
    frames: tuple[Frame, ...]  # innermost first
    count: int = 1
    thread_name: str | None = None


def is_loop_stack(frames: Sequence[Frame]) -> bool:
    return any(_LOOP_FN.search(f.function) for f in frames)


def kind_of(frames: Sequence[Frame]) -> str | None:
    """selector / turning / callback for a loop thread's stack; None if it is not in ``_run_once``."""
    for i, f in enumerate(frames):
        if _RUN_ONCE.search(f.function):
            if i == 0:
                return TURNING
            child = frames[i - 1]  # what _run_once is doing now
            if _SELECT_FN.search(child.function):
                return SELECTOR
            if _HANDLE_RUN.search(child.function) or not _ASYNCIO_PART.search(child.file):
                # Innermost in asyncio itself (a task suspending or resuming: ``sleep``, ``__sleep0``,
                # ``Handle._run`` with no coroutine frame above it) is the loop between two steps: it turns.
                # A callback that never returns sits in its own code, never there.
                return TURNING if _ASYNCIO_PART.search(frames[0].file) else CALLBACK
            return TURNING  # asyncio's own bookkeeping between callbacks (timers, call_soon, ...)
    return None


def _callback_frames(frames: Sequence[Frame]) -> tuple[Frame | None, Frame | None]:
    """(entry, innermost) of the running callback: the frame just above ``Handle._run`` (the coroutine
    or callback the loop called) and the innermost frame (where it is now)."""
    for i, f in enumerate(frames):
        if _RUN_ONCE.search(f.function):
            above = list(frames[:i])
            while above and (_HANDLE_RUN.search(above[-1].function) and _ASYNCIO_PART.search(above[-1].file)):
                above.pop()
            if not above:
                return None, None
            return above[-1], above[0]
    return None, None


@dataclass(frozen=True)
class Burst:
    """What one burst of samples says about the loop thread."""

    start: float  # monotonic
    end: float
    method: str  # "py-spy record" ...
    loop_found: bool = False
    tid: int | None = None
    thread_name: str | None = None
    samples: int = 0  # of the loop thread
    selector: int = 0
    turning: int = 0
    callback: int = 0
    innermost: tuple[tuple[Frame, int], ...] = ()  # callback samples by innermost frame, most first
    entries: tuple[tuple[Frame, int], ...] = ()  # callback samples by entry frame, most first
    error: str | None = None  # the burst failed (py-spy could not attach, ...)
    hint: str | None = None
    rate: float = RATE  # samples a second this burst was taken at

    @property
    def coverage(self) -> float:
        """Samples over what ``RATE`` (or a lower rate asked for) would give. A faster burst that falls
        behind (py-spy wakes late on a loaded machine) still counts while it samples at least that well:
        the proof counts its samples, it does not assume the rate."""
        seconds = self.end - self.start
        return self.samples / (min(self.rate, RATE) * seconds) if seconds > 0 else 0.0

    @property
    def usable(self) -> bool:
        return (self.error is None and self.loop_found and self.samples >= MIN_SAMPLES
                and self.coverage >= MIN_COVERAGE)

    @property
    def turned(self) -> bool:
        return self.selector + self.turning > 0

    def to_dict(self) -> dict[str, Any]:
        return {"start": round(self.start, 2), "end": round(self.end, 2), "method": self.method,
                "loop_found": self.loop_found, "tid": self.tid, "samples": self.samples,
                "selector": self.selector, "turning": self.turning, "callback": self.callback,
                "innermost": [[str(f), n] for f, n in self.innermost[:3]], "error": self.error}


def classify(samples: Sequence[StackSample], start: float, end: float, method: str,
             main_tid: int | None = None, rate: float = RATE) -> Burst:
    """Find the loop thread by structure and count its samples by kind. Several loop threads: the
    main thread's loop (``main_tid``: the gateway runs its loop there), else the most sampled."""
    per_thread: dict[int | None, list[StackSample]] = {}
    for s in samples:
        if is_loop_stack(s.frames):
            per_thread.setdefault(s.tid, []).append(s)
    if not per_thread:
        return Burst(start, end, method, error=None if samples else "no samples", rate=rate)
    tid = main_tid if main_tid in per_thread else max(per_thread, key=lambda t: sum(x.count for x in per_thread[t]))
    counts: Counter[str] = Counter()
    inner: Counter[Frame] = Counter()
    entries: Counter[Frame] = Counter()
    name = None
    for s in per_thread[tid]:
        name = name or s.thread_name
        kind = kind_of(s.frames)
        if kind is None:
            continue  # still starting or stopping the loop (run_forever without _run_once)
        counts[kind] += s.count
        if kind == CALLBACK:
            entry, innermost = _callback_frames(s.frames)
            if innermost is not None:
                inner[innermost] += s.count
            if entry is not None:
                entries[entry] += s.count
    return Burst(start, end, method, True, tid, name, sum(counts.values()), counts[SELECTOR], counts[TURNING],
                 counts[CALLBACK], tuple(inner.most_common()), tuple(entries.most_common()), rate=rate)
