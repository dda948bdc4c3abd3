"""Hermes' own exits for a restart: did its watchdog end the gateway asking to be started again, and once
it has, what the watchdog does. Pure: plain values in, a decision out.

Git releases 0.19.1+ run an in-process loop watchdog (gateway/shutdown_watchdog.py): after 3 missed probes
it writes ``gateway_state: degraded``, ``exit_reason`` (``loop_liveness_watchdog`` or ``shutdown_watchdog``),
``restart_requested: true`` and ``state/gateway.lifecycle.json`` ``{phase: exited, exit_code: 75}``, then
exits 75 for its manager to start it again. systemd (``RestartForceExitStatus=75``), s6 and launchd
(``KeepAlive``) normally do; but launchd queues an exit 75 that comes within ``ThrottleInterval`` of the
start and never respawns it (upstream #94540), and ``hermes gateway run`` in a terminal has no manager at
all. So: a relaunch within the start timeout is verified like one of the watchdog's own restarts; none
by then, and the watchdog starts the gateway itself through the configured manager, saying why.
"""

from __future__ import annotations

from dataclasses import dataclass

from hermes_watchdog.facts.readings import STARTS_RULE, STORM_CRASH_CYCLES, GatewayState, StormRule, Upstream
from hermes_watchdog.judge.families import UNKNOWN, Recognised

UPSTREAM_EXITS = frozenset({"loop_liveness_watchdog", "shutdown_watchdog"})
EXIT_RESTART = 75  # EX_TEMPFAIL: the exit code with which Hermes asks its manager for a restart

WAIT = "wait"  # nothing relaunched it yet, within the start timeout
RELAUNCHED = "relaunched"  # a new gateway came: verify it
START = "start"  # the start timeout is over and nothing relaunched it: start it through the manager
HOLD = "hold"  # it should be started, but not now (Hermes' breaker is backing off, the budget's cooldown)
CANNOT_START = "cannot-start"  # it should be started, and nothing configured can (signals only, budget spent)


def upstream_exit(state: GatewayState | None, up: Upstream | None, exit_code: int = EXIT_RESTART,
                  started: float | None = None, pid: int | None = None) -> str | None:
    """What says Hermes' own watchdog ended this gateway asking for a restart, or None. ``state`` must be
    the gateway's own last state file (the caller checks that it names the process that ended). The
    lifecycle ledger counts when it names ``pid``; one that names no process, only when written after
    ``started`` (epoch), the process's start (when these are given)."""
    said = []
    if state is not None and state.ok and state.exit_reason in UPSTREAM_EXITS and state.restart_requested:
        said.append(f"gateway_state.json: '{state.gateway_state}', exit_reason '{state.exit_reason}', "
                    "restart_requested")
    if up is not None and up.lifecycle_pid is not None and pid is not None:
        fresh = up.lifecycle_pid == pid
    else:
        fresh = started is None or (up is not None and up.lifecycle_at is not None and up.lifecycle_at >= started)
    if up is not None and fresh and up.lifecycle_phase == "exited" and up.lifecycle_exit_code == exit_code:
        said.append(f"state/gateway.lifecycle.json: phase 'exited', exit code {exit_code}"
                    + (f", exit_reason '{up.lifecycle_exit_reason}'" if up.lifecycle_exit_reason else ""))
    return "; ".join(said) or None


def storm_note(up: Upstream, now: float, release: Recognised | None) -> str | None:
    """Hermes' respawn-storm breaker has tripped: what to say, or None. Every release from 0.19.0 on keeps
    the starts breaker (gateway-starts.log: more than 5 starts in 120 s, then a sleep of up to 300 s; still
    in upstream's newest gateway/status.py); later ones add the crash-cycle breaker (#82574), so both are
    honoured there. A release not recognised: the starts rule; 0.14-0.18 have none."""
    if release is None or release.family is UNKNOWN:
        rules: tuple[StormRule, ...] = (STARTS_RULE,)
    else:
        own = release.family.storm
        rules = () if own is None else tuple(dict.fromkeys((STARTS_RULE, own)))
    for rule in rules:
        n = up.storm(now, rule)
        if not n:
            continue
        if rule.kind == STORM_CRASH_CYCLES:
            return (f"Hermes' restart-loop breaker has tripped ({n} crash cycles chained, no gap over "
                    f"{rule.window:.0f} s; {rule.describe()} trips it): its next boot skips the auto-resume that "
                    "keeps killing it, and a restart now would add a link to the chain")
        return (f"Hermes is backing off a respawn storm ({n} starts in the last {rule.window:.0f} s, more than "
                f"{rule.count}): restarting it now would fight its breaker")
    return None


@dataclass(frozen=True)
class ExitDecision:
    kind: str
    why: str


def after_exit(*, waited: float, start_timeout: float, relaunched: bool, starter: str | None,
               cannot_start: str = "", storm: str | None = None, budget_spent: str | None = None,
               budget_wait: str | None = None) -> ExitDecision:
    """``waited``: seconds since the gateway was seen gone; ``starter``: what would start it (a manager's
    description), None when nothing configured can (``cannot_start`` says why); ``storm``: Hermes' breaker is
    backing off (its note); ``budget_spent`` / ``budget_wait``: the restart budget refuses / delays a start."""
    if relaunched:
        return ExitDecision(RELAUNCHED, "a new gateway appeared: verifying it as after a restart of ours")
    if waited <= start_timeout:
        return ExitDecision(WAIT, f"waiting for its manager to start it again ({waited:.0f} of "
                                  f"{start_timeout:g} s)")
    late = f"nothing relaunched it within the start timeout ({start_timeout:g} s)"
    if starter is None:
        return ExitDecision(CANNOT_START, f"{late}, and {cannot_start or 'no manager is configured that can start it'}")
    if budget_spent:
        return ExitDecision(CANNOT_START, f"{late}; not starting it: {budget_spent}")
    if storm:
        return ExitDecision(HOLD, f"{late}; not starting it yet: {storm}")
    if budget_wait:
        return ExitDecision(HOLD, f"{late}; not starting it yet: {budget_wait}")
    return ExitDecision(START, f"{late} (launchd swallows an exit 75 that soon after a start, upstream #94540; "
                               f"a gateway run in a terminal has no manager): starting it with {starter}")
