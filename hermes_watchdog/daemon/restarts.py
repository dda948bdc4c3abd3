"""The restart state machine (act/restart.py) wired to the real world and to the daemon's records.

``LivePorts`` gives the machine the clock, the process probe, the one guarded signal sender and the
check of a new gateway; ``WatchJournal`` is the machine's one transition point seen from the daemon: the
event line, the incident's note and record, and pending.json, all in one place.
"""

from __future__ import annotations

import signal
import time
from typing import TYPE_CHECKING

from hermes_watchdog.act.managers import Target, select
from hermes_watchdog.act.restart import NewCheck, RestartMachine
from hermes_watchdog.act.restart_state import ORIGIN_HERMES, Phase, Restart
from hermes_watchdog.daemon.watch import Watch
from hermes_watchdog.judge import policy
from hermes_watchdog.judge.cpu import CpuSnapshot, usage
from hermes_watchdog.observe import discovery, last_words, processes, sampler, stack_capture
from hermes_watchdog.observe.processes import Identity
from hermes_watchdog.observe.signals import guarded_signal
from hermes_watchdog.observe.statefile import read_state
from hermes_watchdog.record import notifications, status_file
from hermes_watchdog.record.timefmt import iso

if TYPE_CHECKING:
    from hermes_watchdog.daemon.loop import Daemon


class LivePorts:
    def __init__(self, d: Daemon, w: Watch) -> None:
        self.d, self.w = d, w
        self.new_snaps: list[CpuSnapshot] = []

    def now(self) -> float:
        return time.monotonic()

    def alive(self, ident: Identity) -> bool:
        return processes.same_process(ident)[0]

    def kill(self, ident: Identity, sig: signal.Signals) -> tuple[bool, str]:
        return guarded_signal(ident, sig, self.w.home)  # identity re-proven inside

    def find_new(self, old: Identity) -> tuple[Identity | None, str]:
        found = discovery.find_gateway(self.w.home)
        if found.ident is None or (found.ident.pid, found.ident.create_time) == (old.pid, old.create_time):
            return None, found.how
        self.new_snaps = []
        return found.ident, found.how

    def check_new(self, new: Identity) -> NewCheck:
        """Ready once its state file says running (and names it) and its CPU is calm over a second."""
        try:
            self.new_snaps.append(sampler.snapshot(new.pid))
        except (processes.ProcessGone, processes.ProcessHidden):
            return NewCheck(gone=True)
        state = read_state(self.w.home)
        running = state.ok and processes.matches_record(new, state.pid, state.start_time)[0] \
            and state.gateway_state == "running"
        snaps, cfg = self.new_snaps, self.d.cfg
        if not running or len(snaps) < 2 or snaps[-1].at - snaps[0].at < min(1.0, cfg.interval):
            return NewCheck()
        cpu = usage(snaps[-5:])
        # Calm by the same measure as "pegged": a new gateway spinning again on a busy host gets little CPU
        # time but still wants a whole core.
        if cpu is None or cpu.pegged_value >= cfg.cpu_threshold:
            return NewCheck()
        return NewCheck(ready=True, detail=f"new gateway PID {new.pid} is running, CPU {cpu.cores:.2f} cores"
                                           + (f" (demand {cpu.hot_demand:.2f})" if cpu.hot_demand is not None else ""))


class WatchJournal:
    def __init__(self, d: Daemon, w: Watch) -> None:
        self.d, self.w = d, w

    def event(self, r: Restart, kind: str, text: str) -> None:
        self.d.responder.note(self.w, text)
        self.d.log.emit(kind, text, self.w.name)

    def transition(self, r: Restart, before: Phase | None, after: Phase, why: str) -> None:
        d, w = self.d, self.w
        rec = w.incident.record.get("restart") if w.incident is not None else None
        if after == Phase.KILLED:
            if rec:
                rec["signals"] = list(r.signals)
                rec["sigkill_needed"] = True
            d.log.emit("KILL", f"PID {r.old.pid} {why}", w.name)
        elif after == Phase.VERIFYING:
            w.ident = None
            w.reset_window()
        elif after == Phase.STARTING:  # after Hermes' own exit, nothing relaunched it: the watchdog started it
            d.log.emit("START", why, w.name)
        if after.done:
            self._finish(r, after == Phase.RESTARTED, why)
        elif before is not None:
            d.responder.note(w, why)
        save_pending(d)

    def _finish(self, r: Restart, ok: bool, why: str) -> None:
        d, w = self.d, self.w
        took = time.monotonic() - r.started
        result = "restarted" if ok else "restart-failed"
        if r.origin == ORIGIN_HERMES:  # Hermes' own exit: relaunched by its manager, or started by us
            result = ("started" if r.started_it else "relaunched") if ok else result
        w.counts.restarts[(w.incident.signature if w.incident else "unknown", result)] += 1
        new_pid = r.new.pid if r.new else None
        if w.incident is not None:
            w.incident.record["result"] = result
            w.incident.record["new_pid"] = new_pid
            w.incident.record["verify"] = {"ok": ok, "detail": why, "seconds": round(took, 2),
                                           "sigkill_needed": r.killed}
        if w.incident is not None and r.killed and signal.SIGABRT.name in r.signals:
            self._last_words(r)
        if w.history:
            w.history[-1].update({"result": result, "new_pid": new_pid, "seconds": round(took, 2),
                                  "sigkill": r.killed})
        what = {"relaunched": "relaunch", "started": "start"}.get(result, "restart")
        d.log.emit("VERIFY" if ok else "WARN", f"{what} {'verified' if ok else 'failed'} in {took:.1f} s: {why}",
                   w.name)
        w.machine = None
        w.ident = r.new if ok else None
        w.reset_window()
        w.next_sample = 0.0
        if ok and w.ident is not None:
            w.found_how = "new gateway after restart"
        if r.origin == ORIGIN_HERMES and not ok and not r.started_it and r.new is None and w.incident is not None:
            # Nothing relaunched it and the watchdog could not start it: an alert, open until a gateway is back.
            w.incident.record.update(result="not-started", action={"kind": "alert", "why": why})
            d.log.emit("ALERT", f"the gateway is not running: {why}", w.name)
            d.responder.save(w)
            if not w.notified:
                d.responder.notify(w, notifications.INCIDENT)
                w.notified = True
            return
        d.responder.close(w, result, why)


    def _last_words(self, r: Restart) -> None:
        """The stack the gateway printed as SIGABRT ended it, collected now that it has been relaunched."""
        inc = self.w.incident
        assert inc is not None
        offset = (inc.record.get("restart") or {}).get("stderr_offset")
        stack, where = last_words.collect(self.w.home, r.old, r.manager, offset if isinstance(offset, int) else 0)
        if stack is None:
            inc.note(f"no stack found in {where} after SIGABRT")
            return
        before = inc.record.get("stack") or {}
        inc.record["stack"] = {**stack.to_dict(), "source": where, "live_capture_failed": before.get("reason")}
        inc.stack_text = stack_capture.render(stack).replace(
            "method: sigabrt\n", f"method: sigabrt (printed by faulthandler as the gateway died; from {where})\n", 1)
        top = f"innermost {stack.frames[0]}" if stack.frames else "no frames"
        inc.note(f"last stack collected from {where}: {top}")
        self.d.log.emit("INFO", f"PID {r.old.pid}'s last stack (SIGABRT) collected from {where}: {top}",
                        self.w.name)


def machine_for(d: Daemon, w: Watch, r: Restart) -> RestartMachine:
    if r.origin == ORIGIN_HERMES:  # resumed after Hermes' own exit: it may still have to start the gateway
        from hermes_watchdog.daemon.exits import ExitPorts  # exits builds on this module

        return RestartMachine(r, ExitPorts(d, w, r.old), WatchJournal(d, w))
    return RestartMachine(r, LivePorts(d, w), WatchJournal(d, w))


def begin(d: Daemon, w: Watch, action: policy.Action) -> None:
    """Ask for the restart (the machine asks the manager, with its SIGTERM fallback), record it, start."""
    assert w.ident is not None and w.incident is not None
    inc, cfg = w.incident, d.cfg
    target = Target(w.home, w.profile, w.ident)
    manager = select(cfg.restart_with, target, cfg.restart_command, cfg.command_timeout,
                     s6_scandirs=cfg.s6_scandir)
    d.log.emit("RESTART", f"restarting PID {w.ident.pid} with {manager.describe()}: {action.why}", w.name)
    # A loop proven starved cannot run Hermes' SIGTERM handler (it runs on that loop): the full grace would
    # be pure delay, so SIGKILL comes after the short one.
    starved = w.verdict is not None and w.verdict.sigterm_unhandled
    grace = min(cfg.grace, cfg.starved_grace) if starved else cfg.grace
    final, final_why = last_words.final_signal(w.ident, w.home, processes.environ(w.ident.pid),
                                               bool((inc.record.get("stack") or {}).get("captured", True)))
    stderr_at = last_words.error_log_size(w.home)
    w.machine, asked = RestartMachine.request(manager, target, d.stop, LivePorts(d, w), WatchJournal(d, w),
                                              wall=time.time(), grace=grace, start_timeout=cfg.start_timeout,
                                              kill_signal=final)
    if starved:
        inc.note(f"the loop is off its selector (it cannot run the SIGTERM handler): SIGKILL after {grace:g} s, "
                 f"not --grace {cfg.grace:g} s")
    result, r = asked.result, w.machine.r
    w.restarts.append(r.started_wall)
    # Months of running: keep what the budget can still see, and a short history.
    w.restarts = [t for t in w.restarts if r.started_wall - t < cfg.restart_window * 4]
    del w.history[:-49]
    detail = {"manager": result.manager, "ok": result.ok, "detail": result.detail, "argv": result.argv,
              "signals": list(r.signals), "at": iso(r.started_wall)}
    inc.note(f"restart via {result.manager}: {'ok' if result.ok else 'failed'} ({result.detail})")
    if asked.fallback is not None:
        detail["fallback"] = asked.fallback
        inc.note(f"fallback: {asked.fallback}")
        d.log.emit("WARN", f"{result.manager} restart failed ({result.detail}); {asked.fallback}", w.name)
    if final_why is not None:
        detail.update(final_signal=final.name, stderr_offset=stderr_at)
        inc.note(final_why)
    inc.record["restart"] = detail
    inc.record["result"] = "restarting"
    w.history.append({"at": iso(r.started_wall), "pid": w.ident.pid, "signature": inc.signature,
                      "manager": result.manager, "result": "restarting", "incident": inc.folder.name})
    w.machine.start(action.why)  # pending.json first (with the restart record), then the incident
    d.responder.save(w)
    if w.notified:  # a restart after a cooldown wait; at the opening it is in the incident message
        d.responder.notify(w, notifications.RESTART)


def save_pending(d: Daemon) -> None:
    now_wall, now_mono = time.time(), time.monotonic()
    entries = {}
    for w in d.watches.values():
        if w.machine is None or w.machine.r.phase.done:
            continue
        inc = w.incident
        entries[str(w.home)] = status_file.pending_entry(
            d.locks.family, w.machine.r.to_dict(lambda mono: now_wall + (mono - now_mono)),
            str(inc.folder) if inc else "", inc.signature if inc else "",
            inc.record.get("restart") if inc else None)
    try:
        status_file.write_pending(d.state_dir, entries)
    except OSError as exc:
        d.say_write_problem(f"cannot write {d.state_dir / status_file.PENDING_FILE}: {exc.strerror or exc}")
