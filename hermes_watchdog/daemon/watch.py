"""What the daemon keeps about one watched gateway between ticks, grouped by what it is for."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hermes_watchdog.act.restart import RestartMachine
from hermes_watchdog.judge.cpu import CpuSnapshot, CpuUsage, usage
from hermes_watchdog.judge.families import Recognised
from hermes_watchdog.judge.loop import Burst
from hermes_watchdog.judge.sampling_plan import SamplingPlan
from hermes_watchdog.judge.verdict import StateSeen, Verdict
from hermes_watchdog.observe.deaf import DeafTracker
from hermes_watchdog.observe.heartbeat import HeartbeatSeen
from hermes_watchdog.observe.loop_sampler import LoopSampler
from hermes_watchdog.observe.loop_turns import TurnReader, TurnSample
from hermes_watchdog.observe.looptick import TickProbe
from hermes_watchdog.observe.processes import Identity
from hermes_watchdog.record.incidents import Incident

WATCHING = "watching"
DENSE_TICK = 1.0  # seconds between CPU samples while something is suspect (the stack is being sampled)


@dataclass
class Window:
    """The sliding window of observations the verdict is judged on."""

    snaps: deque[CpuSnapshot] = field(default_factory=deque)
    states: deque[tuple[float, StateSeen]] = field(default_factory=deque)
    heartbeat: HeartbeatSeen | None = None  # Hermes >= 0.19 only
    bursts: deque[Burst] = field(default_factory=deque)  # loop-stack bursts, oldest first
    # CPU samples kept as long as the bursts: the loop thread's demand over a stretch up to --frozen-after.
    long_snaps: deque[CpuSnapshot] = field(default_factory=deque)
    tick: TickProbe | None = None  # the newest loop-tick socket probe (git releases 0.19.1+)
    # The release family, recognised once per gateway and again only when its heartbeat's keys change
    # (a gateway writes its first beat, and arms its tick socket, once it runs): (keys, recognised).
    release: tuple[frozenset[str] | None, Recognised] | None = None
    deaf: DeafTracker = field(default_factory=DeafTracker)  # descriptors, CLOSE_WAIT, long RSS (observe/deaf.py)
    turns: deque[TurnSample] = field(default_factory=deque)  # loop-turn counter reads (fix pack), oldest first

    def trim(self, now: float, window: float, keep_bursts: float) -> None:
        # Keep the newest sample at or before (now - window) as the window's base.
        while len(self.snaps) >= 2 and self.snaps[1].at <= now - window:
            self.snaps.popleft()
        base = self.snaps[0].at
        while self.states and self.states[0][0] < base:
            self.states.popleft()
        # Bursts live longer than the window: loop-frozen looks back --frozen-after seconds.
        while self.bursts and self.bursts[0].end < now - keep_bursts:
            self.bursts.popleft()
        while len(self.long_snaps) >= 2 and self.long_snaps[1].at <= now - keep_bursts:
            self.long_snaps.popleft()
        while len(self.turns) >= 2 and self.turns[1].at <= now - keep_bursts:
            self.turns.popleft()

    def clear(self) -> None:
        self.snaps.clear()
        self.states.clear()
        self.bursts.clear()
        self.long_snaps.clear()
        self.turns.clear()
        self.heartbeat = None
        self.tick = None
        self.release = None
        self.deaf = DeafTracker()


@dataclass
class Said:
    """Remarks said once until they change, so months of running do not repeat a line every tick."""

    state_problem: str | None = None
    heartbeat_note: str | None = None
    stack_problem: str | None = None
    turns_note: str | None = None
    gone: bool = False
    death: tuple[int, str | None] | None = None  # (PID, the unclean-death line or None): judged once per PID
    gave_up: bool = False
    cooldown: bool = False
    waiting_at: float = 0.0  # monotonic: when a restart in flight was last said to be waiting


@dataclass
class Counts:
    """Counters for the Prometheus metrics (they restart from 0 with the daemon, as counters do)."""

    restarts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (signature, result)
    incidents: Counter[str] = field(default_factory=Counter)
    stacks: Counter[str] = field(default_factory=Counter)


@dataclass
class Watch:
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
    incident: Incident | None = None
    acted: bool = False  # the open incident has had its action (restart, dry-run or alert)
    notified: bool = False  # the open incident's "incident" message has gone out
    machine: RestartMachine | None = None  # a restart in flight
    plan: SamplingPlan = field(default_factory=SamplingPlan)  # when to take loop-stack bursts
    sampler: LoopSampler | None = None  # the threads taking them, for the gateway watched now
    turn_reader: TurnReader | None = None  # the loop-turn counter of the gateway watched now
    # persisted in state.json: the budget and the history survive a daemon restart
    restarts: list[float] = field(default_factory=list)  # epoch seconds
    history: list[dict[str, Any]] = field(default_factory=list)
    # The give-up in force, so a restarted daemon carries on with that incident instead of opening (and
    # announcing) a new one: {pid, create_time, signature, incident (folder name)}.
    gave_up: dict[str, Any] | None = None
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
    def release(self) -> Recognised | None:
        return self.window.release[1] if self.window.release else None

    def cpu_now(self) -> CpuUsage | None:
        """CPU over the last sample interval (what status and the metrics show)."""
        snaps = self.window.snaps
        return usage(list(snaps)[-2:]) if len(snaps) >= 2 else None

    def reset_window(self) -> None:
        self.window.clear()
        self.verdict = None
        self.verdict_since = 0.0
        self.close_sampler()
        if self.turn_reader is not None:
            self.turn_reader.close()
            self.turn_reader = None

    def close_sampler(self, wait: float = 0.0) -> None:
        if self.sampler is not None:
            self.sampler.close(wait)
            self.sampler = None
        # A fresh plan: the old sampler's thread may still write to its own for a moment.
        self.plan = SamplingPlan(background=self.plan.background, dense_rate=self.plan.dense_rate)
