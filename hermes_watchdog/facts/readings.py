"""What Hermes' own files and signals said, as read: the state file and gateway.pid, the heartbeat, the
loop-tick socket's answer, the loop-turn counter, the lifecycle ledger and the respawn-storm ledgers.
observe/ reads them (safely, from the home); judge/ weighs them; record/ prints them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CONNECTED = "connected"


@dataclass(frozen=True)
class PlatformState:
    name: str
    state: str
    error_code: str | None = None
    error_message: str | None = None
    updated_at: str | None = None

    @property
    def connected(self) -> bool:
        return self.state == CONNECTED


@dataclass(frozen=True)
class FileRead:
    """How reading one file went: ``status`` is ok, missing, empty, truncated, garbage, oversized,
    not-an-object or unreadable."""

    path: str
    status: str
    problem: str | None = None
    data: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class GatewayState:
    read: FileRead
    gateway_state: str | None = None
    pid: int | None = None
    start_time: float | None = None
    updated_at: str | None = None
    platforms: tuple[PlatformState, ...] = field(default_factory=tuple)
    exit_reason: str | None = None  # git releases: loop_liveness_watchdog, shutdown_watchdog, ...
    restart_requested: bool = False
    active_agents: int | None = None  # sessions with an agent turn running or waiting for a worker

    @property
    def ok(self) -> bool:
        return self.read.ok

    @property
    def not_connected(self) -> tuple[PlatformState, ...]:
        return tuple(p for p in self.platforms if not p.connected)


@dataclass(frozen=True)
class PidRecord:
    read: FileRead
    pid: int | None = None
    start_time: float | None = None
    argv: tuple[str, ...] = ()
    kind: str | None = None


PERIOD = 30.0  # seconds between rewrites in Hermes 0.19.0


DEFAULT_STALE_AFTER = 2 * PERIOD  # two missed beats


@dataclass(frozen=True)
class Heartbeat:
    path: str
    pid: int | None = None
    updated_at: float | None = None  # epoch seconds
    problem: str | None = None  # the file exists but cannot be used
    start_time: float | None = None  # epoch seconds the writing process started (0.19.0 writes it)
    keys: frozenset[str] | None = None  # the payload's keys (None: not parsed)
    loop_tick_socket: bool | None = None  # the off-loop writer's flag (#92315); None: absent
    loop_tick_tcp_port: int | None = None
    mem: dict[str, int] | None = None  # upstream's /proc sample (KiB): rss_kib, mem_available_kib ...

    @property
    def off_loop(self) -> bool:
        """Written by the off-loop writer of #92315 (the flag's key is there, whatever its value)."""
        return self.keys is not None and "loop_tick_socket" in self.keys


@dataclass(frozen=True)
class HeartbeatSeen:
    """The heartbeat judged against the gateway being watched."""

    age: float  # seconds since the last beat
    stale_after: float
    keys: frozenset[str] | None = None  # the payload's keys, for the release family's writer rule
    off_loop: bool = False  # flagged loop_tick_socket: written off the loop, never a loop witness

    @property
    def stale(self) -> bool:
        return self.age > self.stale_after

    def describe(self) -> str:
        if self.off_loop:
            return (f"the heartbeat is {self.age:.0f} s old, but it is written off the event loop (payload flag "
                    "loop_tick_socket): it says the process runs, not that its loop turns")
        if self.stale:
            return (f"the event-loop heartbeat is {self.age:.0f} s old (a beat is due every {PERIOD:.0f} s; stale "
                    f"after {self.stale_after:.0f} s): the gateway's event loop is not running")
        return f"the event-loop heartbeat is fresh ({self.age:.0f} s old): the event loop is running"

    def to_dict(self) -> dict[str, object]:
        return {"age_seconds": round(self.age, 1), "stale_after_seconds": self.stale_after, "stale": self.stale,
                "written_off_loop": self.off_loop}


@dataclass(frozen=True)
class TickProbe:
    at: float  # monotonic, when the probe ended
    answered: bool
    detail: str

    def to_dict(self) -> dict[str, object]:
        return {"answered": self.answered, "detail": self.detail}


SYSCALL_RUN_FOR = 0.5  # seconds on a CPU with no selector call that end a syscall watch: no turn in 10 x 50 ms


@dataclass(frozen=True)
class SyscallProbe:
    """What ptrace saw of the loop thread's system calls for a moment (observe/syscalls.py): did it enter
    its selector (epoll_wait), and how long did it run on a CPU meanwhile?"""

    at: float  # monotonic, when the watch ended
    tid: int
    seconds: float  # wall time watched
    ran: float | None  # seconds the thread ran on a CPU meanwhile (schedstat)
    selector: int  # selector calls entered (the probe ends at the first unless counting)
    other: int  # other system calls
    first_selector: float | None = None  # seconds into the watch of the first selector call

    @property
    def turned(self) -> bool:
        return self.selector > 0

    @property
    def turned_at(self) -> float | None:
        """Monotonic time of the first selector call seen."""
        return None if self.first_selector is None else self.at - self.seconds + self.first_selector

    def silent(self, run_for: float) -> bool:
        """No selector call while the thread ran ``run_for`` seconds or more on a CPU."""
        return self.selector == 0 and self.ran is not None and self.ran >= run_for

    def describe(self) -> str:
        ran = "" if self.ran is None else f", {self.ran:.2f} s of it on a CPU"
        if self.selector > 1:
            return (f"the loop turned {self.selector} times in {self.seconds:.2f} s "
                    f"({self.selector / max(self.seconds, 1e-3):.0f}/s, epoll_wait calls of thread {self.tid} seen "
                    "through ptrace)")
        if self.turned:
            return (f"ptrace saw the loop thread {self.tid} enter epoll_wait {self.first_selector or 0:.3f} s into "
                    f"its watch: the loop turns")
        return (f"ptrace watched the loop thread {self.tid}'s system calls for {self.seconds:.1f} s{ran}: "
                f"no epoll_wait ({self.other} other calls)")

    def to_dict(self) -> dict[str, object]:
        return {"thread": self.tid, "seconds": round(self.seconds, 3),
                "ran_seconds": None if self.ran is None else round(self.ran, 3),
                "selector_calls": self.selector, "other_calls": self.other}


@dataclass(frozen=True)
class TurnSample:
    """One read of the counter."""

    at: float  # monotonic, when read (the gateway's stamps use the same clock)
    turns: int  # iterations of the main loop so far
    last: float  # monotonic time of the loop timer's newest turn (once a period): the loop's last turn was
    # after it, and before last + period unless the count moved since
    tid: int | None  # the loop thread's native id; None: no loop has run yet
    period: float  # the counted loop turns at least this often when healthy (its keepalive timer)

    @property
    def stall(self) -> float:
        """Seconds from the timer's newest turn to this read: at most a period more than the stall."""
        return max(0.0, self.at - self.last)


# The respawn-storm breaker.
STORM_STARTS = "starts"  # more than N starts within W s (gateway-starts.log)


STORM_CRASH_CYCLES = "crash-cycles"  # N crash cycles chained within W s (#82574)


@dataclass(frozen=True)
class StormRule:
    kind: str  # STORM_STARTS / STORM_CRASH_CYCLES
    count: int  # more than this many starts (STORM_STARTS), or this many chained cycles (STORM_CRASH_CYCLES)
    window: float  # seconds

    def describe(self) -> str:
        if self.kind == STORM_STARTS:
            return f"more than {self.count} starts in {self.window:.0f} s"
        return f"{self.count} crash cycles chained within {self.window:.0f} s"


# 0.19.0's breaker, and the rule for a release not recognised (what the watchdog honoured before families).
STARTS_RULE = StormRule(STORM_STARTS, 5, 120.0)


STORM_WINDOW = STARTS_RULE.window


@dataclass(frozen=True)
class Upstream:
    lifecycle_phase: str | None = None
    lifecycle_exit_code: int | None = None
    lifecycle_exit_reason: str | None = None
    starts: tuple[float, ...] = ()  # epoch seconds, gateway-starts.log
    boots: tuple[float, ...] = ()  # epoch seconds, gateway/restart_loop.json
    lifecycle_at: float | None = None  # the ledger's mtime (epoch): which gateway's life it can be about
    lifecycle_pid: int | None = None  # the process whose life the ledger records

    def storm(self, now: float, rule: StormRule = STARTS_RULE) -> int:
        """How many starts (STORM_STARTS) or chained crash cycles (STORM_CRASH_CYCLES) have tripped
        Hermes' breaker by ``rule`` at ``now``; 0 while it has not tripped."""
        if rule.kind == STORM_CRASH_CYCLES:
            n = len(chain_ending_at(self.boots, now, rule.window))
            return n if n >= rule.count else 0
        recent = sum(1 for t in self.starts if 0 <= now - t <= rule.window)
        return recent if recent > rule.count else 0

    def to_dict(self, now: float) -> dict[str, object]:
        return {"lifecycle": {"phase": self.lifecycle_phase, "exit_code": self.lifecycle_exit_code,
                              "exit_reason": self.lifecycle_exit_reason} if self.lifecycle_phase else None,
                "starts_in_storm_window": sum(1 for t in self.starts if 0 <= now - t <= STORM_WINDOW),
                "chained_crash_cycles": len(chain_ending_at(self.boots, now, 300.0))}


def chain_ending_at(boots: tuple[float, ...], now: float, gap: float) -> tuple[float, ...]:
    """The boots that chain up to ``now``, newest last: walking back from ``now``, each boot no further
    than ``gap`` seconds from the one after it; the first wider gap ends the chain (an older episode). A
    boot stamped after ``now`` (a clock stepped back) counts only within ``gap`` of it, as upstream's."""
    chain: list[float] = []
    prev = now
    for t in sorted(boots, reverse=True):
        if t > now:
            if t - now <= gap:
                chain.append(t)
            continue
        if prev - t > gap:
            break
        chain.append(t)
        prev = t
    return tuple(reversed(chain))


@dataclass(frozen=True)
class ReleaseClues:
    """What a gateway's home and install show about its release (observe/release.py reads them;
    judge/families.recognise_clues names the family)."""

    version: str | None  # as written where it was found
    version_source: str | None
    heartbeat_keys: frozenset[str] | None  # the keys of this very process's heartbeat payload
    tick_socket: bool = False  # a loop-tick socket for its PID
    lifecycle: bool = False  # state/gateway.lifecycle.json
    loop_watchdog: bool | None = None  # config.yaml's gateway.loop_watchdog, when a plain boolean
