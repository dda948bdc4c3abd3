"""Where the loop's stack bursts come from, by ``--stack-with``: ``py-spy record`` (100 Hz, needs ptrace
rights), or the hook's stack thread in the gateway (no root, no signal: patches/stack_thread.py, its marker
and its peer proven before every request), or nothing.

A hook burst is ``HOOK_RATE`` dumps a second: each takes the GIL from the loop for the length of a dump, so
it is sparser than py-spy. At 10 Hz a 0.5 s visit to the selector is still about 5 samples, and the proof
window still holds a whole cycle of a loop that reaches its selector once in every few seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from hermes_watchdog.facts.identity import Identity
from hermes_watchdog.facts.loop_samples import MIN_SAMPLES, RATE, Burst, StackSample, classify
from hermes_watchdog.observe import pyspy_record, stack_capture

HOOK_RATE = 10.0
# A background burst only has to see whether the loop is in its selector or stuck: 25 Hz does that, and
# the cost of a burst is mostly py-spy's start. Dense bursts take 100 Hz (judge/loop.py says why).
BACKGROUND_RATE = 25
BurstFn = Callable[[int, int, int | None, bool, threading.Event], Burst]  # (pid, s, main thread, dense, stop)


def hook_burst(ident: Identity, home: Path) -> BurstFn:
    def take(pid: int, seconds: int, main_tid: int | None, dense: bool = True,
             stop: threading.Event | None = None) -> Burst:
        start = time.monotonic()
        # Never fewer dumps than a burst needs to count (a 1 s background burst would give 5).
        count = max(MIN_SAMPLES, round(seconds * HOOK_RATE))
        spread = count / HOOK_RATE
        dumps, reason, hint = stack_capture.HookStacks().dumps(ident, home, count, spread, spread + 10.0, stop)
        end = time.monotonic()
        if not dumps:
            return Burst(start, end, "hook", error=reason or "no dump", hint=hint)
        samples = [StackSample(t.os_tid, t.frames, 1, t.name) for d in dumps for t in d.threads]
        return classify(samples, start, end, "hook", main_tid, rate=len(dumps) / max(0.5, end - start))
    return take


def burst_source(method: str, ident: Identity, home: Path,
                 dense_rate: Callable[[], int] | None = None) -> BurstFn | None:
    """None: no loop stacks (``--stack-with none``). ``dense_rate``: py-spy's rate while dense, asked per
    burst (judge/proof.py: higher where no loop-turn counter exists)."""
    if method == "none":
        return None
    if method == "hook":
        return hook_burst(ident, home)
    kept = {"rate": float("inf")}  # what py-spy achieved in the last dense burst (none yet: ask for all)

    def spy(pid: int, seconds: int, main_tid: int | None, dense: bool = True,
            stop: threading.Event | None = None) -> Burst:
        if not dense:
            return pyspy_record.burst(pid, seconds, main_tid, rate=BACKGROUND_RATE, stop=stop)
        # py-spy takes rate x seconds samples however long that takes: on a loaded machine it wakes late
        # and a 1000 Hz burst can last ten times its length. Ask for what it achieved last time (with room
        # to climb), never less than RATE, so a burst ends about when asked.
        wanted = dense_rate() if dense_rate is not None else RATE
        rate = int(max(RATE, min(wanted, 1.5 * kept["rate"])))
        b = pyspy_record.burst(pid, seconds, main_tid, rate=rate, stop=stop)
        kept["rate"] = b.samples / (b.end - b.start) if b.usable and b.end > b.start else RATE
        return b

    if method == "py-spy":
        return spy
    hook = hook_burst(ident, home)

    def auto(pid: int, seconds: int, main_tid: int | None, dense: bool = True,
             stop: threading.Event | None = None) -> Burst:
        b = spy(pid, seconds, main_tid, dense, stop)
        if b.error and b.hint and stack_capture.hook_marker(ident, home)[0] is not None:
            return hook(pid, seconds, main_tid, dense, stop)  # py-spy may not attach here; the hook can
        return b
    return auto
