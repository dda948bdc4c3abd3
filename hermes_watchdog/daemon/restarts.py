"""The restart state machine (act/restart.py) wired to the daemon's records.

``WatchJournal`` is the machine's one transition point seen from the gateway: the event line, the incident's
stage and note, and pending.json, all in one place. It records; it never calls back into the responder.
The machine's ports (clock, process probe, the one guarded signal sender, the check of a new gateway) come
from the World (daemon/real_world.py).
"""

from __future__ import annotations

import signal
from collections.abc import Iterable

from hermes_watchdog.act.managers import Target
from hermes_watchdog.act.restart import RestartMachine
from hermes_watchdog.act.restart_state import ORIGIN_HERMES, Phase, Restart
from hermes_watchdog.daemon.incident_life import Stage
from hermes_watchdog.daemon.watch import Watch
from hermes_watchdog.daemon.world import World
from hermes_watchdog.judge import policy
from hermes_watchdog.observe import last_words, stack_capture
from hermes_watchdog.record import notifications, status_file
from hermes_watchdog.timefmt import iso


class WatchJournal:
    def __init__(self, world: World, w: Watch) -> None:
        self.world, self.w = world, w

    def event(self, r: Restart, kind: str, text: str) -> None:
        if self.w.life is not None:
            self.w.life.note(text)
        self.world.emit(kind, text, self.w.name)

    def transition(self, r: Restart, before: Phase | None, after: Phase, why: str) -> None:
        world, w = self.world, self.w
        rec = w.incident.record.get("restart") if w.incident is not None else None
        if after == Phase.KILLED:
            if rec:
                rec["signals"] = list(r.signals)
                rec["sigkill_needed"] = True
            world.emit("KILL", f"PID {r.old.pid} {why}", w.name)
        elif after == Phase.VERIFYING:
            w.lose()  # gone: the new gateway is looked for by the machine, not by the observer
        elif after == Phase.STARTING:  # after Hermes' own exit, nothing relaunched it: the watchdog started it
            world.emit("START", why, w.name)
        if after.done:
            self._finish(r, after == Phase.RESTARTED, why)
        elif before is not None and w.life is not None:
            w.life.note(why)
        world.save_pending()

    def _finish(self, r: Restart, ok: bool, why: str) -> None:
        world, w = self.world, self.w
        took = world.mono() - r.started
        stage = Stage.RESTARTED if ok else Stage.RESTART_FAILED
        if r.origin == ORIGIN_HERMES and ok:  # Hermes' own exit: relaunched by its manager, or started by us
            stage = Stage.STARTED if r.started_it else Stage.RELAUNCHED
        result = stage.value
        w.counts.restarts[(w.incident.signature if w.incident else "unknown", result)] += 1
        new_pid = r.new.pid if r.new else None
        if w.life is not None and r.killed and signal.SIGABRT.name in r.signals:
            self._last_words(r)
        what = {"relaunched": "relaunch", "started": "start"}.get(result, "restart")
        world.emit("VERIFY" if ok else "WARN", f"{what} {'verified' if ok else 'failed'} in {took:.1f} s: {why}",
                   w.name)
        w.restart_done(r.new if ok else None, {"result": result, "new_pid": new_pid, "seconds": round(took, 2),
                                               "sigkill": r.killed})
        life = w.life
        if life is None:
            return
        verify = {"ok": ok, "detail": why, "seconds": round(took, 2), "sigkill_needed": r.killed}
        if r.origin == ORIGIN_HERMES and not ok and not r.started_it and r.new is None:
            # Nothing relaunched it and the watchdog could not start it: an alert, open until a gateway is back.
            life.not_started(why, verify)
            return
        life.finished(stage, why, new_pid, verify)
        life.close(why)
        w.close_incident()

    def _last_words(self, r: Restart) -> None:
        """The stack the gateway printed as SIGABRT ended it, collected now that it has been relaunched."""
        life = self.w.life
        assert life is not None
        inc = life.incident
        offset = (inc.record.get("restart") or {}).get("stderr_offset")
        stack, where = last_words.collect(self.w.home, r.old, r.manager, offset if isinstance(offset, int) else 0)
        if stack is None:
            life.note(f"no stack found in {where} after SIGABRT")
            return
        before = inc.record.get("stack") or {}
        inc.record["stack"] = {**stack.to_dict(), "source": where, "live_capture_failed": before.get("reason")}
        inc.stack_text = stack_capture.render(stack).replace(
            "method: sigabrt\n", f"method: sigabrt (printed by faulthandler as the gateway died; from {where})\n", 1)
        top = f"innermost {stack.frames[0]}" if stack.frames else "no frames"
        life.note(f"last stack collected from {where}: {top}")
        self.world.emit("INFO", f"PID {r.old.pid}'s last stack (SIGABRT) collected from {where}: {top}",
                        self.w.name)


def begin(world: World, w: Watch, action: policy.Action) -> None:
    """Ask for the restart (the machine asks the manager, with its SIGTERM fallback), record it, start."""
    life, cfg = w.life, world.cfg
    assert w.ident is not None and life is not None
    target = Target(w.home, w.profile, w.ident)
    manager = world.manager(target)
    world.emit("RESTART", f"restarting PID {w.ident.pid} with {manager.describe()}: {action.why}", w.name)
    # A loop proven starved cannot run Hermes' SIGTERM handler (it runs on that loop): the full grace would
    # be pure delay, so SIGKILL comes after the short one.
    starved = w.verdict is not None and w.verdict.sigterm_unhandled
    grace = min(cfg.grace, cfg.starved_grace) if starved else cfg.grace
    final, final_why = world.final_signal(w.ident, w.home,
                                          bool((life.record.get("stack") or {}).get("captured", True)))
    stderr_at = world.error_log_size(w.home)
    machine, asked = RestartMachine.request(manager, target, world.stop, world.restart_ports(w.home),
                                              WatchJournal(world, w), wall=world.wall(), grace=grace,
                                              start_timeout=cfg.start_timeout, kill_signal=final)
    if starved:
        life.note(f"the loop is off its selector (it cannot run the SIGTERM handler): SIGKILL after {grace:g} s, "
                  f"not --grace {cfg.grace:g} s")
    result, r = asked.result, machine.r
    # Months of running: keep what the budget can still see, and a short history.
    w.count_restart(r.started_wall, keep=cfg.restart_window * 4)
    detail = {"manager": result.manager, "ok": result.ok, "detail": result.detail, "argv": result.argv,
              "signals": list(r.signals), "at": iso(r.started_wall)}
    if asked.fallback is not None:
        detail["fallback"] = asked.fallback
        life.note(f"fallback: {asked.fallback}")
        world.emit("WARN", f"{result.manager} restart failed ({result.detail}); {asked.fallback}", w.name)
    if final_why is not None:
        detail.update(final_signal=final.name, stderr_offset=stderr_at)
        life.note(final_why)
    w.restarting(machine, {"at": iso(r.started_wall), "pid": w.ident.pid, "signature": life.signature,
                           "manager": result.manager, "result": "restarting", "incident": life.incident.folder.name})
    # pending.json first (with the restart record), then the incident; a restart after a cooldown wait is
    # its own message (at the opening it is in the incident message).
    life.restarting(f"restart via {result.manager}: {'ok' if result.ok else 'failed'} ({result.detail})",
                    notifications.RESTART if life.notified else None, restart=detail)
    machine.start(action.why)


def save_pending(world: World, watches: Iterable[Watch]) -> None:
    now_wall, now_mono = world.wall(), world.mono()
    entries = {}
    for w in watches:
        if w.machine is None or w.machine.r.phase.done:
            continue
        inc = w.incident
        entries[str(w.home)] = status_file.pending_entry(
            world.family, w.machine.r.to_dict(lambda mono: now_wall + (mono - now_mono)),
            str(inc.folder) if inc else "", inc.signature if inc else "",
            inc.record.get("restart") if inc else None)
    state_dir = world.settings.state_dir
    try:
        status_file.write_pending(state_dir, entries)
    except OSError as exc:
        world.write_problem(f"cannot write {state_dir / status_file.PENDING_FILE}: {exc.strerror or exc}")
