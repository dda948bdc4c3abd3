"""What a judgement looks at and what it says: the signature names, the thresholds, the readings that
go in (state reads, memory, the other witnesses) and the Verdict that comes out. Plain data; the rules
that turn one into the other are in signatures.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hermes_watchdog.facts.deaf import DeafSeen, DeafThresholds
from hermes_watchdog.facts.readings import GatewayState, HeartbeatSeen, SyscallProbe, TickProbe, Upstream
from hermes_watchdog.facts.stacks import StackAnalysis
from hermes_watchdog.facts.threads import GilSample
from hermes_watchdog.judge.cpu import CPU_TIME
from hermes_watchdog.judge.deaf import ALL as DEAF_ALL
from hermes_watchdog.judge.families import Recognised
from hermes_watchdog.judge.loop import LoopFindings
from hermes_watchdog.judge.turns import TurnFindings

BUSY_LOOP = "busy-loop"
LOOP_FROZEN = "loop-frozen"
GIL_HELD = "gil-held"  # the loop frozen because another thread holds the GIL (judge/gil.py)
MEMORY_HIGH = "memory-high"
STARTUP_HANG = "startup-hang"
CPU_PEGGED = "cpu-pegged"
STUCK_DISCONNECTED = "stuck-disconnected"
HEALTHY = "healthy"
GATEWAY_GONE = "gateway-gone"
UNKNOWN = "unknown"
ALL = (BUSY_LOOP, LOOP_FROZEN, GIL_HELD, MEMORY_HIGH, STARTUP_HANG, CPU_PEGGED, STUCK_DISCONNECTED, GATEWAY_GONE,
       HEALTHY, UNKNOWN, *DEAF_ALL)


# How a busy-loop was proven: the loop thread's stack and demand (fast restart), or CPU + state file.
BY_STACK = "stack"
BY_CPU_STATE = "cpu+state"
BY_COUNTER = "counter"  # the loop-turn counter stood still while the loop thread wanted a core
BY_SYSCALLS = "stack+syscalls"  # one callback for the proof window, and ptrace saw no selector call in it

W_STACK, W_HEARTBEAT, W_TICK = "stack", "heartbeat", "loop-tick"
W_GIL = "gil"  # all-thread dumps: another thread held the GIL throughout (judge/gil.py)
OFF_SELECTOR_FOR_GRACE = 3.0  # seconds of dense samples off the selector that earn a busy loop the short grace
W_COUNTER = "counter"  # the loop-turn counter: exact, a witness that needs no second


@dataclass(frozen=True)
class Thresholds:
    # cores: the process's CPU time, or its hottest thread's demand (Linux; its CPU time elsewhere), at or
    # above this is "pegged"
    cpu: float = 0.9
    stuck_after: float = 900.0  # seconds a platform must be down, CPU idle, before that is sure
    proof: float = 8.0  # seconds of dense samples with the loop never in its selector that prove starvation
    frozen_after: float = 60.0  # seconds the loop must not turn for loop-frozen
    memory_limit: int | None = None  # bytes of RSS; None: no memory verdict
    start_timeout: float = 90.0  # seconds a gateway may stay "starting" (or write no state file)
    deaf: DeafThresholds = field(default_factory=DeafThresholds)  # descriptors, CLOSE_WAIT, memory growth


@dataclass(frozen=True)
class StateSeen:
    """One read of the state file and whether it describes the process being judged."""

    state: GatewayState
    matches: bool
    match_note: str = ""


@dataclass(frozen=True)
class Memory:
    """RSS samples over the window: (monotonic seconds, bytes)."""

    samples: tuple[tuple[float, int], ...] = ()

    @property
    def latest(self) -> int | None:
        return self.samples[-1][1] if self.samples else None

    @property
    def growth(self) -> float | None:
        """Bytes per second from the first to the last sample."""
        if len(self.samples) < 2 or self.samples[-1][0] <= self.samples[0][0]:
            return None
        return (self.samples[-1][1] - self.samples[0][1]) / (self.samples[-1][0] - self.samples[0][0])


@dataclass(frozen=True)
class Seen:
    """Everything one judgement looks at besides CPU and the state reads; all optional."""

    stack: StackAnalysis | None = None  # dumps of the hot thread (diagnose, incidents): text only
    loop: LoopFindings | None = None
    heartbeat: HeartbeatSeen | None = None
    tick: TickProbe | None = None  # the newest loop-tick socket probe
    memory: Memory = field(default_factory=Memory)
    age: float | None = None  # seconds since the gateway process started
    upstream: Upstream | None = None
    mono: float | None = None  # monotonic now, to age the loop findings and probes
    release: Recognised | None = None  # the release family: who wrote the heartbeat (None: not recognised)
    deaf: DeafSeen | None = None  # descriptors, CLOSE_WAIT sockets, the long RSS history (judge/deaf.py)
    turns: TurnFindings | None = None  # the loop-turn counter (fix pack), the first loop witness
    syscalls: SyscallProbe | None = None  # the newest ptrace watch of the loop thread's system calls
    syscall_turned: float | None = None  # monotonic: the newest selector call any watch saw
    gil: tuple[GilSample, ...] = ()  # who held the GIL in all-thread dumps while suspect (judge/gil.py)
    gil_wakes: tuple[tuple[float, int], ...] = ()  # (monotonic, schedstat slices) of the loop thread they name
    loop_dumps: tuple[tuple[float, str, bool], ...] = ()  # the loop thread's call in those dumps (names, no witness)


@dataclass(frozen=True)
class Verdict:
    signature: str
    confidence: float
    reasons: tuple[str, ...]
    cores: float | None = None
    hot_cores: float | None = None
    span: float = 0.0
    platforms_down: tuple[str, ...] = field(default_factory=tuple)
    down_for: float | None = None  # seconds the longest-down platform has been down, when known
    demand: float | None = None  # process CPU demand (on CPU + waiting for one), in cores; None off Linux
    hot_demand: float | None = None  # the hottest thread's demand
    measure: str = CPU_TIME  # what judged "pegged": "demand" or "cpu-time"
    proof: str = ""  # busy-loop: "stack" (starvation proven), "cpu+state", "pending"
    witnesses: tuple[str, ...] = ()  # loop-frozen: which independent witnesses agree
    vetoes: tuple[str, ...] = ()  # what argued against loop-frozen or busy-loop
    blocking: str | None = None  # the frame the loop sat in (loop-frozen) or spun in (busy-loop)
    rss: int | None = None  # bytes, newest sample
    upstream: str | None = None  # Hermes' own watchdog is handling it, or it is backing off a respawn storm
    loop: dict[str, Any] | None = None
    evidence: dict[str, Any] | None = None  # a deaf signature's own readings (judge/deaf.py)

    @property
    def is_problem(self) -> bool:
        return self.signature not in {HEALTHY, UNKNOWN}

    @property
    def starvation_proven(self) -> bool:
        """The loop thread was seen never reaching its selector (spinning, or blocked in one call): it
        cannot run Hermes' SIGTERM handler, which runs on that loop."""
        return (self.signature == BUSY_LOOP and self.proof in (BY_STACK, BY_SYSCALLS, BY_COUNTER)) or \
            (self.signature == LOOP_FROZEN and bool({W_STACK, W_COUNTER} & set(self.witnesses)))

    @property
    def sigterm_unhandled(self) -> bool:
        """SIGTERM cannot be handled (it runs on the loop): starvation proven, or a busy loop proven by CPU and
        the state file while the loop's own samples already show it off its selector for a few seconds (a
        short --window can fire before the stack proof is complete)."""
        if self.starvation_proven:
            return True
        off = (self.loop or {}).get("off_selector_seconds")
        return self.signature == BUSY_LOOP and isinstance(off, int | float) and off >= OFF_SELECTOR_FOR_GRACE

    def to_dict(self) -> dict[str, Any]:
        return {
            "signature": self.signature,
            "confidence": round(self.confidence, 2),
            "reasons": list(self.reasons),
            "cores": None if self.cores is None else round(self.cores, 3),
            "hot_thread_cores": None if self.hot_cores is None else round(self.hot_cores, 3),
            "span_seconds": round(self.span, 2),
            "platforms_down": list(self.platforms_down),
            "down_for_seconds": None if self.down_for is None else round(self.down_for),
            "demand": None if self.demand is None else round(self.demand, 3),
            "hot_demand": None if self.hot_demand is None else round(self.hot_demand, 3),
            "measure": self.measure,
            "proof": self.proof or None,
            "witnesses": list(self.witnesses),
            "vetoes": list(self.vetoes),
            "blocking_frame": self.blocking,
            "rss_bytes": self.rss,
            "upstream": self.upstream,
            "loop": self.loop,
            **({"evidence": self.evidence} if self.evidence is not None else {}),
        }
