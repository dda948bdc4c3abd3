"""gil-held: the event loop does not turn, off the CPU, because another thread of the gateway holds the GIL
inside one long call (upstream #32079: a regex; #58576: 51 s stalls). Pure.

The loop thread then waits for the GIL right after its selector returns, so its stack samples show it in the
selector: alone they would read as an idle loop. All-thread dumps (py-spy marks the thread holding the GIL)
tell the two apart: when every dump since some moment shows the same other thread holding the GIL in the same
call, and the loop thread never, the selector samples after that moment are not turns (``story``). The loop
rules then judge as for a frozen loop (a stalled counter, a stale heartbeat written on the loop, a silent
loop-tick socket), and name the holder instead of a call on the loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hermes_watchdog.facts.threads import GilSample

MIN_DUMPS = 3  # dumps in a row that show the same holder
# The kernel's witness: a thread waiting for the GIL wakes every 5 ms (CPython's switch interval) to ask the
# holder to drop it, about 200 times a second (measured here: 197/s); an idle loop wakes for its events only.
WAKES = 50.0  # per second, the loop thread's, over the story (where the kernel counts them: Linux)
BACK = 5.0  # seconds: the story began before its first dump (the dumps start with the suspicion)
GAP = 10.0  # seconds between two dumps beyond which they are not one run (dumps come every 2 s while suspect)


@dataclass(frozen=True)
class GilStory:
    since: float  # monotonic: the first dump of the run
    last: float  # the newest
    dumps: int
    tid: int | None
    name: str
    call: str

    wakes: float | None = None  # the loop thread's wake-ups a second over the story (None: not counted)

    def describe(self) -> str:
        woke = "" if self.wakes is None else (f"; the event-loop thread woke {self.wakes:.0f} times a second meanwhile,"
                                              " asking for the GIL it did not get")
        return (f"thread {self.name} (tid {self.tid}) held the GIL in {self.call} in all {self.dumps} all-thread "
                f"dumps over {self.last - self.since:.0f} s, the event-loop thread in none{woke}")

    def to_dict(self) -> dict[str, Any]:
        return {"tid": self.tid, "thread": self.name, "call": self.call, "dumps": self.dumps,
                "seconds": round(self.last - self.since, 1),
                "loop_wakes_per_second": None if self.wakes is None else round(self.wakes, 1)}


def story(samples: Sequence[GilSample], now: float | None, fresh: float,
          wakes: Sequence[tuple[float, int]] = ()) -> GilStory | None:
    """The newest run of dumps in which one other thread held the GIL in one call; None when shorter than
    MIN_DUMPS, when its newest dump is older than ``fresh`` seconds, or when the loop thread's wake-ups
    (``wakes``: (monotonic, schedstat slices) of that thread, where counted) were too few for a thread
    waiting for the GIL."""
    run: list[GilSample] = []
    for s in reversed(samples):
        h = s.holder
        if h is None or s.loop_has_gil or s.loop_tid is None:
            break
        if run and (run[0].holder is None or h[0] != run[0].holder[0] or h[2] != run[0].holder[2]
                    or run[0].at - s.at > GAP):
            break
        run.insert(0, s)
    if len(run) < MIN_DUMPS or (now is not None and now - run[-1].at > fresh):
        return None
    h = run[-1].holder
    assert h is not None
    rate = wake_rate(wakes, run[0].at, run[-1].at)
    if rate is not None and rate < WAKES:
        return None
    return GilStory(run[0].at, run[-1].at, len(run), h[0], h[1], h[2], rate)


def wake_rate(wakes: Sequence[tuple[float, int]], since: float, until: float) -> float | None:
    """Wake-ups a second between the samples closest to ``since`` and ``until``; None under 2 s of them."""
    inside = [w for w in wakes if since - 1.5 <= w[0] <= until + 1.5]
    if len(inside) < 2 or inside[-1][0] - inside[0][0] < 2.0:
        return None
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])
