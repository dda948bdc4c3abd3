"""Syscall evidence as a loop witness (observe/syscalls.py watches; this judges). Pure: no I/O, no clock.

Where no loop-turn counter is live (no fix pack), the stack samples say "never seen in its selector" only up
to a stated error (judge/proof.py), and on a loaded machine they need long to reach it. ptrace says it
exactly: a watch of the loop thread's system calls either sees it enter ``epoll_wait`` (the loop turns: a
veto, whatever the samples missed) or sees it run ``RUN_FOR`` seconds on a CPU without one (no turn in that
time). The rules:

- asked for while a stretch without the selector lasts and the loop thread wants a core (a sleeping thread
  is not watched: the watch would interrupt its blocking call once), again every ``AGAIN`` seconds while it
  lasts, never where the counter is live (it already decides alone);
- the newest watch saw a selector call after the stretch began: the loop turns, no busy-loop;
- the newest watch was silent, made in the stretch, and no watch saw a turn in the last ``--loop-proof``
  seconds: with the stretch's own ``--loop-proof`` seconds in one callback, that is the second witness in
  place of the 11,510 samples.
"""

from __future__ import annotations

from hermes_watchdog.facts.readings import SYSCALL_RUN_FOR, SyscallProbe
from hermes_watchdog.judge.loop import LoopFindings

AGAIN = 4.0  # seconds between watches while one stretch lasts: a loop that turned may start spinning


def want_trace(loop: LoopFindings | None, counter_live: bool, newest: SyscallProbe | None, mono: float,
               on_cpu_at: float) -> int | None:
    """The loop thread to watch now, or None. ``on_cpu_at``: the demand (cores) from which its thread is
    taken as wanting a core."""
    st = loop.stretch if loop is not None else None
    if counter_live or st is None or st.tid is None or not st.one_callback:
        return None
    if loop is None or loop.loop_demand is None or loop.loop_demand < on_cpu_at:
        return None
    if newest is not None and newest.tid == st.tid and newest.at > st.since and mono - newest.at < AGAIN:
        return None
    return st.tid


def turned_during(newest: SyscallProbe | None, tid: int | None, since: float) -> bool:
    """The newest watch of this thread saw it enter its selector after ``since``."""
    at = newest.turned_at if newest is not None and newest.tid == tid else None
    return at is not None and at > since


def silent_during(newest: SyscallProbe | None, tid: int | None, since: float, last_turn: float | None,
                  mono: float | None, proof: float) -> bool:
    """The newest watch of this thread, made after ``since``, saw no selector call while it ran, and no
    watch saw one within the last ``proof`` seconds."""
    if newest is None or newest.tid != tid or newest.at <= since or not newest.silent(SYSCALL_RUN_FOR):
        return False
    return last_turn is None or (mono is not None and mono - last_turn >= proof)
