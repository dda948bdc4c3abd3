"""Failure signatures: what was observed -> Verdict. Pure: no I/O and no clock.

The same rules serve ``diagnose`` (one sample of a few seconds) and ``run`` (a sliding window). The event
loop is judged directly (judge/loop.py: did its thread get back to its selector?); CPU demand, the state
file, the heartbeat and the loop-tick socket are the other witnesses. Whether the heartbeat witnesses the
loop at all is the release family's word (judge/families.heartbeat_role): written off the loop (flagged
``loop_tick_socket``) it is only reported; from a release not recognised it is never a witness alone. The
README's verdict table says which witness each verdict needs and what vetoes what.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from hermes_watchdog.facts.readings import HeartbeatSeen
from hermes_watchdog.facts.stacks import StackAnalysis
from hermes_watchdog.judge import descriptors, growth, halfclosed, workers
from hermes_watchdog.judge.cpu import CpuUsage
from hermes_watchdog.judge.deaf import Finding
from hermes_watchdog.judge.families import ROLE_REPORT, ROLE_SECOND, ROLE_WITNESS
from hermes_watchdog.judge.proof import PROOF_SAMPLES
from hermes_watchdog.judge.readings import RUNNING, STARTING, Readings
from hermes_watchdog.judge.verdict import (
    BUSY_LOOP,
    BY_COUNTER,
    BY_CPU_STATE,
    BY_STACK,
    BY_SYSCALLS,
    CPU_PEGGED,
    GIL_HELD,
    HEALTHY,
    LOOP_FROZEN,
    MEMORY_HIGH,
    STARTUP_HANG,
    STUCK_DISCONNECTED,
    UNKNOWN,
    W_COUNTER,
    W_GIL,
    W_HEARTBEAT,
    W_STACK,
    W_TICK,
    Seen,
    StateSeen,
    Thresholds,
    Verdict,
)
from hermes_watchdog.judge.wording import cpu_text, duration, size

# The loop thread's demand, as a share of --cpu-threshold, that splits a loop on the CPU (busy-loop, once
# proven) from one off it (loop-frozen). Half, not all of it: a spinning loop thread shares the GIL with
# the gateway's other threads (the heartbeat writer, agent workers), and the time it waits for the GIL is
# sleep to the scheduler, neither run nor run-queue time; at defaults it measured 0.84-0.90 core beside one
# heartbeat thread on an idle machine, and took 49 s to reach 0.9.
SPIN_SHARE = 0.5


def judge(usage: CpuUsage | None, states: Sequence[StateSeen], stack: StackAnalysis | None,
          th: Thresholds, now: float | None = None, heartbeat: HeartbeatSeen | None = None,
          seen: Seen | None = None) -> Verdict:
    """``now`` is epoch seconds, used to say how long a platform has been down and to count upstream's
    starts. ``heartbeat`` (Hermes >= 0.19, written by this very process) and ``stack`` may also come
    in ``seen`` with the rest of the witnesses."""
    seen = seen or Seen()
    if heartbeat is not None or stack is not None:
        seen = replace(seen, heartbeat=heartbeat or seen.heartbeat, stack=stack or seen.stack)
    return _Judgement(usage, states, th, now, seen).verdict()


class _Judgement(Readings):
    """The rules, in order of how specific they are, over the shared readings (judge/readings.py)."""

    def make(self, sig: str, conf: float, reasons: list[str], **extra: Any) -> Verdict:
        if self.pending and sig != BUSY_LOOP:
            reasons = [*reasons, self.loop_text() or "", self.pending]
        return Verdict(sig, max(0.0, min(0.98, conf)), tuple(r for r in reasons if r), **{**self.common(), **extra})

    # -- the rules

    def verdict(self) -> Verdict:
        if self.usage is None:
            return Verdict(UNKNOWN, 0.0, ("not enough CPU samples yet",))
        base = [cpu_text(self.usage, self.th.cpu), *self.state_reasons()]
        if self.turns is not None:
            base.append(self.turns.describe())
        elif (watched := self.watched()) is not None:
            base.append(watched.describe())
        deaf, dth = self.seen.deaf, self.th.deaf  # alive but deaf (judge/deaf.py): after the loop rules
        up = tuple(p.name for p in self.latest.platforms if p.connected) if self.latest else ()
        for rule in (self.busy_loop, self.loop_frozen,
                     lambda b: self.found(b, descriptors.rule(deaf.fds if deaf else None, dth)),
                     self.memory_high, self.startup_hang,
                     lambda b: self.found(b, halfclosed.rule(deaf.sockets if deaf else None, dth, up)),
                     lambda b: self.found(b, growth.rule(deaf, dth, self.th.memory_limit)),
                     lambda b: self.found(b, workers.rule(deaf.workers if deaf else (), dth)),
                     self.cpu_pegged, self.stuck_disconnected):
            v = rule(base)
            if v is not None:
                return v
        return self.healthy(base)

    def found(self, base: list[str], f: Finding | None) -> Verdict | None:
        return None if f is None else self.make(f.signature, f.confidence, [*base, *f.reasons], evidence=f.evidence)

    def busy_loop(self, base: list[str]) -> Verdict | None:
        u, th, st = self.usage, self.th, self.stretch
        assert u is not None
        pegged = u.pegged_value >= th.cpu
        loop_line = self.loop_text()
        blocking = str(st.top) if st and st.top else None
        # 0. The loop-turn counter, where the fix pack keeps one, decides alone: still while its thread
        #    wanted a core is a starved loop; advancing is a loop that turns (judge/turns.py).
        if self.turns is not None:
            if self.turns.starved(th.cpu * SPIN_SHARE, th.proof):
                reasons = [*base, f"the loop thread wanted {self.turns.still_demand:.2f} core while the counter "
                           "stood still"]
                if st is not None and loop_line:
                    reasons.append(loop_line)  # the stack names the call
                return self.make(BUSY_LOOP, 0.95, reasons, proof=BY_COUNTER, blocking=blocking)
            if self.turns.stall >= 1.0:
                self.pending = (f"suspect: the loop-turn counter has stood still {self.turns.stall:.1f} s; "
                                "its thread's demand decides")
            st = None  # the samples only name the call: the counter said whether it turns
        # 1. The loop itself, two independent signals: its thread wants the CPU all the time (demand), and
        #    dense samples never saw it in its selector. The state file and heartbeat only add confidence.
        if st is not None and self.loop is not None and st.one_callback and not self.loop_ran_during(st.since):
            demand = self.loop.loop_demand
            if demand is None and u.hot is not None and u.hot.tid == st.tid:
                demand = u.hot.demand if u.hot.demand is not None else u.hot.cores  # that thread, not the process
            if demand is not None and demand >= th.cpu * SPIN_SHARE:
                extra = [f"the loop thread wanted {demand:.2f} core over that stretch"]
                conf = 0.9
                if self.down and self.all_own_down():
                    extra.append(f"and {self.down_text}")
                    conf += 0.04
                hb = self.seen.heartbeat
                if hb is not None and hb.stale and self.hb_role == ROLE_WITNESS:
                    extra.append(hb.describe())
                    conf += 0.03
                elif hb is not None and self.hb_role != ROLE_WITNESS:
                    extra.append(self.hb_note())
                sampled = self.independent() >= PROOF_SAMPLES or self.tick_silent_during(st.since)
                traced = not sampled and self.syscalls_silent_during(st.since)
                if st.seconds >= th.proof and (sampled or traced):
                    return self.make(BUSY_LOOP, conf, [*base, loop_line or "", *extra],
                                     proof=BY_SYSCALLS if traced else BY_STACK, blocking=blocking)
                # Not yet for the proof window: suspect, sampled densely, but no verdict of its own (the
                # rules below still apply, and say it).
                self.pending = (f"suspect: not yet the {th.proof:.0f} s off its selector that prove a busy loop"
                                if not st.seconds >= th.proof else
                                "suspect: ptrace saw the loop thread in its selector less than "
                                f"{th.proof:.0f} s ago" if self.syscalls_turned_within(th.proof) else
                                f"suspect: {self.independent()} of the {PROOF_SAMPLES} independent samples off its "
                                "selector that prove a busy loop (a false proof at most 1 in 1000)")
        if not pegged:
            return None
        # 2. The loop was seen turning within the window: pegged CPU is work, whatever the state says.
        within = max(u.span, th.proof)
        if self.turned_within(within) or self.counted_within(within) or self.syscalls_turned_within(within):
            return None
        # 3. No stack evidence (py-spy not permitted, not sampled yet): CPU + a platform down in every read.
        if self.old_rule():
            reasons = [*base, f"gateway_state is 'running' while {self.down_text}"]
            if loop_line:
                reasons.append(loop_line)
            return self.make(BUSY_LOOP, 0.7, reasons, proof=BY_CPU_STATE)
        return None

    def loop_frozen(self, base: list[str]) -> Verdict | None:
        th, st, seen = self.th, self.stretch, self.seen
        witnesses, said, vetoes = [], [], []
        demand = self.loop.loop_demand if self.loop else None
        u = self.usage
        loop_tid = self.loop.loop_tid if self.loop else None  # known before any stretch: a spin seen in one burst
        if demand is None and loop_tid is not None and u is not None and u.hot is not None and u.hot.tid == loop_tid:
            demand = u.hot.demand if u.hot.demand is not None else u.hot.cores  # a stretch too short to measure
        if loop_tid is not None and demand is not None and demand >= th.cpu * SPIN_SHARE:
            # A loop that wants the CPU is spinning, not frozen (busy-loop, or its pending proof): frozen is
            # off the CPU, under half the threshold, as the stack witness below requires.
            return None
        if st is not None and st.seconds >= th.frozen_after and st.same_call is not None and \
                demand is not None and demand < th.cpu * SPIN_SHARE:
            witnesses.append(W_STACK)
            said.append(f"the event-loop thread {st.tid} sat in {st.same_call} for {st.seconds:.0f} s "
                        f"({st.samples} samples, never in its selector) with {demand:.2f} core of demand: "
                        "blocked in a call, off the CPU")
        turns = self.turns
        if turns is not None and turns.stall >= th.frozen_after:
            witnesses.append(W_COUNTER)
            said.append(f"the event loop has not turned for {turns.stall:.0f} s (loop-turn counter)")
        hb = seen.heartbeat
        hb_broken = None
        if hb is not None and hb.stale and self.hb_role in (ROLE_WITNESS, ROLE_SECOND):
            if self.turned_since_stale(hb.age, hb.stale_after):
                # The loop was seen turning when the heartbeat was already stale: its writes fail (a full
                # disk, #90502), not the loop, and it witnesses nothing until it beats again.
                hb_broken = (f"not a witness: the heartbeat is {hb.age:.0f} s old, but the event loop was seen "
                             "turning after it went stale (its writes fail, not the loop)")
            else:
                witnesses.append(W_HEARTBEAT)
                said.append(hb.describe())
        tick = seen.tick
        tick_recent = tick is not None and (seen.mono is None or seen.mono - tick.at <= th.frozen_after)
        if tick is not None and tick_recent and not tick.answered:
            witnesses.append(W_TICK)
            said.append(f"the loop-tick socket: {tick.detail}")
        if not witnesses:
            if hb_broken:
                self.frozen_vetoed = [hb_broken]
            return None
        if self.turned_within(th.frozen_after):
            vetoes.append(self.loop_text() or "the event loop reached its selector")
        if tick is not None and tick_recent and tick.answered:
            vetoes.append(f"the loop-tick socket answered: {tick.detail}")
        if turns is not None and turns.stall < th.frozen_after:
            vetoes.append(turns.describe())  # the loop's own count: it turned, whatever else was seen
        if vetoes:
            self.frozen_vetoed = [*said, *(f"not frozen: {v}" for v in vetoes)]
            return None
        if witnesses == [W_HEARTBEAT] and self.hb_role == ROLE_SECOND:
            self.frozen_vetoed = [f"not a verdict: {self.hb_note()}"]
            return None
        conf = min(0.95, 0.6 + 0.15 * (len(witnesses) - 1) + (0.1 if W_STACK in witnesses else 0.0))
        where = st.same_call or st.top if st is not None else None
        if where is None and (dumped := self.loop_in_dumps()) is not None:
            # The loop's own bursts have not shown it (py-spy record starved on a loaded machine): the
            # all-thread dumps taken while suspect still say where it sits. A name, not a witness.
            said.append(f"the event-loop thread was in {dumped[0]} in the last {dumped[1]} all-thread dumps")
            where = dumped[0]
        if st is not None and W_STACK not in witnesses and where is not None:
            # Not yet a witness (too short, or not one call), but it says where the loop is now.
            said.append(f"the event-loop thread {st.tid} has been in {where} for the {st.seconds:.0f} s sampled "
                        f"so far ({st.samples} samples, never in its selector)")
        if self.gil is not None:
            # Not a call on the loop: another thread holds the GIL, and the loop waits for it (judge/gil.py).
            said.append(self.gil.describe())
            return self.make(GIL_HELD, min(0.95, conf + 0.1), [*base, *said], witnesses=(*witnesses, W_GIL),
                             blocking=f"{self.gil.name}: {self.gil.call}", evidence={"gil": self.gil.to_dict()})
        if len(witnesses) == 1:
            said.append(f"one witness ({witnesses[0]}); a restart needs two that agree")
        return self.make(LOOP_FROZEN, conf, [*base, *said], witnesses=tuple(witnesses),
                         blocking=str(where) if where is not None else None)

    def memory_high(self, base: list[str]) -> Verdict | None:
        limit, mem = self.th.memory_limit, self.seen.memory
        if limit is None or not mem.samples or not all(rss > limit for _, rss in mem.samples):
            return None
        growth = mem.growth
        text = (f"RSS {size(mem.samples[-1][1])} above the limit {size(limit)} in all {len(mem.samples)} samples "
                f"of {mem.samples[-1][0] - mem.samples[0][0]:.0f} s")
        if growth is not None:
            text += f", growing {size(growth * 3600)}/h" if growth > 0 else ", not growing"
        return self.make(MEMORY_HIGH, 0.9, [*base, text])

    def startup_hang(self, base: list[str]) -> Verdict | None:
        age, th = self.seen.age, self.th
        if age is None or age < th.start_timeout or not self.states:
            return None
        if self.latest is not None and all(s.state.ok and s.matches and s.state.gateway_state == STARTING
                                           for s in self.states):
            return self.make(STARTUP_HANG, 0.85, [*base, f"gateway_state is still 'starting' {age:.0f} s after the "
                                                  f"process started (start timeout {th.start_timeout:.0f} s)"])
        never = all(s.state.read.status == "missing" or (s.state.ok and not s.matches) for s in self.states)
        if never:
            return self.make(STARTUP_HANG, 0.7, [*base, f"the gateway has run {age:.0f} s without writing a state file "
                                                 f"of its own (start timeout {th.start_timeout:.0f} s)"])
        return None

    def cpu_pegged(self, base: list[str]) -> Verdict | None:
        u = self.usage
        assert u is not None
        if u.pegged_value < self.th.cpu:
            return None
        reasons = list(base)
        latest = self.latest
        if latest is not None and latest.gateway_state != RUNNING:
            reasons.append(f"gateway_state is '{latest.gateway_state}'")
        elif latest is not None:
            all_own = bool(self.states) and all(s.state.ok and s.matches for s in self.states)
            reasons.append("every platform is connected" if not self.down
                           else f"{self.down_text}, but not in every state read of the window" if all_own
                           else f"{self.down_text}, but {len(self.states) - len(self.own)} of {len(self.states)} "
                                "state reads of the window did not describe this process")
        loop_line = self.loop_text()
        if loop_line:
            reasons.append(loop_line)
        turns = max(u.span, self.th.proof)
        reasons.append("sustained CPU while the loop turns is work, not a wedged loop" if self.turned_within(
            turns) or self.counted_within(turns) else "sustained CPU with connected platforms may be legitimate work"
            if latest is not None else "no usable state file: cannot tell whether platforms are connected")
        return self.make(CPU_PEGGED, 0.8, reasons)

    def stuck_disconnected(self, base: list[str]) -> Verdict | None:
        if not self.down:
            return None
        reasons = [*base, f"{self.down_text}; CPU is below the threshold, so the adapter is idle, not spinning"]
        lr = self.latest_read
        # Sure only while the newest read still describes this process, not one from earlier.
        current = lr is not None and lr.state.ok and lr.matches
        if self.down_for is not None and self.down_for >= self.th.stuck_after and current:
            return self.make(STUCK_DISCONNECTED, 0.85, reasons)
        reasons.append(f"down for less than {duration(self.th.stuck_after)} (or unknown): may be a normal reconnect")
        return self.make(STUCK_DISCONNECTED, 0.4, reasons)

    def healthy(self, base: list[str]) -> Verdict:
        reasons = list(base)
        latest = self.latest
        if latest is not None:
            reasons.append(f"gateway_state is '{latest.gateway_state}'"
                           + (", every platform connected" if latest.platforms else ", no platforms listed"))
        reasons.extend(self.frozen_vetoed)
        hb = self.seen.heartbeat
        if hb is not None and (not hb.stale or self.hb_role == ROLE_REPORT) and hb.describe() not in reasons:
            reasons.append(hb.describe())
        loop_line = self.loop_text()
        if loop_line and loop_line not in reasons:
            reasons.append(loop_line)
        st = self.stretch
        if st is not None and st.same_call is not None and not self.pending:
            reasons.append(f"the loop sat in {st.same_call} for the {st.seconds:.0f} s sampled: blocked, but not yet "
                           f"for --frozen-after ({self.th.frozen_after:.0f} s)")
        return self.make(HEALTHY, 0.9 if latest is not None else 0.6, reasons)
