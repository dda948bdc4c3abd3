"""The loop-turn counter as a witness: pure rules over its reads (observe/loop_turns.py).

The fix pack's hook counts every iteration of the gateway's main event loop; a timer on that loop turns it
at least once a ``period`` (1 s) and stamps the time. The stall (seconds without a turn) is known from
below two ways: no new stamp means no turn since stamp + period, and reads of an unchanged count mean no
turn since the first of them. That makes it the first witness, and an exact one:

- a counter that advanced during a stretch: the loop turned in it. It vetoes ``busy-loop`` and
  ``loop-frozen`` outright, whatever the stack samples and the CPU say;
- a counter still for ``--loop-proof`` seconds (8; never less than ``STILL_PROOF``, the counter's own
  resolution) while the loop thread wanted a core (demand >= the CPU threshold over that time): the loop is
  starved by a callback that never yields. No statistics: the loop itself says it did not turn, the
  scheduler says its thread wanted the CPU. (3 s would do as proof; the proof window keeps a legitimate
  callback that computes a few seconds on a loaded machine from being killed for it);
- the stall is the exact measure ``loop-frozen`` needs (``--frozen-after``), to within a second.

Stack samples still name the call; the loop-tick socket, where a release serves one, is the second witness.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hermes_watchdog.facts.cpu import CpuSnapshot
from hermes_watchdog.facts.readings import TurnSample
from hermes_watchdog.judge.loop import thread_demand

STILL_PROOF = 3.0  # seconds still, at least, the loop thread wanting a core, that prove a starved loop
DEMAND_OVER = 1.5  # seconds of CPU samples within the still time, at least, to judge the thread's demand
SUSPECT_AFTER = 2.0  # seconds since the loop timer's stamp (1 s when healthy) that make the watch suspect


@dataclass(frozen=True)
class TurnFindings:
    """The counter over the window: its reads, oldest first, and the loop thread's demand while still."""

    samples: tuple[TurnSample, ...] = ()
    still_demand: float | None = None  # the loop thread's demand since its newest turn, in cores

    @property
    def newest(self) -> TurnSample | None:
        return self.samples[-1] if self.samples else None

    @property
    def live(self) -> bool:
        """The counter describes a running loop (a loop has started and been counted)."""
        n = self.newest
        return n is not None and n.tid is not None and n.turns > 0

    @property
    def stall(self) -> float:
        """Seconds the loop has surely not turned, as of the newest read (a lower bound, within a period
        or a read interval of the truth)."""
        n = self.newest
        if n is None:
            return 0.0
        first = next(s for s in self.samples if s.turns == n.turns)  # counts only grow: the first read of it
        return max(0.0, n.at - n.last - n.period, n.at - first.at)

    def turned_after(self, since: float) -> bool:
        """Did the loop (surely) turn after ``since`` (monotonic)? A newer stamp, or a newer count."""
        n = self.newest
        if not self.live or n is None:
            return False
        if n.last > since:
            return True
        before = [s for s in self.samples if s.at <= since]
        return bool(before) and n.turns > before[-1].turns

    def turns_over(self, seconds: float) -> tuple[int, float] | None:
        """(turns, seconds) over about the last ``seconds``, from the oldest read in that span."""
        n = self.newest
        if n is None or not self.live:
            return None
        base = next((s for s in self.samples if s.at >= n.at - seconds and s.at < n.at), None)
        if base is None:
            return None
        return n.turns - base.turns, n.at - base.at

    def describe(self, seconds: float = 10.0) -> str:
        """The strongest sentence the watchdog can print: how often the loop turned, counted by itself."""
        n = self.newest
        if n is None or not self.live:
            return "the loop-turn counter has not seen the loop run yet"
        if self.stall >= n.period:  # a healthy loop turns at least once a period (the hook's timer)
            return f"the loop turned 0 times in {self.stall:.0f} s (loop-turn counter)"
        over = self.turns_over(seconds)
        ago = f"its timer turned {n.stall:.1f} s ago"
        if over is None or over[1] <= 0:
            return f"the loop-turn counter: {n.turns} turns so far, {ago}"
        turns, span = over
        return f"the loop turned {turns} times in {span:.0f} s ({turns / span:.0f}/s, loop-turn counter; {ago})"

    def starved(self, cpu: float, proof: float = STILL_PROOF) -> bool:
        """Still for ``proof`` seconds (STILL_PROOF at least) while its thread wanted ``cpu`` core or more."""
        return (self.live and self.stall >= max(STILL_PROOF, proof) and self.still_demand is not None
                and self.still_demand >= cpu)

    def to_dict(self) -> dict[str, Any]:
        n = self.newest
        over = self.turns_over(10.0)
        return {"live": self.live, "turns": n.turns if n else None, "loop_thread": n.tid if n else None,
                "stall_seconds": round(self.stall, 2) if n else None,
                "turns_per_second": round(over[0] / over[1], 1) if over and over[1] > 0 else None,
                "still_demand": None if self.still_demand is None else round(self.still_demand, 3)}


def findings(samples: Sequence[TurnSample], snaps: Sequence[CpuSnapshot]) -> TurnFindings | None:
    """None: no counter read in the window (no fix pack, or not armed in this gateway)."""
    if not samples:
        return None
    n = samples[-1]
    demand = None
    stall = TurnFindings(tuple(samples)).stall
    if n.tid is not None and stall >= STILL_PROOF:
        # Over the still time the CPU samples cover (a diagnosis samples two seconds of a longer stall):
        # the loop did not turn for STILL_PROOF, and its thread wants a core now.
        since = max(n.at - stall, snaps[0].at) if snaps else n.at - stall
        if n.at - since >= DEMAND_OVER:
            demand = thread_demand(snaps, n.tid, since, n.at)
    return TurnFindings(tuple(samples), demand)
