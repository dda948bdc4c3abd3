"""The restart budget and the policy, with plain numbers: no daemon, no clock of their own."""

from __future__ import annotations

import json

import pytest

from hermes_watchdog.judge import budget, policy
from hermes_watchdog.judge.verdict import (
    BUSY_LOOP,
    CPU_PEGGED,
    GATEWAY_GONE,
    HEALTHY,
    LOOP_FROZEN,
    STUCK_DISCONNECTED,
    UNKNOWN,
    Verdict,
)
from hermes_watchdog.record import status_file

B = budget.Budget(max_restarts=3, window=1800.0, cooldown=60.0)


def test_first_restart_is_allowed_with_the_whole_budget() -> None:
    d = budget.decide([], 10_000.0, B)
    assert d.allowed and d.used == 0 and d.remaining == 3 and not d.exhausted


def test_cooldown_doubles_after_each_restart_in_the_window() -> None:
    assert [budget.cooldown_after(n, B) for n in (1, 2, 3)] == [60.0, 120.0, 240.0]
    t0 = 10_000.0
    d = budget.decide([t0], t0 + 59, B)
    assert not d.allowed and not d.exhausted and d.wait == pytest.approx(1.0) and "cooling down" in d.reason
    assert budget.decide([t0], t0 + 60, B).allowed
    two = [t0, t0 + 60]
    assert not budget.decide(two, t0 + 60 + 119, B).allowed  # second cooldown is 120 s
    assert budget.decide(two, t0 + 60 + 120, B).allowed


def test_budget_exhausted_then_restarts_age_out_of_the_window() -> None:
    t0 = 10_000.0
    history = [t0, t0 + 100, t0 + 400]
    d = budget.decide(history, t0 + 500, B)
    assert not d.allowed and d.exhausted and d.remaining == 0 and "next one frees in 1300 s" in d.reason
    # The first restart ages out: one left, and the cooldown after restart 2 (120 s) is long over.
    d = budget.decide(history, t0 + 1800, B)
    assert d.allowed and d.used == 2 and d.remaining == 1


def test_budget_survives_a_daemon_restart_through_the_restarts_in_state_json() -> None:
    """What a dying daemon wrote (``restarts``, epoch seconds, in state.json) is what a new daemon reads back
    (status_file.saved_gateways, as daemon/resume.py does) and decides on exactly as the old one would have.
    End to end, with a daemon killed by SIGKILL: tests/test_budget_e2e.py."""
    t0 = 1_800_000_000.0
    restarts = [t0, t0 + 60.25, t0 + 180.5]
    before = budget.decide(restarts, t0 + 200, B)
    written = json.dumps({"gateways": [{"home": "/h", "restarts": [round(t, 3) for t in restarts]}]})
    saved, bad = status_file.saved_gateways(json.loads(written))
    assert bad == set() and saved[0].restarts == restarts
    after = budget.decide(saved[0].restarts, t0 + 200, B)
    assert before == after and after.exhausted and not after.allowed and after.used == 3


def test_zero_restarts_allowed_is_always_exhausted() -> None:
    d = budget.decide([], 0.0, budget.Budget(0, 1800.0, 0.0))
    assert not d.allowed and d.exhausted


RULES = policy.Rules(window=60, interval=5, min_confidence=0.5, pegged_after=600, stuck_after=900,
                     stuck_action="alert", frozen_action="alert")


def v(sig: str, confidence: float = 0.9, span: float = 60.0, down_for: float | None = None) -> Verdict:
    return Verdict(sig, confidence, ("test",), span=span, down_for=down_for)


def test_busy_loop_waits_for_a_full_window_then_restarts() -> None:
    assert policy.decide(v(BUSY_LOOP, span=30), 30, RULES).kind == policy.WAIT
    assert policy.decide(v(BUSY_LOOP, span=58.75), 58.75, RULES).kind == policy.RESTART  # within 1/4 interval
    assert policy.decide(v(BUSY_LOOP, span=60), 60, RULES).kind == policy.RESTART


def test_busy_loop_below_min_confidence_is_only_an_alert() -> None:
    a = policy.decide(v(BUSY_LOOP, confidence=0.49), 60, RULES)
    assert a.kind == policy.ALERT and "confidence 0.49 < 0.50" in a.why


def test_cpu_pegged_is_an_alert_after_pegged_after_never_a_restart() -> None:
    assert policy.decide(v(CPU_PEGGED), 599, RULES).kind == policy.WAIT
    assert policy.decide(v(CPU_PEGGED), 600, RULES).kind == policy.ALERT
    assert policy.decide(v(CPU_PEGGED), 10**6, RULES).kind == policy.ALERT


def test_stuck_disconnected_alerts_or_restarts_as_configured() -> None:
    assert policy.decide(v(STUCK_DISCONNECTED, down_for=100), 100, RULES).kind == policy.WAIT
    assert policy.decide(v(STUCK_DISCONNECTED, down_for=900), 60, RULES).kind == policy.ALERT
    restart = policy.Rules(**{**RULES.__dict__, "stuck_action": "restart"})
    assert policy.decide(v(STUCK_DISCONNECTED, down_for=900), 60, restart).kind == policy.RESTART
    # Down long enough, but the window is not full yet: wait.
    assert policy.decide(v(STUCK_DISCONNECTED, span=10, down_for=900), 10, restart).kind == policy.WAIT


def test_loop_frozen_alerts_and_restarts_only_on_request_with_two_witnesses() -> None:
    one = Verdict(LOOP_FROZEN, 0.6, ("test",), span=60, witnesses=("heartbeat",))
    two = Verdict(LOOP_FROZEN, 0.85, ("test",), span=60, witnesses=("stack", "heartbeat"))
    # The witnesses each cover --frozen-after already: no window on top, only a few seconds of dense loop
    # samples when the stack is not among them (to veto a failing heartbeat write, or name the call).
    assert policy.decide(one, 0, RULES).kind == policy.WAIT
    assert policy.decide(one, policy.FROZEN_CONFIRM, RULES).kind == policy.ALERT
    assert policy.decide(two, 0, RULES).kind == policy.ALERT  # default --frozen-action alert
    restart = policy.Rules(**{**RULES.__dict__, "frozen_action": "restart"})
    assert policy.decide(one, 600, restart).kind == policy.ALERT  # a stale heartbeat alone is not proof
    assert policy.decide(two, 0, restart).kind == policy.RESTART


@pytest.mark.parametrize("sig", [HEALTHY, UNKNOWN, GATEWAY_GONE])
def test_no_action_for_healthy_unknown_and_gone(sig: str) -> None:
    assert policy.decide(v(sig), 10**6, RULES).kind == policy.NONE
