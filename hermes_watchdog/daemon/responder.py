"""What the daemon does with a decided action: open an incident (evidence first), alert, or ask for a
restart within the budget; close the incident when the verdict is over. The restart itself is the state
machine in act/restart.py, started through daemon/restarts.py."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hermes_watchdog import diagnosis
from hermes_watchdog.act.managers import Target, select
from hermes_watchdog.daemon import restarts
from hermes_watchdog.daemon.watch import Watch
from hermes_watchdog.judge import budget, policy
from hermes_watchdog.judge.cpu import usage
from hermes_watchdog.judge.verdict import UNKNOWN, Verdict
from hermes_watchdog.observe import discovery, logs, processes, stack_capture, statefile
from hermes_watchdog.observe.stacks import StackAnalysis
from hermes_watchdog.record import incidents, notifications
from hermes_watchdog.record.render import loop_text
from hermes_watchdog.record.timefmt import iso

if TYPE_CHECKING:
    from hermes_watchdog.daemon.loop import Daemon


class StopRequested(Exception):
    """SIGTERM came while evidence was being taken: the loop ends without acting."""


class Responder:
    def __init__(self, d: Daemon) -> None:
        self.d = d

    def handle(self, w: Watch, verdict: Verdict, action: policy.Action, held: float) -> None:
        if (w.incident is not None and verdict.signature not in {w.incident.signature, UNKNOWN}
                and action.kind in {policy.NONE, policy.WAIT}):
            self.close(w, "recovered", f"verdict is now {verdict.signature}")
            return
        if action.kind not in {policy.ALERT, policy.RESTART}:
            return
        opened = w.incident is None and not self._rejoin_gave_up(w, verdict)
        if opened:
            self._open(w, verdict, action)
        elif self._escalates(w, verdict, action):
            w.acted = False
        self._act(w, action)
        if opened and w.incident is not None:
            # One message per incident, sent once the first action is known (restart, alert, give-up).
            self.notify(w, notifications.INCIDENT)
            w.notified = True

    def _escalates(self, w: Watch, verdict: Verdict, action: policy.Action) -> bool:
        """An incident that was only an alert now calls for a restart (a second witness of a frozen loop
        came in): act again, on the same incident."""
        inc = w.incident
        if inc is None or not w.acted or action.kind != policy.RESTART or verdict.signature != inc.signature:
            return False
        if (inc.record.get("action") or {}).get("kind") != "alert" or inc.record.get("restart"):
            return False
        inc.note(f"escalated: {action.why}")
        self.d.log.emit("INFO", f"{verdict.signature} on PID {w.ident.pid if w.ident else '?'}: {action.why}; "
                                "now restarting", w.name)
        return True

    def _act(self, w: Watch, action: policy.Action) -> None:
        if w.acted or w.incident is None:
            return
        if action.kind == policy.RESTART and self.d.cfg.restart_with != "none":
            self._try_restart(w, action)
            return
        w.acted = True
        why = action.why if action.kind != policy.RESTART else f"{action.why}; restarts are off (--restart-with none)"
        w.incident.record["action"] = {"kind": "alert", "why": why}
        self.save(w)

    def _rejoin_gave_up(self, w: Watch, verdict: Verdict) -> bool:
        """A daemon restarted after a give-up: the same gateway process still showing the same signature,
        with the budget still spent, is the incident already opened and announced. Carry on with it (no new
        folder, no new message); True when that was done."""
        d = self.d
        gave_up, w.gave_up = w.gave_up, None
        if gave_up is None or w.ident is None or gave_up["signature"] != verdict.signature:
            return False
        if gave_up["pid"] != w.ident.pid or abs(gave_up["create_time"] - w.ident.create_time) > 0.01:
            return False
        if not budget.decide(w.restarts, time.time(), d.budget).exhausted:
            return False
        name = gave_up["incident"]
        inc = incidents.load(incidents.incidents_dir(d.state_dir) / name, verdict.signature) \
            if name == Path(name).name and name not in {"", ".", ".."} else None
        if inc is None:
            return False
        inc.note("the watchdog restarted; same gateway, same signature, restart budget still spent: "
                 "carrying on with this incident")
        w.incident, w.gave_up = inc, gave_up
        w.acted, w.notified, w.said.gave_up, w.said.cooldown = False, True, True, False
        d.incident_count += 1  # still a problem: `run --once` says so in its exit code
        self.save(w)
        d.log.emit("INFO", f"{verdict.signature} on PID {w.ident.pid} with the restart budget still spent: "
                           f"carrying on with incident {inc.folder} (no new incident, no new message)", w.name)
        return True

    def _open(self, w: Watch, verdict: Verdict, action: policy.Action) -> None:
        """Evidence first: the stack, the CPU window, the state and the log tail, before any signal."""
        d = self.d
        assert w.ident is not None
        d.incident_count += 1
        w.counts.incidents[verdict.signature] += 1
        cpu = usage(list(w.window.snaps))
        stack = stack_capture.choose(d.cfg.stack_with).capture(
            w.ident, w.home, cpu.hot.tid if cpu and cpu.hot else None, count=d.cfg.stack_dumps, stop=d.stop)
        if d.stop.is_set():
            raise StopRequested
        # The hot thread's stack is evidence for the report; the verdict stands on the loop's own samples.
        w.counts.stacks["captured" if stack.captured else "failed"] += 1
        now = time.time()
        rec = self._record(w, verdict, stack, action, now)
        try:
            folder = incidents.new_folder(d.state_dir, verdict.signature, w.profile, now)
        except OSError as exc:
            d.say_write_problem(f"cannot create an incident folder in {d.state_dir}: {exc.strerror or exc}")
            folder = None
        w.incident = incidents.Incident(folder or d.state_dir / "incidents" / "unwritable", verdict.signature,
                                        now, rec, stack_capture.render(stack) + _loop_lines(verdict),
                                        logs.gateway_tail(w.home),
                                        raw_state=statefile.read_state(w.home).read.data, writable=folder is not None)
        w.acted = False
        w.gave_up = None  # a give-up belongs to its incident; this is a new one
        w.said.gave_up = w.said.cooldown = False
        w.incident.note(f"opened: {verdict.signature} (confidence {verdict.confidence:.2f}) on PID {w.ident.pid}")
        self.save(w)
        reasons = "; ".join(verdict.reasons[1:3])
        d.log.emit("ALERT", f"{verdict.signature} on PID {w.ident.pid} (confidence {verdict.confidence:.2f}): "
                            f"{reasons}; " + (f"in {verdict.blocking}; " if verdict.blocking else "")
                            + f"evidence in {folder}", w.name)
        with contextlib.suppress(OSError):
            incidents.prune(d.state_dir, d.cfg.keep_incidents)

    def _record(self, w: Watch, verdict: Verdict, stack: StackAnalysis, action: policy.Action,
                now: float) -> dict[str, Any]:
        cfg = self.d.cfg
        assert w.ident is not None
        cpu = usage(list(w.window.snaps))
        state = w.window.states[-1][1] if w.window.states else None
        files = discovery.FilesSeen(
            pid_record=statefile.read_pid(w.home), state=state.state if state else statefile.read_state(w.home),
            state_matches=bool(state and state.matches), state_note=state.match_note if state else "",
            pid_matches=True, pid_note=w.found_how)
        base = diagnosis.base_record(
            w.ident, {"path": str(w.home), "profile": w.profile, "source": "watched"},
            diagnosis.cpu_dict(cpu, diagnosis.hot_thread_name(w.ident.pid, cpu, stack), tuple(w.window.snaps)),
            files, stack, verdict, diagnosis.environment(w.ident, processes.environ(w.ident.pid), stack, w.home), now,
            release=w.release)
        return {
            "signature": verdict.signature, "confidence": round(verdict.confidence, 2),
            "reasons": list(verdict.reasons), "opened_at": iso(now), "identity": w.ident.to_dict(), **base,
            "deaf": w.window.deaf.summary(),  # descriptors, CLOSE_WAIT, RSS growth (observe/deaf.py)
            "window_samples": [{"at": round(s.wall, 3), "cpu_seconds": round(s.cpu, 3)} for s in w.window.snaps],
            "thresholds": {"cpu": cfg.cpu_threshold, "window": cfg.window, "interval": cfg.interval,
                           "grace": cfg.grace, "max_restarts": cfg.max_restarts,
                           "restart_window": cfg.restart_window, "min_confidence": cfg.min_confidence},
            "action": {"kind": action.kind, "why": action.why}, "restart": None, "result": "open", "new_pid": None,
        }

    def _try_restart(self, w: Watch, action: policy.Action) -> None:
        d = self.d
        assert w.ident is not None and w.incident is not None
        inc = w.incident
        decision = budget.decide(w.restarts, time.time(), d.budget)
        inc.record["budget"] = {"used": decision.used, "max": d.cfg.max_restarts,
                                "window_seconds": d.cfg.restart_window, "remaining": decision.remaining}
        if not decision.allowed:
            if decision.exhausted and not w.said.gave_up:
                w.said.gave_up = True
                w.gave_up = {"pid": w.ident.pid, "create_time": w.ident.create_time, "signature": inc.signature,
                             "incident": inc.folder.name}
                inc.record["result"] = "gave-up"
                inc.note(f"give-up: {decision.reason}")
                self.save(w)
                d.log.emit("GIVE-UP", f"not restarting PID {w.ident.pid}: {decision.reason}; still watching", w.name)
                if w.notified:  # a give-up after a cooldown wait; at the opening it is in the incident message
                    self.notify(w, notifications.GIVE_UP)
            elif not decision.exhausted and not w.said.cooldown:
                w.said.cooldown = True
                inc.note(decision.reason)
                self.save(w)
                d.log.emit("WARN", f"restart delayed: {decision.reason}", w.name)
            return
        w.gave_up = None  # the budget allows a restart again
        w.acted = True
        if d.cfg.dry_run:
            manager = select(d.cfg.restart_with, Target(w.home, w.profile, w.ident), d.cfg.restart_command,
                             d.cfg.command_timeout, s6_scandirs=d.cfg.s6_scandir).describe()
            inc.record["action"] = {"kind": "dry-run", "why": action.why, "manager": manager}
            inc.record["result"] = "dry-run"
            inc.note(f"dry run: would restart PID {w.ident.pid} with {manager}")
            self.save(w)
            d.log.emit("DRY-RUN", f"would restart PID {w.ident.pid} with {manager} (no signal sent)", w.name)
            return
        same, why = discovery.reprove(w.ident, w.home)
        if not same:
            inc.record["result"] = "not-restarted"
            inc.note(f"identity check failed before restart: {why}; nothing sent")
            self.save(w)
            d.log.emit("WARN", f"not restarting: {why}", w.name)
            d.observer.lost(w, why)
            return
        restarts.begin(d, w, action)

    # ---------------------------------------------------------------- the incident's files and messages
    def note(self, w: Watch, line: str) -> None:
        if w.incident is not None:
            w.incident.note(line)
            self.save(w)

    def save(self, w: Watch) -> None:
        if w.incident is None:
            return
        try:
            w.incident.save()
        except OSError as exc:
            self.d.say_write_problem(f"cannot write incident {w.incident.folder}: {exc.strerror or exc}")
        except Exception as exc:  # a report that cannot be written must never leave a restart half done
            self.d.say_write_problem(f"cannot save incident {w.incident.folder}: {type(exc).__name__}: {exc}")

    def close(self, w: Watch, result: str, why: str) -> None:
        inc = w.incident
        if inc is None:
            return
        if inc.record.get("result") in {"open", "alert"}:
            inc.record["result"] = result
        inc.record["closed_at"] = iso(time.time())
        inc.note(f"closed: {result} ({why})")
        self.save(w)
        self.d.log.emit("RECOVERED", f"{inc.signature} over: {why}", w.name)
        if w.notified:
            self.notify(w, notifications.RECOVERY)
        w.incident = None
        w.acted = w.notified = False
        w.gave_up = None

    def notify(self, w: Watch, kind: str) -> None:
        dispatch = self.d.dispatch
        if dispatch is None or not dispatch.channels or w.incident is None:
            return
        inc = w.incident
        dispatch.send(notifications.build(kind, w.name, str(w.home), inc.record, str(inc.folder), time.time(),
                                          str(Path.home())))


def _loop_lines(verdict: Verdict) -> str:
    """The event loop's own samples, after the hot thread's dumps: they are what the verdict stands on."""
    loop = verdict.loop
    if not loop:
        return ""
    return "\nevent loop (" + str(loop.get("method") or "stack samples") + "):\n" + "".join(
        f"    {line}\n" for line in loop_text(loop))
