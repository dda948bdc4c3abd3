"""What the daemon does with a decided action: open an incident (evidence first), alert, or ask for a
restart within the budget; close the incident when the verdict is over. The incident's stages are
daemon/incident_life.py; the restart itself is the state machine of act/restart.py, started through
daemon/restarts.py."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from hermes_watchdog import diagnosis
from hermes_watchdog.act.managers import Target
from hermes_watchdog.daemon import decide, presence, restarts
from hermes_watchdog.daemon.incident_life import IncidentLife, Stage
from hermes_watchdog.daemon.watch import Watch
from hermes_watchdog.daemon.world import World
from hermes_watchdog.facts.stacks import StackAnalysis
from hermes_watchdog.judge import budget, policy
from hermes_watchdog.judge.cpu import CpuUsage, usage
from hermes_watchdog.judge.verdict import Verdict
from hermes_watchdog.observe import discovery, stack_capture
from hermes_watchdog.record import incidents, notifications
from hermes_watchdog.record.render import loop_text
from hermes_watchdog.timefmt import iso


class StopRequested(Exception):
    """SIGTERM came while evidence was being taken: the loop ends without acting."""


class Responder:
    def __init__(self, world: World) -> None:
        self.world = world

    def handle(self, w: Watch, verdict: Verdict, action: policy.Action) -> None:
        """Decide (pure) and carry it out: what the daemon's tick does after the judge."""
        self.apply(w, self.decide(w, verdict, action))

    def decide(self, w: Watch, verdict: Verdict, action: policy.Action) -> list[decide.Effect]:
        world, cfg = self.world, self.world.cfg
        life = w.life
        return decide.respond(life.stage if life else None, life.signature if life else None, verdict, action,
                              budget.decide(w.restarts, world.wall(), world.settings.budget),
                              cfg.restart_with != "none", cfg.dry_run)

    def apply(self, w: Watch, effects: list[decide.Effect]) -> None:
        """The effects, in order; each acts on the incident as it stands after the one before."""
        world = self.world
        for e in effects:
            life = w.life
            if isinstance(e, decide.Open):
                opened = not self._rejoin_gave_up(w, e.verdict)
                if opened:
                    self._open(w, e.verdict, e.action)
                # Its first action, decided on the incident as it now stands and the budget as it is now.
                self.apply(w, self.decide(w, e.verdict, e.action))
                if opened and w.life is not None and not w.life.notified:
                    w.life.notify(notifications.INCIDENT)  # one message, once the first action is known
                return
            if life is None:
                return  # nothing was opened (or the incident closed): nothing more to do
            if isinstance(e, decide.Close):
                self.close(w, e.why)
            elif isinstance(e, decide.Escalate):
                life.note(f"escalated: {e.why}")
                world.emit("INFO", f"{life.signature} on PID {w.ident.pid if w.ident else '?'}: {e.why}; "
                                   "now restarting", w.name)
            elif isinstance(e, decide.Alert):
                life.alert(e.why)
            elif isinstance(e, decide.GiveUp | decide.Cool | decide.DryRun | decide.Restart):
                self._restart_step(w, life, e)

    def _rejoin_gave_up(self, w: Watch, verdict: Verdict) -> bool:
        """A daemon restarted after a give-up: the same gateway process still showing the same signature,
        with the budget still spent, is the incident already opened and announced. Carry on with it (no new
        folder, no new message); True when that was done."""
        world = self.world
        gave_up = w.take_resumed_give_up()
        if gave_up is None or w.ident is None or gave_up["signature"] != verdict.signature:
            return False
        if gave_up["pid"] != w.ident.pid or abs(gave_up["create_time"] - w.ident.create_time) > 0.01:
            return False
        if not budget.decide(w.restarts, world.wall(), world.settings.budget).exhausted:
            return False
        name = gave_up["incident"]
        inc = incidents.load(incidents.incidents_dir(world.settings.state_dir) / name, verdict.signature) \
            if name == Path(name).name and name not in {"", ".", ".."} else None
        if inc is None:
            return False
        life = IncidentLife(world, w.name, w.home, inc, Stage.GAVE_UP, notified=True)
        life.gave_up_on = gave_up
        w.open_incident(life)
        w.counts.opened += 1  # still a problem: `run --once` says so in its exit code
        life.note("the watchdog restarted; same gateway, same signature, restart budget still spent: "
                  "carrying on with this incident")
        world.emit("INFO", f"{verdict.signature} on PID {w.ident.pid} with the restart budget still spent: "
                           f"carrying on with incident {inc.folder} (no new incident, no new message)", w.name)
        return True

    def _open(self, w: Watch, verdict: Verdict, action: policy.Action) -> None:
        """Evidence first: the stack, the CPU window, the state and the log tail, before any signal."""
        world = self.world
        assert w.ident is not None
        w.counts.opened += 1
        w.counts.incidents[verdict.signature] += 1
        cpu = usage(list(w.window.snaps))
        stack = world.capture_stack(w.ident, w.home, cpu.hot.tid if cpu and cpu.hot else None)
        if world.stop.is_set():
            raise StopRequested
        # The hot thread's stack is evidence for the report; the verdict stands on the loop's own samples.
        w.counts.stacks["captured" if stack.captured else "failed"] += 1
        now = world.wall()
        pid_record, state, log_tail = world.gateway_files(w.home)
        rec = self._record(w, verdict, stack, action, now, pid_record, state, cpu)
        life = IncidentLife.create(world, w.name, w.home, w.profile, verdict.signature, now, rec,
                                   stack_capture.render(stack) + _loop_lines(verdict), log_tail, state.read.data)
        w.open_incident(life)
        life.note(f"opened: {verdict.signature} (confidence {verdict.confidence:.2f}) on PID {w.ident.pid}")
        folder = life.incident.folder if life.incident.writable else None
        reasons = "; ".join(verdict.reasons[1:3])
        world.emit("ALERT", f"{verdict.signature} on PID {w.ident.pid} (confidence {verdict.confidence:.2f}): "
                            f"{reasons}; " + (f"in {verdict.blocking}; " if verdict.blocking else "")
                            + f"evidence in {folder}", w.name)
        with contextlib.suppress(OSError):
            incidents.prune(world.settings.state_dir, world.cfg.keep_incidents)

    def _record(self, w: Watch, verdict: Verdict, stack: StackAnalysis, action: policy.Action, now: float,
                pid_record: Any, read_state: Any, cpu: CpuUsage | None) -> dict[str, Any]:
        cfg = self.world.cfg
        assert w.ident is not None
        state = w.window.states[-1][1] if w.window.states else None
        files = discovery.FilesSeen(
            pid_record=pid_record, state=state.state if state else read_state,
            state_matches=bool(state and state.matches), state_note=state.match_note if state else "",
            pid_matches=True, pid_note=w.found_how)
        versions, hot_name = self.world.describe(w.ident, w.home, stack, cpu)
        base = diagnosis.base_record(
            w.ident, {"path": str(w.home), "profile": w.profile, "source": "watched"},
            diagnosis.cpu_dict(cpu, hot_name, tuple(w.window.snaps)), files, stack, verdict, versions, now,
            release=w.release)
        return {
            "signature": verdict.signature, "confidence": round(verdict.confidence, 2),
            "reasons": list(verdict.reasons), "opened_at": iso(now), "identity": w.ident.to_dict(), **base,
            "deaf": w.window.deaf.summary(),  # descriptors, CLOSE_WAIT, RSS growth (observe/deaf.py)
            "window_samples": [{"at": round(s.wall, 3), "cpu_seconds": round(s.cpu, 3)} for s in w.window.snaps],
            "thresholds": {"cpu": cfg.cpu_threshold, "window": cfg.window, "interval": cfg.interval,
                           "grace": cfg.grace, "max_restarts": cfg.max_restarts,
                           "restart_window": cfg.restart_window, "min_confidence": cfg.min_confidence},
            "action": {"kind": action.kind, "why": action.why}, "restart": None, "new_pid": None,
        }

    def _restart_step(self, w: Watch, life: IncidentLife,
                      e: decide.GiveUp | decide.Cool | decide.DryRun | decide.Restart) -> None:
        world, cfg = self.world, self.world.cfg
        assert w.ident is not None
        b = e.budget
        life.record["budget"] = {"used": b.used, "max": cfg.max_restarts, "window_seconds": cfg.restart_window,
                                 "remaining": b.remaining}
        if isinstance(e, decide.GiveUp):
            life.give_up(w.ident.pid, w.ident.create_time, b.reason)
        elif isinstance(e, decide.Cool):
            life.cooling(b.reason)
        elif isinstance(e, decide.DryRun):
            life.dry_run(w.ident.pid, e.action.why, world.manager(Target(w.home, w.profile, w.ident)).describe())
        else:
            same, why = world.reprove(w.ident, w.home)
            if same:
                restarts.begin(world, w, e.action)
            else:
                life.not_restarted(why)
                presence.lost(world, w, why)

    def close(self, w: Watch, why: str) -> None:
        if w.life is not None:
            w.life.close(why)
            w.close_incident()


def _loop_lines(verdict: Verdict) -> str:
    """The event loop's own samples, after the hot thread's dumps: they are what the verdict stands on."""
    loop = verdict.loop
    if not loop:
        return ""
    return "\nevent loop (" + str(loop.get("method") or "stack samples") + "):\n" + "".join(
        f"    {line}\n" for line in loop_text(loop))
