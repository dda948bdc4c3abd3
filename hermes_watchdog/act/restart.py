"""A restart as an explicit state machine, spread over ticks so a slow gateway never blocks the loop.

    (watching) --request (manager; SIGTERM if it failed), start--> STOPPING --grace over, still alive--> KILLED
    KILLED by a kill_signal other than SIGKILL (SIGABRT: a last stack) --still alive after a short wait--> SIGKILL
    STOPPING or KILLED --old process gone--> VERIFYING --new gateway running, calm--> RESTARTED
    STOPPING or KILLED --stop timeout over, still alive--> FAILED
    VERIFYING --start timeout over--> FAILED

Hermes' own watchdog made the gateway exit 75 for a restart (judge/exits.py): the machine is entered at
VERIFYING (``after_exit``), nothing sent. A relaunch within the start timeout is verified as above; none,
and the time-driven edge asks judge/exits.py and starts the gateway through the manager itself:

    VERIFYING (Hermes' exit) --start timeout over, nothing relaunched, the manager can start--> STARTING
    STARTING --new gateway running, calm--> RESTARTED;  --start timeout over--> FAILED
    VERIFYING (Hermes' exit) --start timeout over, nothing can start it--> FAILED (the daemon alerts)

As in supervisor's ``process.py``: named states, one transition point (``_change``) that tells the
``Journal`` (which logs the event line, notes the incident and saves pending.json, in one place), and
the time-driven edges (``_timers``: grace over -> SIGKILL, start timeout over -> failed) kept apart
from the event edges (``_events``: old process gone, new gateway found, verified). The clock, the
process probe, the signal sender and the new-gateway check are injected (``Ports``), so every edge is
tested with plain objects and no processes.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from typing import Protocol

from hermes_watchdog.act.managers.base import RestartResult, ServiceManager, Target
from hermes_watchdog.act.restart_state import FINAL_SIGNALS, ORIGIN_HERMES, Phase, Restart
from hermes_watchdog.facts.identity import Identity
from hermes_watchdog.judge import exits

HOLD_RECHECK = 5.0  # seconds between looks while a start after Hermes' own exit is held back
FINAL_SIGKILL_AFTER = 5.0  # seconds a process may take to die of SIGABRT (writing its stacks) before SIGKILL


@dataclass(frozen=True)
class NewCheck:
    """What the new gateway looks like now: ``ready`` once it runs with a calm CPU; ``gone`` if it vanished."""

    ready: bool = False
    gone: bool = False
    detail: str = ""


class Ports(Protocol):
    def now(self) -> float: ...  # monotonic seconds

    def alive(self, ident: Identity) -> bool: ...  # is ``ident`` still that very process?

    def kill(self, ident: Identity, sig: signal.Signals) -> tuple[bool, str]: ...  # the guarded sender

    def find_new(self, old: Identity) -> tuple[Identity | None, str]: ...  # a new gateway (not ``old``)

    def check_new(self, new: Identity) -> NewCheck: ...  # sample it once more

    # Only after Hermes' own exit: what could start the gateway, and what holds a start back; then start it.
    def start_plan(self) -> StartPlan: ...

    def start(self) -> RestartResult: ...


@dataclass(frozen=True)
class StartPlan:
    """The inputs of judge/exits.after_exit that the world supplies (see there)."""

    starter: str | None  # the manager that would start it, described; None: nothing configured can
    cannot_start: str = ""
    storm: str | None = None
    budget_spent: str | None = None
    budget_wait: str | None = None


class Journal(Protocol):
    def transition(self, r: Restart, before: Phase | None, after: Phase, why: str) -> None: ...

    def event(self, r: Restart, kind: str, text: str) -> None: ...  # a remark that changes no state


@dataclass(frozen=True)
class Requested:
    """What asking for the restart did: the manager's answer, and the fallback SIGTERM's, if one was tried."""

    result: RestartResult
    fallback: str | None


class RestartMachine:
    """Drives one ``Restart`` from the moment the restart was asked for to RESTARTED or FAILED."""

    def __init__(self, r: Restart, ports: Ports, journal: Journal) -> None:
        self.r = r
        self.ports = ports
        self.journal = journal

    @classmethod
    def request(cls, manager: ServiceManager, target: Target, stop: threading.Event, ports: Ports,
                journal: Journal, *, wall: float, grace: float, start_timeout: float,
                kill_signal: signal.Signals = signal.SIGKILL) -> tuple[RestartMachine, Requested]:
        """Ask the manager for a restart. When it could not (no unit, a failing command), fall back to
        SIGTERM through the guarded sender and leave the relaunch to KeepAlive / Restart=: the gateway was
        judged wedged. The caller records what happened, then ``start`` enters STOPPING."""
        result = manager.restart(target, stop)
        signals, fallback = list(result.signals), None
        if not result.ok and manager.name != "signal":
            ok, fallback = ports.kill(target.ident, signal.SIGTERM)
            if ok:
                signals.append("SIGTERM")
        now = ports.now()
        r = Restart(old=target.ident, manager=result.manager, started=now, started_wall=wall, grace=grace,
                    start_timeout=start_timeout, kill_signal=kill_signal if kill_signal in FINAL_SIGNALS else
                    signal.SIGKILL, kill_at=now + grace, stop_until=now + grace + start_timeout, signals=signals,
                    stop_asked=result.ok or "SIGTERM" in signals)
        return cls(r, ports, journal), Requested(result, fallback)

    @classmethod
    def after_exit(cls, old: Identity, ports: Ports, journal: Journal, *, gone_at: float, wall: float,
                   start_timeout: float) -> RestartMachine:
        """Hermes' own watchdog ended ``old`` for a restart (seen gone at monotonic ``gone_at``): nothing is
        sent; the machine waits for the relaunch, and starts the gateway itself if none comes in time."""
        r = Restart(old=old, manager=ORIGIN_HERMES, started=gone_at, started_wall=wall, grace=0.0,
                    start_timeout=start_timeout, phase=Phase.VERIFYING, kill_at=gone_at, stop_until=gone_at,
                    verify_until=gone_at + start_timeout, origin=ORIGIN_HERMES)
        return cls(r, ports, journal)

    def start(self, why: str) -> None:
        """The event edge (watching) -> STOPPING (or VERIFYING after Hermes' own exit), through the journal
        like every other edge."""
        self.journal.transition(self.r, None, self.r.phase, why)

    def resume(self) -> None:
        """A daemon restarted mid-restart: deadlines that passed while it was down start afresh from now
        for verification (the new gateway may have come up meanwhile)."""
        now = self.ports.now()
        if self.r.phase.waiting_new and self.r.verify_until <= now:
            self.r.verify_until = now + self.r.start_timeout

    # ---------------------------------------------------------------- the one transition point
    def _change(self, after: Phase, why: str) -> None:
        before = self.r.phase
        if before == after:
            return
        self.r.phase = after
        if after in {Phase.VERIFYING, Phase.STARTING}:
            self.r.verify_until = self.ports.now() + self.r.start_timeout
        if after.done:
            self.r.detail = why
        self.journal.transition(self.r, before, after, why)

    # ---------------------------------------------------------------- one step per tick
    def step(self) -> Phase:
        """Time-driven edges first (a deadline that passed acts on the world), then event edges."""
        if not self.r.phase.done:
            self._timers()
        if not self.r.phase.done:
            self._events()
        return self.r.phase

    def _timers(self) -> None:
        r, now = self.r, self.ports.now()
        if r.phase == Phase.STOPPING and now >= r.kill_at and self.ports.alive(r.old):
            final = r.final_signal()
            if final != r.kill_signal:
                self.journal.event(r, "INFO", f"{r.kill_signal.name} only ends a process already being stopped, "
                                              f"and nothing asked PID {r.old.pid} to stop: {final.name}")
            ok, text = self.ports.kill(r.old, final)  # identity re-checked inside the sender
            r.killed = ok
            r.signals.append(final.name if ok else f"{final.name} not sent")
            self._change(Phase.KILLED, f"still alive {r.grace:g} s after the restart request: {text}")
        elif (r.phase == Phase.KILLED and "SIGABRT" in r.signals and "SIGKILL" not in r.signals
              and now >= r.kill_at + FINAL_SIGKILL_AFTER and self.ports.alive(r.old)):
            ok, text = self.ports.kill(r.old, signal.SIGKILL)
            r.signals.append("SIGKILL" if ok else "SIGKILL not sent")
            self.journal.event(r, "KILL", f"PID {r.old.pid} outlived SIGABRT by {FINAL_SIGKILL_AFTER:g} s: {text}")
        elif r.phase.stopping and now >= r.stop_until and self.ports.alive(r.old):
            self._change(Phase.FAILED, f"old PID {r.old.pid} still alive {r.stop_until - r.started:.0f} s "
                                       "after the restart request")
        elif r.phase == Phase.VERIFYING and now > r.verify_until and r.origin == ORIGIN_HERMES and r.new is None:
            self._after_exit(now)
        elif r.phase.waiting_new and now > r.verify_until:
            what = ("no new gateway appeared" if r.new is None else
                    f"new gateway PID {r.new.pid} did not reach 'running' with a calm CPU")
            if r.phase == Phase.STARTING:
                what += " after the watchdog started it"
            self._change(Phase.FAILED, f"{what} within {r.start_timeout:g} s")

    def _after_exit(self, now: float) -> None:
        """Hermes' own exit, and nothing relaunched the gateway within the start timeout."""
        r = self.r
        new, how = self.ports.find_new(r.old)  # one last look: never start a second gateway
        if new is not None:
            r.new = new
            self.journal.event(r, "VERIFY", f"new gateway PID {new.pid} ({how}); waiting for state 'running' and "
                                            "a calm CPU")
            return
        plan = self.ports.start_plan()
        d = exits.after_exit(waited=now - r.started, start_timeout=r.start_timeout, relaunched=False,
                             starter=plan.starter, cannot_start=plan.cannot_start, storm=plan.storm,
                             budget_spent=plan.budget_spent, budget_wait=plan.budget_wait)
        if d.kind == exits.HOLD:
            r.verify_until = now + HOLD_RECHECK  # ask again a little later, not every tick
            if d.why != r.held:
                r.held = d.why
                self.journal.event(r, "WARN", d.why)
            return
        if d.kind != exits.START:
            self._change(Phase.FAILED, d.why)
            return
        result = self.ports.start()
        r.manager, r.started_it = result.manager, result.ok
        if not result.ok:
            self._change(Phase.FAILED, f"{d.why}; the start failed: {result.detail}")
            return
        self._change(Phase.STARTING, f"{d.why}: {result.detail}")

    def _events(self) -> None:
        r = self.r
        if r.phase.stopping and not self.ports.alive(r.old):
            self._change(Phase.VERIFYING, f"old PID {r.old.pid} is gone")  # and look for the new one at once
        if not r.phase.waiting_new:
            return
        if r.new is None:
            new, how = self.ports.find_new(r.old)
            if new is None:
                return
            r.new = new
            self.journal.event(r, "VERIFY", f"new gateway PID {new.pid} ({how}); waiting for state 'running' and "
                                            "a calm CPU")
        check = self.ports.check_new(r.new)
        if check.gone:
            self.journal.event(r, "INFO", f"new gateway PID {r.new.pid} vanished")
            r.new = None
        elif check.ready:
            self._change(Phase.RESTARTED, check.detail)
