"""workers-saturated: every agent worker thread busy, and no room for another, for longer than
--workers-busy-after while the loop itself turns. Pure.

Messages then wait for a worker: 30-145 s (upstream #75548), a 2 h 19 min queue (#75802); only an
all-thread dump shows it. The witnesses are the dumps (every thread of the agent pool out of its idle wait,
facts/threads.py) and the pool's lack of room (at its maximum, or fewer threads than the agents
gateway_state.json counts); each dump of the stretch must show both. Called after the loop rules: a wedged
loop explains a full pool. Alert by default: the turns may finish, and a restart loses them all.
"""

from __future__ import annotations

from collections.abc import Sequence

from hermes_watchdog.facts.deaf import DeafThresholds
from hermes_watchdog.facts.threads import WorkersSample, busiest
from hermes_watchdog.judge.deaf import WORKERS_SATURATED, Finding
from hermes_watchdog.judge.wording import duration


def streak(samples: Sequence[WorkersSample]) -> list[WorkersSample]:
    """The newest run of dumps that each found the pool full (dumps that failed are skipped, not breaks)."""
    run: list[WorkersSample] = []
    for s in reversed(samples):
        if s.why is not None:
            continue
        if s.full is None:
            break
        run.append(s)
    return run[::-1]


def rule(samples: Sequence[WorkersSample], th: DeafThresholds) -> Finding | None:
    run = streak(samples)
    if len(run) < 2:
        return None
    held = run[-1].at - run[0].at
    if held < th.workers_busy_after:
        return None
    newest = run[-1]
    assert newest.pool is not None
    pool = newest.pool
    reasons = [f"every agent worker busy for {duration(held)} ({len(run)} all-thread dumps, "
               f"--workers-busy-after {th.workers_busy_after:.0f} s): {pool.threads} threads of the "
               f"{pool.prefix or 'unnamed'} pool out of their idle wait, and {newest.full}: new messages wait"]
    calls = busiest(run)
    if calls:
        reasons.append("busy in: " + ", ".join(f"{c} (x{n})" for c, n in calls))
    return Finding(WORKERS_SATURATED, 0.85, tuple(reasons),
                   {**pool.to_dict(), "active_agents": newest.active_agents, "full": newest.full,
                    "seconds": round(held, 1), "dumps": len(run)})
