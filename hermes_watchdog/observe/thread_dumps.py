"""One all-thread dump of a gateway, for its agent workers and for who holds the GIL (facts/threads.py
reduces it; judge/workers.py and judge/gil.py judge it), and when to take one.

py-spy without stopping the process (``--nonblocking``: no ptrace attach, so a syscall watch of the loop
thread is not disturbed; about 15 ms of CPU here), else the hook's stack thread (no GIL marks, no thread
names: the workers only). Taken off the tick by the loop sampler's dump thread (observe/loop_sampler.py).

When (``DumpSchedule``), so the daemon stays within its overhead budget:
  workers  every min(60, max(15, --workers-busy-after / 4)) s, only while gateway_state.json counts as many
           agent turns (``active_agents``) as the smallest pool we know can hold (``agents_gate``: 10, or
           CPUs + 4 for asyncio's default executor), or, where it does not say, while the process has more
           threads than a full pool of Hermes' own
  GIL      every GIL_EVERY s while the loop is suspect (dense sampling)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hermes_watchdog.facts.deaf import DeafThresholds
from hermes_watchdog.facts.identity import Identity
from hermes_watchdog.facts.stacks import Dump
from hermes_watchdog.facts.threads import AGENT_POOL, KNOWN_MAX, default_executor_max
from hermes_watchdog.observe import pyspy
from hermes_watchdog.observe.stack_capture import HookStacks

DumpFn = Callable[[], tuple[Dump | None, str | None]]  # -> (dump, why none)
GIL_EVERY = 2.0
TIMEOUT = 5.0


def source(method: str, ident: Identity, home: Path | None) -> DumpFn | None:
    """How this watch takes one all-thread dump (``--stack-with``); None for ``none``."""
    if method == "none":
        return None

    def spy() -> tuple[Dump | None, str | None]:
        binary = pyspy.find_py_spy()
        if binary is None:
            return None, "py-spy not found"
        dump, why, _hint = pyspy.dump_once(binary, ident.pid, TIMEOUT, nonblocking=True)
        return dump, why

    def hook() -> tuple[Dump | None, str | None]:
        if home is None:
            return None, "no HERMES_HOME"
        dump, why, _hint = HookStacks().take_one(ident, home, TIMEOUT)
        return dump, why

    if method in ("hook", "faulthandler"):
        return hook
    if method == "py-spy":
        return spy

    def auto() -> tuple[Dump | None, str | None]:
        dump, why = spy()
        if dump is not None or "exited" in (why or ""):
            return dump, why
        got, why2 = hook()
        return (got, None) if got is not None else (None, f"py-spy: {why}; hook: {why2}")

    return auto


def agents_gate(cpus: int | None = None) -> int:
    """The fewest running agent turns that can fill a pool we know: Hermes 0.19.0's 10 threads, or asyncio's
    default executor (0.14.0) on this machine. Below it a new turn always gets a thread (or the pool is one we
    cannot size), and no dump is taken: a gateway serving a few turns at a time costs nothing more."""
    return min(KNOWN_MAX[AGENT_POOL], default_executor_max(cpus if cpus is not None else os.cpu_count()))


@dataclass
class DumpSchedule:
    """When the next all-thread dump is due (``now`` monotonic). Plain state; the tick asks, the sampler's
    thread takes the dump."""

    workers_at: float | None = None
    gil_at: float | None = None

    @staticmethod
    def workers_every(th: DeafThresholds) -> float:
        return min(60.0, max(15.0, th.workers_busy_after / 4))

    def due(self, now: float, active_agents: int | None, threads: int | None, suspect: bool,
            th: DeafThresholds) -> tuple[bool, bool]:
        """(for the workers, for the GIL); marks what it says is due as taken now."""
        busy = active_agents >= agents_gate() if active_agents is not None else \
            threads is not None and threads > KNOWN_MAX[AGENT_POOL]
        workers = busy and (self.workers_at is None or now - self.workers_at >= self.workers_every(th) - 0.5)
        gil = suspect and (self.gil_at is None or now - self.gil_at >= GIL_EVERY - 0.25)
        if workers:
            self.workers_at = now
        if gil:
            self.gil_at = now
        return workers, gil
