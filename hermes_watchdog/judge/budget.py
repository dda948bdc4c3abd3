"""Restart budget: at most N restarts per window, a growing cooldown between them. Pure: the restart
history and the time come in as numbers (epoch seconds)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    max_restarts: int
    window: float
    cooldown: float  # after the first restart in the window; doubles with each further one


@dataclass(frozen=True)
class Decision:
    allowed: bool
    used: int
    remaining: int
    exhausted: bool  # past the budget: give up until restarts age out of the window
    wait: float  # seconds of cooldown left (0 when allowed or exhausted)
    reason: str


def cooldown_after(n: int, budget: Budget) -> float:
    """Cooldown after the n-th restart within the window (n >= 1)."""
    return budget.cooldown * (2 ** max(0, n - 1))


def decide(history: Sequence[float], now: float, budget: Budget) -> Decision:
    recent = sorted(t for t in history if now - t < budget.window)
    used = len(recent)
    remaining = max(0, budget.max_restarts - used)
    if used >= budget.max_restarts:
        frees_in = budget.window - (now - recent[0]) if recent else 0.0
        return Decision(False, used, 0, True, 0.0,
                        f"restart budget used: {used} of {budget.max_restarts} in {budget.window:g} s "
                        f"(next one frees in {frees_in:.0f} s)")
    if recent:
        wait = cooldown_after(used, budget) - (now - recent[-1])
        if wait > 0:
            return Decision(False, used, remaining, False, wait,
                            f"cooling down: {wait:.0f} s left after restart {used} of {budget.max_restarts}")
    return Decision(True, used, remaining, False, 0.0, f"restart {used + 1} of {budget.max_restarts} allowed")
