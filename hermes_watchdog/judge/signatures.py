"""Failure signatures: CPU usage + state file reads + stack -> Verdict. Pure: no I/O and no clock.

The same rules serve ``diagnose`` (one sample of a few seconds) and ``run`` (a sliding window).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hermes_watchdog.judge.cpu import CPU_TIME, DEMAND, CpuUsage
from hermes_watchdog.observe.heartbeat import HeartbeatSeen
from hermes_watchdog.observe.stacks import ADAPTER_READ_LOOP, StackAnalysis
from hermes_watchdog.observe.statefile import GatewayState
from hermes_watchdog.record.timefmt import parse_iso

BUSY_LOOP = "busy-loop"
CPU_PEGGED = "cpu-pegged"
STUCK_DISCONNECTED = "stuck-disconnected"
HEALTHY = "healthy"
GATEWAY_GONE = "gateway-gone"
LOOP_FROZEN = "loop-frozen"
UNKNOWN = "unknown"
ALL = (BUSY_LOOP, CPU_PEGGED, STUCK_DISCONNECTED, LOOP_FROZEN, GATEWAY_GONE, HEALTHY, UNKNOWN)

RUNNING = "running"


@dataclass(frozen=True)
class Thresholds:
    # cores: the process's CPU time, or its hottest thread's demand (Linux; its CPU time elsewhere), at or
    # above this is "pegged"
    cpu: float = 0.9
    stuck_after: float = 900.0  # seconds a platform must be down, CPU idle, before that is sure


@dataclass(frozen=True)
class StateSeen:
    """One read of the state file and whether it describes the process being judged."""

    state: GatewayState
    matches: bool
    match_note: str = ""


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

    @property
    def is_problem(self) -> bool:
        return self.signature not in {HEALTHY, UNKNOWN}

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
        }


def _down_text(state: GatewayState, now: float | None) -> tuple[str, float | None]:
    """'qqbot is disconnected (since ..., 12 min)' and the longest known down time in seconds."""
    parts, longest = [], None
    for p in state.not_connected:
        since = parse_iso(p.updated_at)
        text = f"{p.name} is '{p.state}'"
        if p.error_code:
            text += f" ({p.error_code})"
        if since is not None and now is not None:
            age = max(0.0, now - since)
            longest = age if longest is None else max(longest, age)
            text += f" since {p.updated_at} ({_duration(age)} ago)"
        parts.append(text)
    return ", ".join(parts), longest


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _stack_effect(stack: StackAnalysis | None) -> tuple[float, str | None]:
    """How the stack moves confidence in a busy loop: confirms, weakens, or (absent) says nothing."""
    if stack is None:
        return 0.0, None
    if not stack.captured:
        return 0.0, f"no stack: {stack.reason}; the verdict rests on CPU and state alone"
    if stack.classification == ADAPTER_READ_LOOP:
        loop = next((f for f in stack.frames if "loop" in f.function or "_read_events" in f.function), None)
        where = f" ({loop})" if loop else ""
        return 0.25, (f"the hot thread is in a platform adapter's listen/read loop{where} in "
                      f"{stack.loop_seen} of {stack.dumps} stack dumps")
    top = stack.frames[0] if stack.frames else None
    return -0.15, ("the hot thread's stack shows no adapter listen/read loop"
                   + (f" (innermost frame: {top})" if top else ""))


def _cpu_text(usage: CpuUsage, th: Thresholds) -> str:
    """What the CPU figures say, naming the measure that judged."""
    hot = usage.hot
    if hot is not None and usage.measure == DEMAND:
        return (f"hottest thread {hot.tid} wants {hot.demand:.2f} core (demand: on CPU {hot.on_cpu:.2f} + "
                f"waiting {hot.waiting:.2f}), gets {hot.cores:.2f}; process CPU {usage.cores:.2f} cores over "
                f"{usage.span:.1f} s (threshold {th.cpu:.2f}, judged by demand)")
    return (f"CPU {usage.cores:.2f} cores over {usage.span:.1f} s (CPU time; no run-queue data on this system; "
            f"threshold {th.cpu:.2f})" + (f"; hottest thread {hot.tid} at {hot.cores:.2f} cores" if hot else ""))


def judge(usage: CpuUsage | None, states: Sequence[StateSeen], stack: StackAnalysis | None,
          th: Thresholds, now: float | None = None, heartbeat: HeartbeatSeen | None = None) -> Verdict:
    """``now`` is epoch seconds, used only to say how long a platform has been down. ``heartbeat`` is
    the event-loop heartbeat of Hermes >= 0.19 written by this gateway, or None (no file: no opinion)."""
    verdict = _judge(usage, states, stack, th, now)
    return verdict if heartbeat is None else _with_heartbeat(verdict, heartbeat)


def _with_heartbeat(v: Verdict, hb: HeartbeatSeen) -> Verdict:
    """A third, independent signal. Stale: the loop is frozen, which confirms a busy loop or is its own
    verdict. Fresh: the loop is running, which argues against a busy loop (it spins on the loop thread)."""
    reasons = (*v.reasons, hb.describe())
    if v.signature == BUSY_LOOP:
        delta = 0.1 if hb.stale else -0.15
        return replace(v, confidence=max(0.0, min(0.97, v.confidence + delta)), reasons=reasons)
    if hb.stale and v.signature != UNKNOWN:
        return replace(v, signature=LOOP_FROZEN, confidence=0.85, reasons=reasons)
    return replace(v, reasons=reasons)


def _judge(usage: CpuUsage | None, states: Sequence[StateSeen], stack: StackAnalysis | None,
           th: Thresholds, now: float | None) -> Verdict:
    if usage is None:
        return Verdict(UNKNOWN, 0.0, ("not enough CPU samples yet",))
    cores = usage.cores
    hot = usage.hot
    hot_cores = hot.cores if hot else None
    pegged = usage.pegged_value >= th.cpu
    reasons = [_cpu_text(usage, th)]

    own = [s.state for s in states if s.state.ok and s.matches]
    latest_read = states[-1] if states else None
    if latest_read is None:
        reasons.append("no state file read")
    elif not latest_read.state.ok:
        reasons.append(f"state file {latest_read.state.read.status}: {latest_read.state.read.problem}")
    elif not latest_read.matches:
        reasons.append(f"state file ignored: it {latest_read.match_note}")
    latest = own[-1] if own else None
    down = latest.not_connected if latest else ()
    down_names = tuple(p.name for p in down)
    down_text, down_for = _down_text(latest, now) if latest else ("", None)
    common = {"cores": cores, "hot_cores": hot_cores, "span": usage.span, "platforms_down": down_names,
              "down_for": down_for, "demand": usage.demand, "hot_demand": usage.hot_demand,
              "measure": usage.measure}

    if pegged:
        # Two independent signals: the CPU, and a not-connected platform in every read of the window;
        # every read: one naming another process (or unreadable) breaks the proof, it is not skipped.
        all_own = bool(states) and all(s.state.ok and s.matches for s in states)
        spinning_state = all_own and all(s.state.gateway_state == RUNNING and s.state.not_connected for s in states)
        delta, stack_reason = _stack_effect(stack)
        if spinning_state:
            reasons.append(f"gateway_state is 'running' while {down_text}")
            if stack_reason:
                reasons.append(stack_reason)
            return Verdict(BUSY_LOOP, min(0.97, 0.7 + delta), tuple(reasons), **common)
        if latest is not None and latest.gateway_state != RUNNING:
            reasons.append(f"gateway_state is '{latest.gateway_state}'")
        elif latest is not None:
            reasons.append("every platform is connected" if not down
                           else f"{down_text}, but not in every state read of the window" if all_own
                           else f"{down_text}, but {len(states) - len(own)} of {len(states)} state reads of "
                                "the window did not describe this process")
        if stack is not None and stack.captured and stack.classification == ADAPTER_READ_LOOP:
            reasons.append(_stack_effect(stack)[1] or "")
            reasons.append("this looks like the adapter busy loop, but the state file does not confirm it")
            return Verdict(CPU_PEGGED, 0.9, tuple(reasons), **common)
        reasons.append("sustained CPU with connected platforms may be legitimate work" if latest is not None
                       else "no usable state file: cannot tell whether platforms are connected")
        return Verdict(CPU_PEGGED, 0.8, tuple(reasons), **common)

    if down:
        reasons.append(f"{down_text}; CPU is below the threshold, so the adapter is idle, not spinning")
        # Sure only while the newest read still describes this process, not one from earlier.
        current = latest_read is not None and latest_read.state.ok and latest_read.matches
        if down_for is not None and down_for >= th.stuck_after and current:
            return Verdict(STUCK_DISCONNECTED, 0.85, tuple(reasons), **common)
        reasons.append(f"down for less than {_duration(th.stuck_after)} (or unknown): may be a normal reconnect")
        return Verdict(STUCK_DISCONNECTED, 0.4, tuple(reasons), **common)

    if latest is not None:
        reasons.append(f"gateway_state is '{latest.gateway_state}'"
                       + (", every platform connected" if latest.platforms else ", no platforms listed"))
    return Verdict(HEALTHY, 0.9 if latest is not None else 0.6, tuple(reasons), **common)
