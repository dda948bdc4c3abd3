"""Hermes' own exit for a restart, wired to the daemon: the watched gateway is gone, and its files say its
own watchdog ended it asking to be started again (judge/exits.py). Nothing is sent and nothing is done
twice: the restart machine (act/restart.py) waits for the manager's relaunch and verifies it, or, when
none comes within the start timeout, starts the gateway through the configured manager, within the
restart budget and never while Hermes' respawn-storm breaker is backing off.
"""

from __future__ import annotations

import signal

from hermes_watchdog.act.managers import Target
from hermes_watchdog.act.managers.base import RestartResult
from hermes_watchdog.act.restart import NewCheck, RestartMachine, StartPlan
from hermes_watchdog.act.restart_state import ORIGIN_HERMES, Restart
from hermes_watchdog.daemon.incident_life import IncidentLife
from hermes_watchdog.daemon.restarts import WatchJournal
from hermes_watchdog.daemon.watch import Watch
from hermes_watchdog.daemon.world import World
from hermes_watchdog.facts.identity import Identity
from hermes_watchdog.facts.readings import GatewayState
from hermes_watchdog.judge import budget
from hermes_watchdog.judge.exits import storm_note, upstream_exit
from hermes_watchdog.judge.verdict import GATEWAY_GONE
from hermes_watchdog.observe import processes, upstream
from hermes_watchdog.record import notifications
from hermes_watchdog.timefmt import iso


class ExitPorts:
    """The world's restart ports, plus what a start after Hermes' own exit needs: the manager, the budget,
    the breaker."""

    def __init__(self, world: World, w: Watch, old: Identity) -> None:
        self.world, self.w, self.old = world, w, old
        self.base = world.restart_ports(w.home)

    def now(self) -> float:
        return self.base.now()

    def alive(self, ident: Identity) -> bool:
        return self.base.alive(ident)

    def kill(self, ident: Identity, sig: signal.Signals) -> tuple[bool, str]:
        return self.base.kill(ident, sig)

    def find_new(self, old: Identity) -> tuple[Identity | None, str]:
        return self.base.find_new(old)

    def check_new(self, new: Identity) -> NewCheck:
        return self.base.check_new(new)

    def start_plan(self) -> StartPlan:
        world, w = self.world, self.w
        manager = world.starter(Target(w.home, w.profile, self.old))
        why_not = manager.cannot_start() or (f"this is a dry run: it would start it with {manager.describe()}"
                                             if world.cfg.dry_run else "")
        decision = budget.decide(w.restarts, world.wall(), world.settings.budget)
        # The family recognised for the gateway that exited (its window is kept while the machine runs).
        storm = storm_note(upstream.read(w.home), world.wall(), w.release)
        return StartPlan(starter=None if why_not else manager.describe(), cannot_start=why_not, storm=storm,
                         budget_spent=decision.reason if decision.exhausted else None,
                         budget_wait=decision.reason if not decision.allowed and not decision.exhausted else None)

    def start(self) -> RestartResult:
        world, w = self.world, self.w
        target = Target(w.home, w.profile, self.old)
        result = world.starter(target).start(target, world.stop)
        w.count_restart(world.wall())  # a start of ours counts in the budget like a restart
        if w.life is not None:
            w.life.restarting(
                f"start via {result.manager}: {'ok' if result.ok else 'failed'} ({result.detail})",
                None if w.life.notified else notifications.INCIDENT,
                restart={"manager": result.manager, "ok": result.ok, "detail": result.detail, "argv": result.argv,
                         "signals": [], "at": iso(world.wall()), "kind": "start after Hermes' own exit"},
                action={"kind": "start", "why": "nothing relaunched the gateway after Hermes' own watchdog made "
                                                "it exit"})
        return result


def machine_for(world: World, w: Watch, r: Restart) -> RestartMachine:
    """The machine of a restart resumed from pending.json."""
    if r.origin == ORIGIN_HERMES:  # resumed after Hermes' own exit: it may still have to start the gateway
        return RestartMachine(r, ExitPorts(world, w, r.old), WatchJournal(world, w))
    return RestartMachine(r, world.restart_ports(w.home), WatchJournal(world, w))


def seen_exit(world: World, w: Watch, old: Identity, state: GatewayState, gone: str) -> bool:
    """The watched gateway ``old`` is gone (``gone`` says how). If its own last state file (naming it) or the
    lifecycle ledger says Hermes' watchdog ended it for a restart, take it from there and return True."""
    # The state file speaks for it only when it names it; the ledger, when it names its PID (later releases
    # stamp only the ledger before os._exit(75), and the shutdown watchdog removes gateway.pid first).
    own = state.ok and processes.matches_record(old, state.pid, state.start_time)[0]
    said = upstream_exit(state if own else None, upstream.read(w.home), started=old.create_time, pid=old.pid)
    if said is None:
        return False
    world.emit("LOST", f"gateway PID {old.pid} lost: {gone}", w.name)
    now = world.wall()
    why = (f"gateway PID {old.pid} ended by Hermes' own watchdog asking for a restart ({said}); waiting "
           f"{world.cfg.start_timeout:g} s for its manager to start it again, then the watchdog starts it")
    world.emit("EXIT", why, w.name)
    if w.life is None:
        _open(world, w, old, state, said, now)
    else:  # an incident of ours was open on that gateway (e.g. an alert while Hermes was handling it)
        w.life.note(f"Hermes' own watchdog ended PID {old.pid} for a restart ({said}): no restart of ours")
    inc = w.incident
    machine = RestartMachine.after_exit(old, ExitPorts(world, w, old), WatchJournal(world, w),
                                        gone_at=world.mono(), wall=now, start_timeout=world.cfg.start_timeout)
    w.restarting(machine, {"at": iso(now), "pid": old.pid, "signature": inc.signature if inc else GATEWAY_GONE,
                           "manager": "hermes", "result": "restarting", "incident": inc.folder.name if inc else ""})
    if w.life is not None:
        w.life.restarting(why)
    machine.start(why)
    return True


def _open(world: World, w: Watch, old: Identity, state: GatewayState, said: str, now: float) -> None:
    w.counts.opened += 1
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
           "restart": None, "new_pid": None}
    _, _, log_tail = world.gateway_files(w.home)
    life = IncidentLife.create(world, w.name, w.home, w.profile, GATEWAY_GONE, now, rec,
                               "(no stack: the gateway had already exited)\n", log_tail,
                               state.read.data if state.ok else None)
    w.open_incident(life)
    life.note(f"opened: PID {old.pid} exited; Hermes' own watchdog asked for a restart ({said})")
