"""One watch's observe step of a tick: find (or keep) the gateway, sample it, read its files into its
window (``read``, I/O only); then take in the judge's findings (``settle``: the verdict, the sampling).
Decides nothing about acting; the loop hands the verdict to policy and the responder."""

from __future__ import annotations

import time
from dataclasses import replace

from hermes_watchdog.daemon import exits, presence
from hermes_watchdog.daemon.watch import DENSE_TICK, Watch
from hermes_watchdog.daemon.world import World
from hermes_watchdog.facts.readings import GatewayState, PidRecord
from hermes_watchdog.facts.threads import gil_sample, loop_call, workers_sample
from hermes_watchdog.judge import window as judge_window
from hermes_watchdog.judge.families import recognise_clues
from hermes_watchdog.judge.policy import FROZEN_CONFIRM
from hermes_watchdog.judge.verdict import (
    GIL_HELD,
    HEALTHY,
    LOOP_FROZEN,
    W_COUNTER,
    W_STACK,
    StateSeen,
    Verdict,
)
from hermes_watchdog.judge.window import Judged, WindowReadings
from hermes_watchdog.observe import (
    discovery,
    heartbeat,
    loop_stacks,
    looptick,
    processes,
    release,
    sampler,
    statefile,
    syscalls,
    thread_dumps,
    upstream,
)
from hermes_watchdog.observe.loop_sampler import LoopSampler
from hermes_watchdog.observe.loop_turns import TurnReader
from hermes_watchdog.observe.thread_dumps import DumpSchedule


class Observer:
    def __init__(self, world: World) -> None:
        self.world = world

    def read(self, w: Watch) -> WindowReadings | None:
        """Sample the gateway once and read its files into its window; None when there is no gateway to
        judge. I/O only: the judge is judge/window.py, called by the tick."""
        # The gateway's files, read once for this sample: who is named, and what the state says.
        pid_record, state = statefile.read_pid(w.home), statefile.read_state(w.home)
        if not self.ensure_gateway(w, pid_record, state):
            return None
        assert w.ident is not None
        try:
            snap = sampler.snapshot(w.ident.pid)
        except (processes.ProcessGone, processes.ProcessHidden) as exc:
            presence.lost(self.world, w, str(exc))
            return None
        ok, note = processes.matches_record(w.ident, state.pid, state.start_time) if state.ok else (False, "")
        self._say_state_problem(w, None if state.ok and ok else
                                f"{state.read.path}: {state.read.status}"
                                + (f" ({state.read.problem})" if state.read.problem else f" ({note})"))
        w.window.add(snap)
        w.window.states.append((snap.at, StateSeen(state, ok, note)))
        cfg = self.world.cfg
        w.window.trim(snap.at, cfg.window, max(cfg.window, cfg.frozen_after) + 2 * cfg.interval)
        self._read_heartbeat(w)
        self._recognise(w)
        self._read_turns(w)
        self._loop_samples(w)
        dth = self.world.settings.th.deaf
        deaf = w.window.deaf.observe(w.ident.pid, snap.at, snap.rss, dth, cfg.interval)
        self._thread_dumps(w, snap.at, state.active_agents if state.ok and ok else None, len(snap.threads))
        win = w.window
        deaf = replace(deaf, workers=tuple(win.workers))
        return WindowReadings(
            tuple(win.snaps), tuple(win.long_snaps), tuple(s for _, s in win.states), tuple(win.bursts),
            tuple(win.turns), win.heartbeat, win.tick, upstream.read(w.home), w.release, deaf,
            age=max(0.0, time.time() - w.ident.create_time), mono=snap.at, now=time.time(),
            syscalls=win.syscalls, syscall_turned=win.syscall_turned, gil=tuple(win.gil),
            loop_dumps=tuple(win.loop_dumps))

    def settle(self, w: Watch, judged: Judged) -> None:
        """The watch takes the judgement in: the verdict (said when it changes), and the loop sampled
        densely while something is suspect, at the rate the counter allows."""
        self._set_verdict(w, judged.verdict)
        now = time.monotonic()
        was = w.plan.dense(now)
        plan = w.plan.noted(now, judged.suspect)
        w.set_plan(plan if plan.dense_rate == judged.dense_rate else replace(plan, dense_rate=judged.dense_rate))
        if judged.trace is not None and w.sampler is not None:
            w.sampler.trace(judged.trace)
        if judged.suspect and not was and w.sampler is not None:
            w.sampler.poke()
            if w.next_sample > now + DENSE_TICK:
                w.schedule(now + DENSE_TICK)

    def _loop_samples(self, w: Watch) -> None:
        """Start the loop sampler for this gateway if needed, and take in what it finished."""
        assert w.ident is not None
        cfg = self.world.cfg
        if w.sampler is None or w.sampler.pid != w.ident.pid:
            w.set_plan(replace(w.plan, background=cfg.stack_every))
            home, pid, uid = w.home, w.ident.pid, w.ident.uid
            take = loop_stacks.burst_source(cfg.stack_with, w.ident, home, lambda: w.plan.dense_rate)
            ident = w.ident
            # ptrace watches of the loop thread where py-spy may be used: `--stack-with hook` is for where
            # ptrace is not allowed, `none` asks for no look inside the gateway at all.
            trace = (lambda tid: syscalls.probe(ident, tid)) if cfg.stack_with in ("auto", "py-spy") else None
            w.attach_sampler(LoopSampler(pid, w.plan, take, probe=lambda: looptick.probe(home, pid, uid),
                                         trace=trace, dump=thread_dumps.source(cfg.stack_with, ident, home)))
        bursts, probes, traces = w.sampler.drain()
        for b in bursts:
            w.window.bursts.append(b)
            if b.error:
                if b.error != w.said.stack_problem:
                    self.world.emit("INFO", f"no loop stack: {b.error}" + (f" ({b.hint})" if b.hint else "")
                                    + "; judging by CPU, state file and heartbeat", w.name)
                w.said.stack_problem = b.error
            elif b.usable:
                w.said.stack_problem = None
        if probes:
            w.window.tick = probes[-1]
        for t in traces:
            w.window.syscalls = t
            if t.turned_at is not None:
                w.window.syscall_turned = t.turned_at
        problem = w.sampler.trace_problem
        if problem != w.said.trace_problem:
            if problem:
                self.world.emit("INFO", f"no syscall evidence: {problem}; the stack samples are the proof", w.name)
            w.said.trace_problem = problem

    def _thread_dumps(self, w: Watch, now: float, active_agents: int | None, threads: int) -> None:
        """Take in the all-thread dumps the sampler finished (facts/threads.py), and ask for one when due
        (observe/thread_dumps.py says when)."""
        if w.sampler is None:
            return
        win, dth = w.window, self.world.settings.th.deaf
        for at, dump, why in w.sampler.drain_dumps():
            win.workers.append(workers_sample(dump, at, active_agents, why))
            where = loop_call(dump) if dump is not None else None
            if where is not None:
                win.loop_dumps.append((at, *where))
            g = gil_sample(dump, at) if dump is not None else None
            if g is not None:
                win.gil.append(g)
            elif dump is not None:
                win.gil.clear()  # a dump with nobody else holding the GIL ends any story
        keep = dth.workers_busy_after + 3 * DumpSchedule.workers_every(dth)
        while win.workers and win.workers[0].at < now - keep:
            win.workers.popleft()
        if any(win.dumps.due(now, active_agents, threads, w.plan.dense(now), dth)):
            w.sampler.dump()

    def _read_turns(self, w: Watch) -> None:
        """One pread of the loop-turn counter into the window."""
        assert w.ident is not None
        if w.turn_reader is None:
            w.attach_turn_reader(TurnReader(w.ident, w.home))
        assert w.turn_reader is not None
        got = w.turn_reader.sample()
        note = None if got is not None else w.turn_reader.why
        if note != w.said.turns_note and (w.window.turns or w.said.turns_note is not None):
            self.world.emit("INFO", f"loop-turn counter: {note or 'readable again'}", w.name)
        w.said.turns_note = note
        if got is None:
            w.window.turns.clear()  # no proof now: older reads neither veto nor prove anything
        else:
            w.window.turns.append(got)

    def ensure_gateway(self, w: Watch, pid_record: PidRecord, state: GatewayState) -> bool:
        if w.ident is not None:
            same, why = processes.same_process(w.ident)
            if same:
                # The files name another live gateway proven to be this home's: the one watched was
                # adopted from the process table, or has been replaced; follow the files.
                other, how = discovery.named_live_gateway(w.home, w.ident, pid_record, state)
                if other is None:
                    return True
                why = f"the gateway files name another live gateway of this home ({how})"
            elif exits.seen_exit(self.world, w, w.ident, state, why):
                return False  # Hermes' own watchdog ended it for a restart: the machine verifies the relaunch
            presence.lost(self.world, w, why)
        found = discovery.find_gateway(w.home)
        if found.ident is None:
            death = presence.death(self.world, w, found.stale_pid)
            if ((found.state_says_running and found.stale_pid) or death) and not w.said.gone:
                w.said.gone = True
                w.judged(judge_window.gone(death, found.state_says_running, found.how), time.monotonic())
                self.world.emit("GONE", "gateway-gone: no live gateway; " + (
                    "its death was not clean (above)" if death else
                    f"the state file still says running ({found.how}; Hermes >= 0.19 leaves it so after a clean "
                    "stop)") + "; looking for the new gateway", w.name)
            return False
        w.adopt(found.ident, found.how)
        self.world.emit("FOUND", f"gateway PID {found.ident.pid} ({found.how})", w.name)
        return True

    def _read_heartbeat(self, w: Watch) -> None:
        assert w.ident is not None
        beat = heartbeat.read(w.home)
        w.window.heartbeat, note = heartbeat.assess(beat, w.ident.pid, time.time(), self.world.cfg.frozen_after,
                                                    w.ident.create_time)
        if note != w.said.heartbeat_note and note is not None:
            self.world.emit("INFO", note, w.name)
        w.said.heartbeat_note = note

    def _recognise(self, w: Watch) -> None:
        """The release family: once per gateway, and again when its heartbeat's payload keys change."""
        assert w.ident is not None
        hb = w.window.heartbeat
        keys = hb.keys if hb is not None else None
        if w.window.release is not None and w.window.release[0] == keys:
            return
        before = w.release
        got = recognise_clues(release.read(w.home, w.ident, processes.environ(w.ident.pid), keys))
        w.window.release = (keys, got)
        if before is None or before.family != got.family:
            self.world.emit("INFO", f"Hermes release family: {got.describe()}", w.name)

    def _say_state_problem(self, w: Watch, problem: str | None) -> None:
        if problem == w.said.state_problem:
            return
        if problem is None:
            self.world.emit("INFO", "state file readable again and describes the gateway", w.name)
        else:
            self.world.emit("WARN", f"state file not usable: {problem}; judging by CPU alone (no restart without "
                                    "it)", w.name)
        w.said.state_problem = problem

    def _set_verdict(self, w: Watch, verdict: Verdict) -> None:
        at = w.window.samples[-1].at if w.window.samples else time.monotonic()
        w.judged(verdict, at)
        said = w.said.verdict
        if verdict.signature == said:
            return
        if _tentative(verdict) and at - w.verdict_since < FROZEN_CONFIRM:
            # As the action waits (judge/policy.py): a frozen loop on Hermes' word alone is said once the
            # loop's own samples had the time to veto it (a failing heartbeat write on a loop that turns).
            return
        w.said.verdict = verdict.signature
        if said is not None or verdict.signature != HEALTHY:
            self.world.emit("VERDICT", f"{said or 'none'} -> {verdict.signature} "
                                       f"(CPU {verdict.cores or 0:.2f} cores over {verdict.span:.0f} s)", w.name)


def _tentative(verdict: Verdict) -> bool:
    """A frozen loop seen without its own samples or counter yet (policy waits FROZEN_CONFIRM for them)."""
    return verdict.signature in (LOOP_FROZEN, GIL_HELD) and not {W_STACK, W_COUNTER} & set(verdict.witnesses)
