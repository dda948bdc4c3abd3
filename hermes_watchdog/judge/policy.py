"""What the daemon does with a verdict. Pure: the verdict, how long it has held and the config in,
an Action out. Kept apart from the rules so "is it broken" and "what do we do" are tested separately."""

from __future__ import annotations

from dataclasses import dataclass

from hermes_watchdog.judge.signatures import BUSY_LOOP, CPU_PEGGED, LOOP_FROZEN, STUCK_DISCONNECTED, Verdict

RESTART = "restart"
ALERT = "alert"
WAIT = "wait"  # a problem, not yet held long enough
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


@dataclass(frozen=True)
class Action:
    kind: str
    why: str


def window_full(span: float, rules: Rules) -> bool:
    # Ticks jitter: a window counts as full within a quarter interval of its length.
    return span >= rules.window - 0.25 * rules.interval


def decide(verdict: Verdict, held_for: float, rules: Rules) -> Action:
    """``held_for``: seconds this signature has been the verdict without a break."""
    sig = verdict.signature
    if sig == BUSY_LOOP:
        if not window_full(verdict.span, rules):
            return Action(WAIT, f"busy-loop seen; window {verdict.span:.0f}/{rules.window:.0f} s")
        if verdict.confidence < rules.min_confidence:
            return Action(ALERT, f"busy-loop held for the window, but confidence {verdict.confidence:.2f} "
                                 f"< {rules.min_confidence:.2f}: evidence only")
        return Action(RESTART, f"busy-loop held for the whole {rules.window:.0f} s window")
    if sig == CPU_PEGGED:
        if window_full(verdict.span, rules) and held_for >= rules.pegged_after:
            return Action(ALERT, f"CPU pegged for {held_for:.0f} s with platforms connected: evidence, no restart")
        return Action(WAIT, "cpu-pegged, not yet long enough to report")
    if sig == STUCK_DISCONNECTED:
        down = max(held_for, verdict.down_for or 0.0)
        if down >= rules.stuck_after and window_full(verdict.span, rules):
            kind = RESTART if rules.stuck_action == "restart" else ALERT
            return Action(kind, f"a platform has been down for {down:.0f} s with the CPU idle")
        return Action(WAIT, "platform down, not yet long enough to report")
    if sig == LOOP_FROZEN:
        # Already two missed beats; held for a window on top so one slow disk write is not a verdict.
        if window_full(verdict.span, rules) and window_full(held_for, rules):
            kind = RESTART if rules.frozen_action == "restart" else ALERT
            return Action(kind, f"the event-loop heartbeat stayed stale for the whole {rules.window:.0f} s window")
        return Action(WAIT, f"loop-frozen seen; window {verdict.span:.0f}/{rules.window:.0f} s")
    return Action(NONE, "")
