"""What one all-thread dump of a gateway says about its agent workers and about who holds the GIL, reduced
to small plain records kept between ticks (observe/thread_dumps.py takes the dumps; judge/workers.py and
judge/gil.py are the rules). Pure.

Agent workers: Hermes runs each agent turn in a ``concurrent.futures.ThreadPoolExecutor`` (0.19.0:
``max_workers=10, thread_name_prefix="hermes-gateway"``; 0.14.0: asyncio's default executor, threads
``asyncio_N``). A worker waiting for work sits in the pool's ``_worker`` frame itself (``SimpleQueue.get``
is C): that is its idle wait. Anything deeper (an agent turn, a model call) is busy, whether on a core or
blocked in a socket read. A pool grows a thread only while none is idle, up to its maximum; so a pool whose
threads are all busy has room only below its maximum, and work waits when the state file counts more
agents running than threads that serve them.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hermes_watchdog.facts.loop_samples import SELECTOR, is_loop_stack, kind_of
from hermes_watchdog.facts.stacks import Dump, Frame, ThreadStack

_POOL_FILE = re.compile(r"(?:^|[/\\])concurrent[/\\]futures[/\\]thread\.py$")
_WORKER_FN = re.compile(r"(?:^|\.)_worker$")
_NAME_PREFIX = re.compile(r"^(.*)_\d+$")  # ThreadPoolExecutor names its threads <prefix>_<n>

# Pools whose maximum is known: Hermes 0.19.0's own (gateway/run.py), asyncio's default executor
# (min(32, cpus + 4) since Python 3.8: cpus filled in by the caller).
AGENT_POOL = "hermes-gateway"
ASYNCIO_POOL = "asyncio"
KNOWN_MAX = {AGENT_POOL: 10}


def default_executor_max(cpus: int | None) -> int:
    return min(32, (cpus or 1) + 4)


def _is_pool_frame(f: Frame) -> bool:
    return bool(_WORKER_FN.search(f.function) and _POOL_FILE.search(f.file.replace("\\", "/")))


_STDLIB = re.compile(r"[/\\]lib[/\\]python3\.\d+[/\\](?!(?:site|dist)-packages[/\\])")


def busy_call(frames: tuple[Frame, ...]) -> str:
    """What a busy worker is doing: its innermost frame, and the innermost one outside the standard library
    when that is another (``injected_model_wait (...) -> Condition.wait (threading.py:331)``): a wait in
    ``threading`` or ``socket`` says little without the code that waits."""
    inner = frames[0]
    own = next((f for f in frames if not _STDLIB.search(f.file) and not _is_pool_frame(f)), None)
    return str(inner) if own is None or own == inner else f"{own} -> {inner}"


def _prefix(name: str | None) -> str | None:
    m = _NAME_PREFIX.match(name or "")
    return m[1] if m else None


@dataclass(frozen=True)
class Pool:
    """The agent pool in one dump: its threads, and what each busy one is doing (its innermost call)."""

    prefix: str | None  # None: threads without names (the hook's dumps), all pools as one
    threads: int
    busy: tuple[tuple[str, str], ...]  # (thread name or id, innermost call), for each busy thread
    maximum: int | None  # the pool's max_workers where known

    @property
    def all_busy(self) -> bool:
        return self.threads > 0 and len(self.busy) == self.threads

    def to_dict(self) -> dict[str, Any]:
        return {"pool": self.prefix, "threads": self.threads, "busy": len(self.busy), "max_workers": self.maximum,
                "busy_calls": [{"thread": t, "call": c} for t, c in self.busy]}


@dataclass(frozen=True)
class WorkersSample:
    """One dump's reading of the agent pool, with the state file's ``active_agents`` at that moment."""

    at: float  # monotonic
    pool: Pool | None  # None: no pool thread in the dump (no agent has run yet), or no dump
    active_agents: int | None
    why: str | None = None  # why there was no dump

    @property
    def full(self) -> str | None:
        """Why no agent turn can start now (every worker busy and the pool at its maximum, or more agents
        counted than threads serving them); None when one can."""
        p = self.pool
        if p is None or not p.all_busy:
            return None
        if self.active_agents is not None and self.active_agents > p.threads:
            return f"{self.active_agents} agent turns counted in gateway_state.json, {p.threads} threads serving them"
        if p.maximum is not None and p.threads >= p.maximum:
            return f"the pool is at its maximum of {p.maximum} threads"
        return None


def agent_pool(dump: Dump, cpus: int | None = None) -> Pool | None:
    """The pool of agent workers in a dump: Hermes' own (``hermes-gateway``) where it runs, else asyncio's
    default executor, else the largest pool; threads without names count as one pool."""
    pools: dict[str | None, list[ThreadStack]] = {}
    for t in dump.threads:
        if any(_is_pool_frame(f) for f in t.frames):
            pools.setdefault(_prefix(t.name), []).append(t)
    if not pools:
        return None
    prefix = AGENT_POOL if AGENT_POOL in pools else ASYNCIO_POOL if ASYNCIO_POOL in pools else \
        max(pools, key=lambda k: len(pools[k]))
    threads = pools[prefix]
    busy = tuple((t.name or str(t.os_tid), busy_call(t.frames)) for t in threads
                 if t.frames and not _is_pool_frame(t.frames[0]))
    maximum = KNOWN_MAX.get(prefix or "") or (default_executor_max(cpus) if prefix == ASYNCIO_POOL else None)
    return Pool(prefix, len(threads), busy, maximum)


def workers_sample(dump: Dump | None, at: float, active_agents: int | None, why: str | None = None,
                   cpus: int | None = None) -> WorkersSample:
    return WorkersSample(at, agent_pool(dump, cpus if cpus is not None else os.cpu_count())
                         if dump is not None else None, active_agents, why)


@dataclass(frozen=True)
class GilSample:
    """Who held the GIL in one dump (py-spy says so per thread; the hook's dumps cannot)."""

    at: float  # monotonic
    loop_tid: int | None  # the event-loop thread (by its stack)
    loop_has_gil: bool
    holder: tuple[int | None, str, str] | None  # (os tid, name, innermost call) of another thread holding it


def gil_sample(dump: Dump, at: float) -> GilSample | None:
    """None when the dump cannot say who holds the GIL (no thread marked as holding it: the hook's dumps,
    or a moment nobody held it)."""
    loop = next((t for t in dump.threads if is_loop_stack(t.frames)), None)
    holders = [t for t in dump.threads if t.owns_gil]
    if not holders:
        return None
    other = next((t for t in holders if t is not loop), None)
    holder = None if other is None else (other.os_tid, other.name or str(other.os_tid),
                                         str(other.frames[0]) if other.frames else "?")
    return GilSample(at, loop.os_tid if loop else None, loop is not None and loop.owns_gil, holder)


def loop_call(dump: Dump) -> tuple[str, bool] | None:
    """The event-loop thread's innermost call in a dump, and whether that is its selector."""
    loop = next((t for t in dump.threads if is_loop_stack(t.frames)), None)
    if loop is None or not loop.frames:
        return None
    return str(loop.frames[0]), kind_of(loop.frames) == SELECTOR


def busiest(samples: list[WorkersSample]) -> list[tuple[str, int]]:
    """The calls busy workers were seen in most, over samples (for the evidence)."""
    c: Counter[str] = Counter(call for s in samples if s.pool for _, call in s.pool.busy)
    return c.most_common(5)


def summary(samples: list[WorkersSample]) -> dict[str, int | None]:
    """The newest dump's agent pool, for state.json (`status`) and the metrics."""
    newest = next((s for s in reversed(samples) if s.pool is not None), None)
    if newest is None or newest.pool is None:
        return {}
    return {"agent_workers": newest.pool.threads, "agent_workers_busy": len(newest.pool.busy)}
