"""What the daemon does with a verdict. Pure: the verdict, how long it has held and the config in,
an Action out. Kept apart from the rules so "is it broken" and "what do we do" are tested separately."""

from __future__ import annotations

from dataclasses import dataclass

from hermes_watchdog.judge.deaf import FD_EXHAUSTION, MEMORY_GROWTH, SOCKETS_HALF_CLOSED, WORKERS_SATURATED
from hermes_watchdog.judge.verdict import (
    BUSY_LOOP,
    BY_COUNTER,
    BY_STACK,
    BY_SYSCALLS,
    CPU_PEGGED,
    GIL_HELD,
    LOOP_FROZEN,
    MEMORY_HIGH,
    STARTUP_HANG,
    STUCK_DISCONNECTED,
    W_COUNTER,
    W_STACK,
    Verdict,
)

RESTART = "restart"
ALERT = "alert"
WAIT = "wait"  # a problem, not yet held long enough
FROZEN_CONFIRM = 8.0  # seconds: about two dense 3 s loop bursts after a heartbeat or socket turned suspect
NONE = "none"


@dataclass(frozen=True)
class Rules:
    window: float
    interval: float
    min_confidence: float
    pegged_after: float
    stuck_after: float
    stuck_action: str  # alert | restart
    frozen_action: str = "alert"  # alert | restart, for loop-frozen
    memory_action: str = "restart"  # alert | restart, for memory-high (only with a memory limit)
    fd_action: str = "restart"  # alert | restart, for fd-exhaustion past its restart level (95 %)
    deaf_action: str = "alert"  # alert | restart, for sockets-half-closed and workers-saturated


@dataclass(frozen=True)
class Action:
    kind: str
    why: str


def window_full(span: float, rules: Rules) -> bool:
    # Ticks jitter: a window counts as full within a quarter interval of its length.
    return span >= rules.window - 0.25 * rules.interval


def decide(verdict: Verdict, held_for: float, rules: Rules) -> Action:
    """``held_for``: seconds this signature has been the verdict without a break."""
    action = _decide(verdict, held_for, rules)
    if action.kind == RESTART and verdict.upstream:
        # Hermes is already on it (its own watchdog, or its respawn-storm backoff): a second restart
        # would fight it. Say so instead.
        return Action(ALERT, f"{action.why}; not restarting: {verdict.upstream}")
    return action


def _decide(verdict: Verdict, held_for: float, rules: Rules) -> Action:
    sig = verdict.signature
    if sig == BUSY_LOOP:
        if verdict.proof not in (BY_STACK, BY_SYSCALLS, BY_COUNTER) and not window_full(verdict.span, rules):
            return Action(WAIT, f"busy-loop seen; window {verdict.span:.0f}/{rules.window:.0f} s")
        if verdict.confidence < rules.min_confidence:
            return Action(ALERT, f"busy-loop, but confidence {verdict.confidence:.2f} "
                                 f"< {rules.min_confidence:.2f}: evidence only")
        if verdict.proof == BY_COUNTER:
            return Action(RESTART, "busy-loop: the loop-turn counter stood still while the event-loop thread "
                                   "wanted the CPU")
        if verdict.proof == BY_SYSCALLS:
            return Action(RESTART, "busy-loop: the event-loop thread wants the CPU all the time, ran one callback "
                                   "and made no selector call (stack samples and ptrace)")
        if verdict.proof == BY_STACK:
            return Action(RESTART, "busy-loop: the event-loop thread wants the CPU all the time and never reached "
                                   "its selector (stack samples)")
        return Action(RESTART, f"busy-loop held for the whole {rules.window:.0f} s window")
    if sig == CPU_PEGGED:
        if window_full(verdict.span, rules) and held_for >= rules.pegged_after:
            return Action(ALERT, f"CPU pegged for {held_for:.0f} s while the loop turns or platforms are connected: "
                                 "evidence, no restart")
        return Action(WAIT, "cpu-pegged, not yet long enough to report")
    if sig == STUCK_DISCONNECTED:
        down = max(held_for, verdict.down_for or 0.0)
        if down >= rules.stuck_after and window_full(verdict.span, rules):
            kind = RESTART if rules.stuck_action == "restart" else ALERT
            return Action(kind, f"a platform has been down for {down:.0f} s with the CPU idle")
        return Action(WAIT, "platform down, not yet long enough to report")
    if sig in (LOOP_FROZEN, GIL_HELD):
        # The witnesses already cover --frozen-after each; no window on top, only a few seconds for the
        # dense loop samples a suspicion starts to veto it (a failing heartbeat write) or to name the call.
        named = " and ".join(verdict.witnesses)
        exact = W_COUNTER in verdict.witnesses  # the loop's own count of its turns: no second witness needed
        if held_for < FROZEN_CONFIRM and W_STACK not in verdict.witnesses and not exact:
            return Action(WAIT, f"{sig} ({named}) seen; sampling the loop's stack before saying so")
        if rules.frozen_action != "restart":
            return Action(ALERT, f"{sig} ({named}): evidence; --frozen-action restart would restart it")
        if len(verdict.witnesses) >= 2 or exact:
            return Action(RESTART, f"{sig}, witnessed by {named}")
        return Action(ALERT, f"{sig} on one witness ({named}): a restart needs two that agree")
    if sig == MEMORY_HIGH:
        if window_full(verdict.span, rules):
            kind = RESTART if rules.memory_action == "restart" else ALERT
            return Action(kind, f"RSS above the memory limit for the whole {rules.window:.0f} s window")
        return Action(WAIT, f"memory-high seen; window {verdict.span:.0f}/{rules.window:.0f} s")
    if sig in (FD_EXHAUSTION, SOCKETS_HALF_CLOSED, MEMORY_GROWTH, WORKERS_SATURATED):
        return _deaf(verdict, held_for, rules)
    if sig == STARTUP_HANG:
        return Action(ALERT, "the gateway never finished starting")
    return Action(NONE, "")


def _deaf(verdict: Verdict, held_for: float, rules: Rules) -> Action:
    """Alive but deaf (judge/deaf.py): the rules carry their own durations; descriptors, an exact count
    that a burst of connections can touch for a moment, must also be seen on two ticks in a row."""
    sig, ev = verdict.signature, verdict.evidence or {}
    if sig == FD_EXHAUSTION:
        if held_for < 0.75 * rules.interval:
            return Action(WAIT, "fd-exhaustion seen; checking it again on the next tick")
        pct = f"{ev.get('open')} of {ev.get('soft_limit')} descriptors open"
        if ev.get("level") == "restart" and rules.fd_action == "restart":
            return Action(RESTART, f"fd-exhaustion: {pct}, past the restart level: it cannot recover by itself")
        return Action(ALERT, f"fd-exhaustion: {pct}: evidence" + (
            "" if ev.get("level") == "restart" else "; a restart from the restart level (95 %)"))
    if sig == SOCKETS_HALF_CLOSED:
        why = f"sockets-half-closed: {ev.get('count')} socket(s) in CLOSE_WAIT"
        if rules.deaf_action == "restart":
            return Action(RESTART, why)
        return Action(ALERT, f"{why}: evidence; --deaf-action restart would restart it")
    if sig == WORKERS_SATURATED:
        why = f"workers-saturated: {ev.get('threads')} agent workers busy for {ev.get('seconds')} s, no room for more"
        if rules.deaf_action == "restart":
            return Action(RESTART, why)
        return Action(ALERT, f"{why}: evidence; --deaf-action restart would restart it (their turns are lost)")
    return Action(ALERT, "memory-growth: RSS rising fast for a long stretch: evidence (--memory-limit restarts)")
