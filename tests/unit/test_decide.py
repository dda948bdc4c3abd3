"""The decision after the judge, on plain data: the incident's stage, the verdict, the policy's action and
the budget in; the list of effects out. No World, no files."""

from __future__ import annotations

import pytest

from hermes_watchdog.daemon import decide
from hermes_watchdog.daemon.incident_life import Stage
from hermes_watchdog.judge import policy
from hermes_watchdog.judge.budget import Decision
from hermes_watchdog.judge.verdict import UNKNOWN, Verdict

BUSY = Verdict("busy-loop", 0.95, ("busy-loop",))
FROZEN = Verdict("loop-frozen", 0.9, ("loop-frozen",))
HEALTHY = Verdict("healthy", 0.9, ("healthy",))
RESTART = policy.Action(policy.RESTART, "held 60 s")
ALERT = policy.Action(policy.ALERT, "alert by policy")
NONE = policy.Action(policy.NONE, "")
ALLOWED = Decision(True, 0, 3, False, 0.0, "")
SPENT = Decision(False, 3, 0, True, 0.0, "3 restarts in 1800 s")
WAIT = Decision(False, 1, 2, False, 60.0, "cooldown: 60 s left")


def kinds(effects: list[decide.Effect]) -> list[str]:
    return [type(e).__name__ for e in effects]


def respond(stage: Stage | None, verdict: Verdict, action: policy.Action, budget: Decision = ALLOWED,
            restarts_on: bool = True, dry_run: bool = False, signature: str | None = None) -> list[str]:
    sig = signature or (None if stage is None else verdict.signature)
    return kinds(decide.respond(stage, sig, verdict, action, budget, restarts_on, dry_run))


def test_nothing_to_do_without_an_incident_or_an_action() -> None:
    assert respond(None, HEALTHY, NONE) == []
    assert respond(None, BUSY, policy.Action(policy.WAIT, "held 5 s")) == []


def test_without_an_incident_the_first_effect_is_to_open_one_and_nothing_else() -> None:
    """Its first action is decided once it is open (evidence takes seconds; the budget may change)."""
    assert respond(None, BUSY, RESTART) == ["Open"]
    assert respond(None, FROZEN, ALERT) == ["Open"]
    assert respond(None, BUSY, RESTART, SPENT) == ["Open"]


def test_an_open_incident_restarts_or_alerts() -> None:
    assert respond(Stage.OPEN, BUSY, RESTART) == ["Restart"]
    assert respond(Stage.OPEN, FROZEN, ALERT) == ["Alert"]


@pytest.mark.parametrize(("budget", "effect"), [(SPENT, "GiveUp"), (WAIT, "Cool")])
def test_the_budget_decides_before_any_restart(budget: Decision, effect: str) -> None:
    assert respond(Stage.OPEN, BUSY, RESTART, budget) == [effect]


def test_a_dry_run_is_a_dry_run_within_the_budget_only() -> None:
    assert respond(Stage.OPEN, BUSY, RESTART, dry_run=True) == ["DryRun"]
    assert respond(Stage.OPEN, BUSY, RESTART, SPENT, dry_run=True) == ["GiveUp"]


def test_restarts_off_is_an_alert_that_says_so() -> None:
    effects = decide.respond(Stage.OPEN, "busy-loop", BUSY, RESTART, ALLOWED, False, False)
    assert kinds(effects) == ["Alert"]
    alert = effects[0]
    assert isinstance(alert, decide.Alert) and "restarts are off" in alert.why


@pytest.mark.parametrize("stage", [Stage.ALERTED, Stage.DRY_RUN, Stage.NOT_RESTARTED, Stage.RESTARTING,
                                   Stage.NOT_STARTED])
def test_an_incident_that_acted_does_nothing_more_for_the_same_alert(stage: Stage) -> None:
    assert respond(stage, BUSY, ALERT) == []


def test_an_alert_escalates_to_a_restart_on_the_same_signature_only() -> None:
    assert respond(Stage.ALERTED, FROZEN, RESTART) == ["Escalate", "Restart"]
    assert respond(Stage.ALERTED, BUSY, RESTART, signature="loop-frozen") == []
    assert respond(Stage.ALERTED, FROZEN, RESTART, restarts_on=False) == []


@pytest.mark.parametrize("stage", [Stage.RESTARTING, Stage.DRY_RUN, Stage.NOT_RESTARTED])
def test_only_an_alert_escalates(stage: Stage) -> None:
    assert respond(stage, BUSY, RESTART) == []


@pytest.mark.parametrize(("stage", "budget", "effect"), [
    (Stage.COOLING, ALLOWED, "Restart"), (Stage.COOLING, WAIT, "Cool"), (Stage.COOLING, SPENT, "GiveUp"),
    (Stage.GAVE_UP, SPENT, "GiveUp"), (Stage.GAVE_UP, ALLOWED, "Restart"), (Stage.OPEN, ALLOWED, "Restart")])
def test_an_incident_waiting_on_the_budget_asks_it_again_every_tick(stage: Stage, budget: Decision,
                                                                     effect: str) -> None:
    assert respond(stage, BUSY, RESTART, budget) == [effect]


def test_a_verdict_that_is_over_closes_the_incident() -> None:
    assert respond(Stage.ALERTED, HEALTHY, NONE, signature="loop-frozen") == ["Close"]
    assert respond(Stage.GAVE_UP, HEALTHY, policy.Action(policy.WAIT, "held 5 s"), signature="busy-loop") == ["Close"]


def test_an_unknown_verdict_or_the_same_signature_closes_nothing() -> None:
    assert respond(Stage.ALERTED, Verdict(UNKNOWN, 0.0, ("no data",)), NONE, signature="loop-frozen") == []
    assert respond(Stage.ALERTED, FROZEN, NONE) == []


def test_another_signature_wanting_action_does_not_close_the_incident() -> None:
    # A different problem while an incident is open: it stays that incident (one at a time per gateway).
    assert "Close" not in respond(Stage.COOLING, FROZEN, ALERT, signature="busy-loop")
