"""An incident's life as a state machine: named stages, one transition point.

The stage is what incident.json calls its ``result``. ``_change`` is the only writer of it: it checks the
edge, updates the record, adds the timeline note, writes pending.json and the incident folder, says the
event line and sends the message, in that order (pending.json first: a daemon killed in between still
carries the restart on).

    OPEN --alert--> ALERTED --(a second witness: restart)--> RESTARTING / COOLING / GAVE_UP / ...
    OPEN --restart--> RESTARTING --verified--> RESTARTED | RELAUNCHED | STARTED
                                 --failed---> RESTART_FAILED | NOT_STARTED
         --budget waits--> COOLING --budget spent--> GAVE_UP --budget allows again--> RESTARTING
         --dry run--> DRY_RUN        --identity not proven--> NOT_RESTARTED
    OPEN | ALERTED | COOLING | NOT_STARTED --verdict over--> RECOVERED; any other stage closes as it is.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

from hermes_watchdog.daemon.world import World
from hermes_watchdog.record import incidents, notifications
from hermes_watchdog.record.incidents import Incident
from hermes_watchdog.timefmt import iso


class Stage(Enum):
    OPEN = "open"  # evidence taken, nothing done yet
    ALERTED = "alerted"  # its action is an alert (by policy, or restarts are off)
    COOLING = "cooling"  # a restart is wanted; the budget says wait
    GAVE_UP = "gave-up"  # the restart budget is spent: watched, not restarted
    DRY_RUN = "dry-run"  # a restart was wanted; --dry-run said what it would do
    NOT_RESTARTED = "not-restarted"  # the identity check failed just before the restart: nothing sent
    RESTARTING = "restarting"  # the restart machine is running (or waiting for Hermes' own relaunch)
    NOT_STARTED = "not-started"  # after Hermes' own exit nothing started it, nor could the watchdog
    RESTARTED = "restarted"
    RELAUNCHED = "relaunched"  # Hermes' own exit, relaunched by its manager
    STARTED = "started"  # Hermes' own exit, started by the watchdog
    RESTART_FAILED = "restart-failed"
    RECOVERED = "recovered"  # the verdict was over before (or without) a restart

    @property
    def acted(self) -> bool:
        """Its action is done: nothing more is tried until the verdict changes (or escalates)."""
        return self in {Stage.ALERTED, Stage.DRY_RUN, Stage.NOT_RESTARTED, Stage.RESTARTING, Stage.NOT_STARTED}


_ACTING = frozenset({Stage.ALERTED, Stage.COOLING, Stage.GAVE_UP, Stage.DRY_RUN, Stage.NOT_RESTARTED,
                     Stage.RESTARTING})
EDGES: dict[Stage, frozenset[Stage]] = {
    Stage.OPEN: _ACTING | {Stage.RECOVERED},
    Stage.ALERTED: _ACTING | {Stage.RECOVERED},  # escalated to a restart by a second witness
    Stage.COOLING: _ACTING | {Stage.RECOVERED},
    Stage.GAVE_UP: _ACTING,  # the budget allows again (or the policy now says alert)
    # Acted already; Hermes' own watchdog can still end the gateway for a restart (the relaunch is verified).
    Stage.DRY_RUN: frozenset({Stage.RESTARTING}),
    Stage.NOT_RESTARTED: frozenset({Stage.RESTARTING}),
    Stage.NOT_STARTED: frozenset({Stage.RESTARTING, Stage.RECOVERED}),  # a gateway runs again
    Stage.RESTARTING: frozenset({Stage.RESTARTED, Stage.RELAUNCHED, Stage.STARTED, Stage.RESTART_FAILED,
                                 Stage.NOT_STARTED}),
}
# Closing these says "recovered"; the others keep what the watchdog did (restarted, gave-up, dry-run...).
RECOVER_FROM = {Stage.OPEN, Stage.ALERTED, Stage.COOLING, Stage.NOT_STARTED}


class IllegalTransition(RuntimeError):
    pass


class IncidentLife:
    """One open incident of one gateway: its folder and record, its stage, whether its message went out."""

    def __init__(self, world: World, name: str, home: Path, incident: Incident,
                 stage: Stage = Stage.OPEN, notified: bool = False) -> None:
        self.world, self.name, self.home = world, name, home
        self.incident = incident
        self.stage = stage
        self.notified = notified  # the "incident" message has gone out
        self.closed = False
        # The give-up in force ({pid, create_time, signature, incident}), kept in state.json so a restarted
        # daemon carries on with this incident instead of opening (and announcing) a new one.
        self.gave_up_on: dict[str, Any] | None = None
        # Said once per incident, however often the policy flips between alert and restart meanwhile.
        self._said: set[Stage] = {stage} if stage in {Stage.GAVE_UP, Stage.COOLING} else set()
        incident.record["result"] = stage.value

    @classmethod
    def create(cls, world: World, name: str, home: Path, profile: str | None, signature: str, now: float,
               record: dict[str, Any], stack_text: str, log_tail: str, raw_state: Any) -> IncidentLife:
        """A new incident in a new folder of the state dir; one that cannot be made is said, and the incident
        lives on unwritten (a report must never stop a restart)."""
        state_dir = world.settings.state_dir
        try:
            folder: Path | None = incidents.new_folder(state_dir, signature, profile, now)
        except OSError as exc:
            world.write_problem(f"cannot create an incident folder in {state_dir}: {exc.strerror or exc}")
            folder = None
        return cls(world, name, home, Incident(folder or state_dir / "incidents" / "unwritable", signature, now,
                                               record, stack_text, log_tail, raw_state=raw_state,
                                               writable=folder is not None))

    @property
    def signature(self) -> str:
        return self.incident.signature

    @property
    def record(self) -> dict[str, Any]:
        return self.incident.record

    # ---------------------------------------------------------------- the one transition point
    def _change(self, to: Stage, note: str, event: tuple[str, str] | None = None, message: str | None = None,
                **record: Any) -> None:
        if self.closed or (to is not self.stage and to not in EDGES.get(self.stage, frozenset())):
            raise IllegalTransition(f"incident {self.incident.folder.name}: {self.stage.value} -> {to.value}")
        self.stage = to
        if to in {Stage.RESTARTING, Stage.DRY_RUN, Stage.NOT_RESTARTED}:
            self.gave_up_on = None  # the budget allowed a restart again: the give-up is over
        self.incident.record.update(record, result=to.value)
        self.incident.note(note)
        if to is Stage.RESTARTING:
            self.world.save_pending()  # first: a daemon killed now carries this restart on
        self.save()
        if event is not None:
            self.world.emit(event[0], event[1], self.name)
        if message is not None:
            self.notify(message)

    # ---------------------------------------------------------------- the edges, by what happened
    def alert(self, why: str) -> None:
        self._change(Stage.ALERTED, f"alert: {why}", action={"kind": "alert", "why": why})

    def cooling(self, reason: str) -> None:
        if self.stage is Stage.COOLING:
            return
        first = self._once(Stage.COOLING)
        self._change(Stage.COOLING, reason, ("WARN", f"restart delayed: {reason}") if first else None)

    def give_up(self, pid: int, create_time: float, reason: str) -> None:
        if self.stage is Stage.GAVE_UP:
            return  # said once
        self.gave_up_on = {"pid": pid, "create_time": create_time, "signature": self.signature,
                           "incident": self.incident.folder.name}
        first = self._once(Stage.GAVE_UP)
        # A give-up after a cooldown wait is its own message; at the opening it is in the incident message.
        self._change(Stage.GAVE_UP, f"give-up: {reason}",
                     ("GIVE-UP", f"not restarting PID {pid}: {reason}; still watching") if first else None,
                     notifications.GIVE_UP if self.notified and first else None)

    def dry_run(self, pid: int, why: str, manager: str) -> None:
        self._change(Stage.DRY_RUN, f"dry run: would restart PID {pid} with {manager}",
                     ("DRY-RUN", f"would restart PID {pid} with {manager} (no signal sent)"),
                     action={"kind": "dry-run", "why": why, "manager": manager})

    def not_restarted(self, why: str) -> None:
        self._change(Stage.NOT_RESTARTED, f"identity check failed before restart: {why}; nothing sent",
                     ("WARN", f"not restarting: {why}"))

    def restarting(self, note: str, message: str | None = None, **record: Any) -> None:
        """The restart machine is about to start (its record first, for pending.json), or a start of the
        watchdog's own after Hermes' exit is recorded on the way."""
        self._change(Stage.RESTARTING, note, None, message, **record)

    def finished(self, to: Stage, why: str, new_pid: int | None, verify: dict[str, Any]) -> None:
        self._change(to, f"restart over: {to.value} ({why})", new_pid=new_pid, verify=verify)

    def not_started(self, why: str, verify: dict[str, Any]) -> None:
        """Nothing relaunched the gateway after Hermes' own exit, and the watchdog could not: an alert, open
        until a gateway is back."""
        self._change(Stage.NOT_STARTED, f"not started: {why}", ("ALERT", f"the gateway is not running: {why}"),
                     None if self.notified else notifications.INCIDENT, action={"kind": "alert", "why": why},
                     new_pid=None, verify=verify)
        self.notified = True

    def close(self, why: str) -> Stage:
        """The verdict is over (or the restart is done): the record keeps what the watchdog did."""
        to = Stage.RECOVERED if self.stage in RECOVER_FROM else self.stage
        if Stage.GAVE_UP in self._said and self.stage in {Stage.ALERTED, Stage.COOLING}:
            to = Stage.GAVE_UP  # it gave up on the way: that is what the watchdog did
        self._change(to, f"closed: {to.value} ({why})", ("RECOVERED", f"{self.signature} over: {why}"),
                     notifications.RECOVERY if self.notified else None, closed_at=iso(self.world.wall()))
        self.closed = True
        self.gave_up_on = None  # a give-up belongs to its incident
        return to

    def _once(self, stage: Stage) -> bool:
        first = stage not in self._said
        self._said.add(stage)
        return first

    # ---------------------------------------------------------------- remarks, files and messages
    def note(self, line: str) -> None:
        """A remark that changes no stage."""
        self.incident.note(line)
        self.save()

    def save(self) -> None:
        inc = self.incident
        try:
            inc.save()
        except OSError as exc:
            self.world.write_problem(f"cannot write incident {inc.folder}: {exc.strerror or exc}")
        except Exception as exc:  # a report that cannot be written must never leave a restart half done
            self.world.write_problem(f"cannot save incident {inc.folder}: {type(exc).__name__}: {exc}")

    def notify(self, kind: str) -> None:
        if kind == notifications.INCIDENT:
            self.notified = True
        inc = self.incident
        self.world.send(notifications.build(kind, self.name, str(self.home), inc.record, str(inc.folder),
                                            self.world.wall(), str(Path.home())))
