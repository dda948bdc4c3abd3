"""What the daemon keeps about one watched gateway between ticks, grouped by what it is for."""

from __future__ import annotations

import itertools
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hermes_watchdog.act.restart import RestartMachine
from hermes_watchdog.daemon.incident_life import IncidentLife
from hermes_watchdog.facts.cpu import CpuSnapshot
from hermes_watchdog.facts.identity import Identity
from hermes_watchdog.facts.loop_samples import Burst
from hermes_watchdog.facts.plan import SamplingPlan
from hermes_watchdog.facts.readings import HeartbeatSeen, SyscallProbe, TickProbe, TurnSample
from hermes_watchdog.facts.threads import GilSample, WorkersSample
from hermes_watchdog.judge.cpu import CpuUsage, usage
from hermes_watchdog.judge.families import Recognised
from hermes_watchdog.judge.verdict import StateSeen, Verdict
from hermes_watchdog.observe.deaf import DeafTracker
from hermes_watchdog.observe.loop_sampler import LoopSampler
from hermes_watchdog.observe.loop_turns import TurnReader
from hermes_watchdog.observe.thread_dumps import DumpSchedule
from hermes_watchdog.record.incidents import Incident

WATCHING = "watching"
WORKER_SAMPLES = 400  # all-thread dumps' readings of the agent pool kept (trimmed by age too)
GIL_SAMPLES = 60  # ... of who held the GIL: two minutes of dumps while suspect
DENSE_TICK = 1.0  # seconds between CPU samples while something is suspect (the stack is being sampled)


@dataclass
class Window:
    """The sliding window of observations the verdict is judged on."""

    # Every CPU sample, kept as long as the bursts: the verdict's window is the newest part (``snaps``), the
    # loop thread's demand over a stretch up to --frozen-after is all of it (``long_snaps``).
    samples: deque[CpuSnapshot] = field(default_factory=deque)
    window_start: int = 0  # index in ``samples`` of the window's base
    states: deque[tuple[float, StateSeen]] = field(default_factory=deque)
    heartbeat: HeartbeatSeen | None = None  # Hermes >= 0.19 only
    bursts: deque[Burst] = field(default_factory=deque)  # loop-stack bursts, oldest first
    tick: TickProbe | None = None  # the newest loop-tick socket probe (git releases 0.19.1+)
    syscalls: SyscallProbe | None = None  # the newest ptrace watch of the loop thread's system calls
    syscall_turned: float | None = None  # monotonic: the newest selector call a watch saw
    # The release family, recognised once per gateway and again only when its heartbeat's keys change
    # (a gateway writes its first beat, and arms its tick socket, once it runs): (keys, recognised).
    release: tuple[frozenset[str] | None, Recognised] | None = None
    deaf: DeafTracker = field(default_factory=DeafTracker)  # descriptors, CLOSE_WAIT, long RSS (observe/deaf.py)
    turns: deque[TurnSample] = field(default_factory=deque)  # loop-turn counter reads (fix pack), oldest first
    # All-thread dumps, reduced (facts/threads.py): the agent pool, and who held the GIL while suspect.
    dumps: DumpSchedule = field(default_factory=DumpSchedule)
    workers: deque[WorkersSample] = field(default_factory=lambda: deque(maxlen=WORKER_SAMPLES))
    gil: deque[GilSample] = field(default_factory=lambda: deque(maxlen=GIL_SAMPLES))
    loop_dumps: deque[tuple[float, str, bool]] = field(default_factory=lambda: deque(maxlen=GIL_SAMPLES))

    @property
    def snaps(self) -> list[CpuSnapshot]:
        """The verdict's window: from the newest sample at or before (now - window) on."""
        return list(itertools.islice(self.samples, self.window_start, None))

    @property
    def long_snaps(self) -> list[CpuSnapshot]:
        return list(self.samples)

    def add(self, snap: CpuSnapshot) -> None:
        self.samples.append(snap)

    def trim(self, now: float, window: float, keep_bursts: float) -> None:
        # Bursts live longer than the window: loop-frozen looks back --frozen-after seconds.
        while len(self.samples) >= 2 and self.samples[1].at <= now - keep_bursts:
            self.samples.popleft()
        # Keep the newest sample at or before (now - window) as the window's base.
        start = 0
        while start + 1 < len(self.samples) and self.samples[start + 1].at <= now - window:
            start += 1
        self.window_start = start
        base = self.samples[start].at if self.samples else now
        while self.states and self.states[0][0] < base:
            self.states.popleft()
        while self.bursts and self.bursts[0].end < now - keep_bursts:
            self.bursts.popleft()
        while len(self.turns) >= 2 and self.turns[1].at <= now - keep_bursts:
            self.turns.popleft()

    def clear(self) -> None:
        self.samples.clear()
        self.window_start = 0
        self.states.clear()
        self.bursts.clear()
        self.turns.clear()
        self.heartbeat = None
        self.tick = None
        self.syscalls = None
        self.syscall_turned = None
        self.release = None
        self.deaf = DeafTracker()
        self.dumps = DumpSchedule()
        self.workers.clear()
        self.gil.clear()
        self.loop_dumps.clear()


@dataclass
class Said:
    """Remarks said once until they change, so months of running do not repeat a line every tick."""

    state_problem: str | None = None
    heartbeat_note: str | None = None
    stack_problem: str | None = None
    trace_problem: str | None = None  # why the loop thread's system calls could not be watched
    turns_note: str | None = None
    gone: bool = False
    death: tuple[int, str | None] | None = None  # (PID, the unclean-death line or None): judged once per PID
    waiting_at: float = 0.0  # monotonic: when a restart in flight was last said to be waiting
    verdict: str | None = None  # the signature the last VERDICT line said (a tentative one waits: observer.py)


@dataclass
class Counts:
    """Counters for the Prometheus metrics (they restart from 0 with the daemon, as counters do)."""

    restarts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (signature, result)
    incidents: Counter[str] = field(default_factory=Counter)
    stacks: Counter[str] = field(default_factory=Counter)
    opened: int = 0  # incidents opened or carried on by this daemon (`run --once` says so in its exit code)


HISTORY_KEPT = 49  # restart history entries kept (state.json shows the last 20)


@dataclass
class Watch:
    """One watched gateway: everything the daemon keeps about it between ticks. The rooms read its fields
    and change them only through the methods below (tests/unit/test_import_graph.py checks it), so every
    change of who is watched, what is judged and what is being done has one place."""

    home: Path
    profile: str | None
    label: str = ""  # profile name, "default" for the first home, else the home's path: unique per daemon
    # who
    ident: Identity | None = None
    found_how: str = ""
    next_sample: float = 0.0  # monotonic
    # what was seen, and what it means
    window: Window = field(default_factory=Window)
    verdict: Verdict | None = None
    verdict_since: float = 0.0  # monotonic
    # what is being done about it
    life: IncidentLife | None = None  # the open incident and its stage (daemon/incident_life.py)
    machine: RestartMachine | None = None  # a restart in flight
    plan: SamplingPlan = field(default_factory=SamplingPlan)  # when to take loop-stack bursts
    sampler: LoopSampler | None = None  # the threads taking them, for the gateway watched now
    turn_reader: TurnReader | None = None  # the loop-turn counter of the gateway watched now
    # persisted in state.json: the budget and the history survive a daemon restart
    restarts: list[float] = field(default_factory=list)  # epoch seconds
    history: list[dict[str, Any]] = field(default_factory=list)
    # The give-up read from state.json at start, until an incident opens (and carries it on, or not).
    resumed_give_up: dict[str, Any] | None = None
    said: Said = field(default_factory=Said)
    counts: Counts = field(default_factory=Counts)

    @property
    def name(self) -> str:
        return self.label or self.profile or "default"

    @property
    def phase(self) -> str:
        """watching, or the phase of the restart in flight (stopping, killed, verifying)."""
        return self.machine.r.phase.value if self.machine is not None else WATCHING

    @property
    def incident(self) -> Incident | None:
        return self.life.incident if self.life is not None else None

    @property
    def gave_up(self) -> dict[str, Any] | None:
        """The give-up in force: {pid, create_time, signature, incident (folder name)}."""
        return self.life.gave_up_on if self.life is not None else self.resumed_give_up

    @property
    def release(self) -> Recognised | None:
        return self.window.release[1] if self.window.release else None

    def cpu_now(self) -> CpuUsage | None:
        """CPU over the last sample interval (what status and the metrics show)."""
        snaps = self.window.samples
        return usage([snaps[-2], snaps[-1]]) if len(snaps) >= 2 else None

    # ---------------------------------------------------------------- who is watched
    def adopt(self, ident: Identity, how: str) -> None:
        """A gateway found (or relaunched): watched from a fresh window."""
        self.ident, self.found_how = ident, how
        self.said.gone = False
        self.reset_window()

    def lose(self) -> None:
        self.ident = None
        self.reset_window()

    def schedule(self, at: float) -> None:
        """The next sample, at monotonic ``at``."""
        self.next_sample = at

    # ---------------------------------------------------------------- what it means
    def judged(self, verdict: Verdict, at: float) -> str | None:
        """The newest verdict; returns the signature before it when it changed (or "" for none)."""
        before = self.verdict.signature if self.verdict else None
        self.verdict = verdict
        if verdict.signature == before:
            return None
        self.verdict_since = at
        return before or ""

    # ---------------------------------------------------------------- what is being done about it
    def open_incident(self, life: IncidentLife) -> None:
        self.life = life
        self.resumed_give_up = None  # a give-up belongs to its incident; this one is now in charge

    def close_incident(self) -> None:
        self.life = None

    def take_resumed_give_up(self) -> dict[str, Any] | None:
        """The give-up state.json gave back, once: the first incident decides whether it carries it on."""
        gave_up, self.resumed_give_up = self.resumed_give_up, None
        return gave_up

    def restore(self, restarts: list[float], history: list[dict[str, Any]], gave_up: dict[str, Any] | None) -> None:
        """What state.json kept across a daemon restart: the budget, the history, a give-up in force."""
        self.restarts, self.history, self.resumed_give_up = restarts, history, gave_up

    def count_restart(self, wall: float, keep: float | None = None) -> None:
        """A restart (or a start of ours) in the budget; older than ``keep`` seconds are let go."""
        if not any(abs(t - wall) < 1e-3 for t in self.restarts):
            self.restarts.append(wall)
        if keep is not None:
            self.restarts = [t for t in self.restarts if wall - t < keep]

    def restarting(self, machine: RestartMachine, entry: dict[str, Any] | None) -> None:
        """A restart in flight (``entry``: its line in the history, None when it is there already)."""
        self.machine = machine
        if entry is not None:
            self.history.append(entry)
            del self.history[:-HISTORY_KEPT]

    def restart_done(self, new: Identity | None, outcome: dict[str, Any]) -> None:
        """The restart machine is done: ``new`` is the verified gateway (None when it failed)."""
        if self.history:
            self.history[-1].update(outcome)
        self.machine = None
        self.ident = new
        self.reset_window()
        self.next_sample = 0.0
        if new is not None:
            self.found_how = "new gateway after restart"

    # ---------------------------------------------------------------- the threads that sample it
    def attach_sampler(self, sampler: LoopSampler) -> None:
        self.close_sampler()
        self.sampler = sampler
        self.set_plan(self.plan)  # the plan as closing the old sampler left it, not the one it was built with

    def attach_turn_reader(self, reader: TurnReader) -> None:
        self.turn_reader = reader

    def reset_window(self) -> None:
        self.window.clear()
        self.verdict = None
        self.said.verdict = None
        self.verdict_since = 0.0
        self.close_sampler()
        if self.turn_reader is not None:
            self.turn_reader.close()
            self.turn_reader = None

    def close_sampler(self, wait: float = 0.0) -> None:
        if self.sampler is not None:
            self.sampler.close(wait)
            self.sampler = None
        # Nothing suspect any more for the next sampler (the plan is a value: the old thread keeps its own).
        self.plan = replace(self.plan, suspect_until=0.0)

    def set_plan(self, plan: SamplingPlan) -> None:
        """The one way the plan changes: a new value, handed to the sampler thread by one reference."""
        self.plan = plan
        if self.sampler is not None:
            self.sampler.plan = plan
