"""Hermes' own exit for a restart, wired to the daemon: the watched gateway is gone, and its files say its
own watchdog ended it asking to be started again (judge/exits.py). Nothing is sent and nothing is done
twice: the restart machine (act/restart.py) waits for the manager's relaunch and verifies it, or, when
none comes within the start timeout, starts the gateway through the configured manager, within the
restart budget and never while Hermes' respawn-storm breaker is backing off.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from hermes_watchdog.act.managers import ServiceManager, Target, select_starter
from hermes_watchdog.act.managers.base import RestartResult
from hermes_watchdog.act.restart import RestartMachine, StartPlan
from hermes_watchdog.daemon.restarts import LivePorts, WatchJournal
from hermes_watchdog.daemon.watch import Watch
from hermes_watchdog.judge import budget
from hermes_watchdog.judge.exits import storm_note, upstream_exit
from hermes_watchdog.judge.verdict import GATEWAY_GONE
from hermes_watchdog.observe import logs, processes, statefile, upstream
from hermes_watchdog.observe.processes import Identity
from hermes_watchdog.record import incidents, notifications
from hermes_watchdog.record.timefmt import iso

if TYPE_CHECKING:
    from hermes_watchdog.daemon.loop import Daemon


class ExitPorts(LivePorts):
    """LivePorts, plus what a start after Hermes' own exit needs: the manager, the budget, the breaker."""

    def __init__(self, d: Daemon, w: Watch, old: Identity) -> None:
        super().__init__(d, w)
        self.old = old

    def _starter(self) -> ServiceManager:
        cfg, w = self.d.cfg, self.w
        return select_starter(cfg.restart_with, Target(w.home, w.profile, self.old), cfg.restart_command,
                              cfg.command_timeout, s6_scandirs=cfg.s6_scandir)

    def start_plan(self) -> StartPlan:
        d, w = self.d, self.w
        manager = self._starter()
        why_not = manager.cannot_start() or (f"this is a dry run: it would start it with {manager.describe()}"
                                             if d.cfg.dry_run else "")
        decision = budget.decide(w.restarts, time.time(), d.budget)
        # The family recognised for the gateway that exited (its window is kept while the machine runs).
        storm = storm_note(upstream.read(w.home), time.time(), w.release)
        return StartPlan(starter=None if why_not else manager.describe(), cannot_start=why_not, storm=storm,
                         budget_spent=decision.reason if decision.exhausted else None,
                         budget_wait=decision.reason if not decision.allowed and not decision.exhausted else None)

    def start(self) -> RestartResult:
        d, w = self.d, self.w
        manager = self._starter()
        result = manager.start(Target(w.home, w.profile, self.old), d.stop)
        w.restarts.append(time.time())  # a start of ours counts in the budget like a restart
        inc = w.incident
        if inc is not None:
            inc.record["restart"] = {"manager": result.manager, "ok": result.ok, "detail": result.detail,
                                     "argv": result.argv, "signals": [], "at": iso(time.time()),
                                     "kind": "start after Hermes' own exit"}
            inc.record["action"] = {"kind": "start", "why": "nothing relaunched the gateway after Hermes' own "
                                                            "watchdog made it exit"}
            inc.note(f"start via {result.manager}: {'ok' if result.ok else 'failed'} ({result.detail})")
            d.responder.save(w)
            if not w.notified:
                d.responder.notify(w, notifications.INCIDENT)
                w.notified = True
        return result


def seen_exit(d: Daemon, w: Watch, old: Identity, state: statefile.GatewayState, gone: str) -> bool:
    """The watched gateway ``old`` is gone (``gone`` says how). If its own last state file (naming it) or the
    lifecycle ledger says Hermes' watchdog ended it for a restart, take it from there and return True."""
    # The state file speaks for it only when it names it; the ledger, when it names its PID (later releases
    # stamp only the ledger before os._exit(75), and the shutdown watchdog removes gateway.pid first).
    own = state.ok and processes.matches_record(old, state.pid, state.start_time)[0]
    said = upstream_exit(state if own else None, upstream.read(w.home), started=old.create_time, pid=old.pid)
    if said is None:
        return False
    d.log.emit("LOST", f"gateway PID {old.pid} lost: {gone}", w.name)
    now = time.time()
    why = (f"gateway PID {old.pid} ended by Hermes' own watchdog asking for a restart ({said}); waiting "
           f"{d.cfg.start_timeout:g} s for its manager to start it again, then the watchdog starts it")
    d.log.emit("EXIT", why, w.name)
    inc = w.incident
    if inc is None:
        inc = _open(d, w, old, state, said, now)
    else:  # an incident of ours was open on that gateway (e.g. an alert while Hermes was handling it)
        inc.note(f"Hermes' own watchdog ended PID {old.pid} for a restart ({said}): no restart of ours")
    if inc is not None:
        inc.note(why)
    w.acted = True
    w.machine = RestartMachine.after_exit(old, ExitPorts(d, w, old), WatchJournal(d, w), gone_at=time.monotonic(),
                                          wall=now, start_timeout=d.cfg.start_timeout)
    w.history.append({"at": iso(now), "pid": old.pid, "signature": inc.signature if inc else GATEWAY_GONE,
                      "manager": "hermes", "result": "restarting", "incident": inc.folder.name if inc else ""})
    del w.history[:-49]
    w.machine.start(why)
    return True


def _open(d: Daemon, w: Watch, old: Identity, state: statefile.GatewayState, said: str,
          now: float) -> incidents.Incident | None:
    d.incident_count += 1
    w.counts.incidents[GATEWAY_GONE] += 1
    reasons = [f"gateway PID {old.pid} has exited", f"Hermes' own watchdog asked for a restart: {said}"]
    rec = {"signature": GATEWAY_GONE, "confidence": 0.95, "reasons": reasons, "opened_at": iso(now),
           "taken_at": iso(now), "pid": old.pid, "identity": old.to_dict(),
           "hermes_home": {"path": str(w.home), "profile": w.profile, "source": "watched"},
           "process": {"cmdline": list(old.cmdline), "looks_like_gateway": True},
           "verdict": {"signature": GATEWAY_GONE, "confidence": 0.95, "reasons": reasons},
           "stack": {"captured": False, "reason": "the gateway had already exited"},
           "action": {"kind": "wait", "why": "Hermes asked its manager for a restart: the watchdog verifies the "
                                            "relaunch, and starts the gateway itself only if none comes"},
           "restart": None, "result": "open", "new_pid": None}
    try:
        folder = incidents.new_folder(d.state_dir, GATEWAY_GONE, w.profile, now)
    except OSError as exc:
        d.say_write_problem(f"cannot create an incident folder in {d.state_dir}: {exc.strerror or exc}")
        folder = None
    w.incident = incidents.Incident(folder or d.state_dir / "incidents" / "unwritable", GATEWAY_GONE, now, rec,
                                    "(no stack: the gateway had already exited)\n", logs.gateway_tail(w.home),
                                    raw_state=state.read.data if state.ok else None, writable=folder is not None)
    w.notified = False
    w.incident.note(f"opened: PID {old.pid} exited; Hermes' own watchdog asked for a restart ({said})")
    d.responder.save(w)
    return w.incident
