"""One watch's observe -> judge step of a tick: find (or keep) the gateway, sample it, read its files,
and judge the window. Decides nothing about acting; the loop hands the verdict to the responder."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from hermes_watchdog.daemon.watch import Watch
from hermes_watchdog.judge.cpu import usage
from hermes_watchdog.judge.signatures import GATEWAY_GONE, HEALTHY, StateSeen, Verdict, judge
from hermes_watchdog.observe import discovery, heartbeat, processes, sampler, statefile

if TYPE_CHECKING:
    from hermes_watchdog.daemon.loop import Daemon


class Observer:
    def __init__(self, d: Daemon) -> None:
        self.d = d

    def observe(self, w: Watch) -> Verdict | None:
        """Sample the gateway once and judge its window; None when there is no gateway to judge."""
        # The gateway's files, read once for this sample: who is named, and what the state says.
        pid_record, state = statefile.read_pid(w.home), statefile.read_state(w.home)
        if not self.ensure_gateway(w, pid_record, state):
            return None
        assert w.ident is not None
        try:
            snap = sampler.snapshot(w.ident.pid)
        except (processes.ProcessGone, processes.ProcessHidden) as exc:
            self.lost(w, str(exc))
            return None
        ok, note = processes.matches_record(w.ident, state.pid, state.start_time) if state.ok else (False, "")
        self._say_state_problem(w, None if state.ok and ok else
                                f"{state.read.path}: {state.read.status}"
                                + (f" ({state.read.problem})" if state.read.problem else f" ({note})"))
        w.window.snaps.append(snap)
        w.window.states.append((snap.at, StateSeen(state, ok, note)))
        w.window.trim(snap.at, self.d.cfg.window)
        self._read_heartbeat(w)
        verdict = judge(usage(list(w.window.snaps)), [s for _, s in w.window.states], None, self.d.th,
                        now=time.time(), heartbeat=w.window.heartbeat)
        self._set_verdict(w, verdict)
        return verdict

    def ensure_gateway(self, w: Watch, pid_record: statefile.PidRecord, state: statefile.GatewayState) -> bool:
        d = self.d
        if w.ident is not None:
            same, why = processes.same_process(w.ident)
            if same:
                # The files name another live gateway proven to be this home's: the one watched was
                # adopted from the process table, or has been replaced; follow the files.
                other, how = discovery.named_live_gateway(w.home, w.ident, pid_record, state)
                if other is None:
                    return True
                why = f"the gateway files name another live gateway of this home ({how})"
            self.lost(w, why)
        found = discovery.find_gateway(w.home)
        if found.ident is None:
            if found.state_says_running and found.stale_pid and not w.said.gone:
                w.said.gone = True
                w.verdict = Verdict(GATEWAY_GONE, 0.9, (f"the state file says running, but {found.how}",))
                d.log.emit("GONE", f"gateway-gone: the state file says running, but {found.how}; "
                                   "looking for the new gateway", w.name)
            return False
        w.ident, w.found_how, w.said.gone = found.ident, found.how, False
        w.reset_window()
        d.log.emit("FOUND", f"gateway PID {w.ident.pid} ({found.how})", w.name)
        return True

    def lost(self, w: Watch, why: str) -> None:
        if w.ident is not None:
            self.d.log.emit("LOST", f"gateway PID {w.ident.pid} lost: {why}", w.name)
        w.ident = None
        w.reset_window()

    def _read_heartbeat(self, w: Watch) -> None:
        assert w.ident is not None
        beat = heartbeat.read(w.home)
        w.window.heartbeat, note = heartbeat.assess(beat, w.ident.pid, time.time(), self.d.cfg.heartbeat_stale)
        if note != w.said.heartbeat_note and note is not None:
            self.d.log.emit("INFO", note, w.name)
        w.said.heartbeat_note = note

    def _say_state_problem(self, w: Watch, problem: str | None) -> None:
        if problem == w.said.state_problem:
            return
        if problem is None:
            self.d.log.emit("INFO", "state file readable again and describes the gateway", w.name)
        else:
            self.d.log.emit("WARN", f"state file not usable: {problem}; judging by CPU alone (no restart without "
                                    "it)", w.name)
        w.said.state_problem = problem

    def _set_verdict(self, w: Watch, verdict: Verdict) -> None:
        before = w.verdict.signature if w.verdict else None
        if verdict.signature != before:
            w.verdict_since = w.window.snaps[-1].at if w.window.snaps else time.monotonic()
            if before is not None or verdict.signature != HEALTHY:
                self.d.log.emit("VERDICT", f"{before or 'none'} -> {verdict.signature} "
                                           f"(CPU {verdict.cores or 0:.2f} cores over {verdict.span:.0f} s)", w.name)
        w.verdict = verdict
