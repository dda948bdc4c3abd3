"""What to do about a verdict, given what is already being done: pure, plain data in, a list of plain
effects out (the responder carries them out, in order). The tick reads: observe (I/O) -> judge (pure) ->
policy and this (pure) -> effects.

Inputs: the open incident's stage and signature (None: no incident), the verdict, the policy's action,
the budget's decision for a restart now, and whether restarts are on and real."""

from __future__ import annotations

from dataclasses import dataclass

from hermes_watchdog.daemon.incident_life import Stage
from hermes_watchdog.judge import policy
from hermes_watchdog.judge.budget import Decision
from hermes_watchdog.judge.verdict import UNKNOWN, Verdict


@dataclass(frozen=True)
class Open:
    """Open an incident, evidence first (or carry on the give-up a restarted daemon found in state.json).
    Its first action is decided once it is open: the evidence takes seconds, and the budget may have changed
    meanwhile. Then its one message goes out, saying that action (not for an incident carried on)."""

    verdict: Verdict
    action: policy.Action


@dataclass(frozen=True)
class Close:
    why: str


@dataclass(frozen=True)
class Escalate:
    """An alert becomes a restart: a second witness of the same signature came in."""

    why: str


@dataclass(frozen=True)
class Alert:
    why: str


@dataclass(frozen=True)
class GiveUp:
    budget: Decision


@dataclass(frozen=True)
class Cool:
    budget: Decision


@dataclass(frozen=True)
class DryRun:
    action: policy.Action
    budget: Decision


@dataclass(frozen=True)
class Restart:
    """Re-prove the gateway, then restart it (or say why not: nothing is sent)."""

    action: policy.Action
    budget: Decision


Effect = Open | Close | Escalate | Alert | GiveUp | Cool | DryRun | Restart


def respond(stage: Stage | None, signature: str | None, verdict: Verdict, action: policy.Action,
            budget: Decision, restarts_on: bool, dry_run: bool) -> list[Effect]:
    if stage is not None and verdict.signature not in {signature, UNKNOWN} and action.kind in {policy.NONE,
                                                                                             policy.WAIT}:
        return [Close(f"verdict is now {verdict.signature}")]
    if action.kind not in {policy.ALERT, policy.RESTART}:
        return []
    if stage is None:
        return [Open(verdict, action)]
    effects: list[Effect] = []
    restart = action.kind == policy.RESTART and restarts_on
    if stage.acted:
        # Only an alert can still become a restart: a second witness of the same signature came in.
        if not (restart and stage is Stage.ALERTED and verdict.signature == signature):
            return effects
        effects.append(Escalate(action.why))
    if restart:
        if budget.exhausted:
            effects.append(GiveUp(budget))
        elif not budget.allowed:
            effects.append(Cool(budget))
        elif dry_run:
            effects.append(DryRun(action, budget))
        else:
            effects.append(Restart(action, budget))
    elif stage is not Stage.ALERTED:
        effects.append(Alert(action.why if action.kind != policy.RESTART
                             else f"{action.why}; restarts are off (--restart-with none)"))
    return effects
