"""One judgement's shared readings: what the rules of signatures.py all look at (the newest state of this
process, the platforms down, the loop's stretch and counter, the heartbeat's role by release family, Hermes'
own handling) and the sentences that say them. Pure: no I/O and no clock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from hermes_watchdog.facts.readings import SyscallProbe
from hermes_watchdog.judge import gil, syscalls
from hermes_watchdog.judge.cpu import CpuUsage
from hermes_watchdog.judge.exits import UPSTREAM_EXITS, storm_note
from hermes_watchdog.judge.families import ROLE_REPORT, ROLE_WITNESS, UPSTREAM_BUDGET, heartbeat_role
from hermes_watchdog.judge.proof import TURN_EVERY, VISIT, independent_samples, miss_probability
from hermes_watchdog.judge.verdict import Seen, StateSeen, Thresholds
from hermes_watchdog.judge.wording import down_text
from hermes_watchdog.timefmt import parse_iso

RUNNING = "running"
STARTING = "starting"
DEGRADED = "degraded"
GIL_FRESH = 15.0  # seconds: the newest all-thread dump of a GIL story must be this recent


class Readings:
    """The readings one judgement shares between its rules (judge/signatures.py)."""

    def __init__(self, usage: CpuUsage | None, states: Sequence[StateSeen], th: Thresholds, now: float | None,
                 seen: Seen) -> None:
        self.usage, self.states, self.th, self.now, self.seen = usage, states, th, now, seen
        self.own = [s.state for s in states if s.state.ok and s.matches]
        self.latest = self.own[-1] if self.own else None
        self.latest_read = states[-1] if states else None
        self.down = self.latest.not_connected if self.latest else ()
        self.down_text, self.down_for = down_text(self.latest, now) if self.latest else ("", None)
        self.loop = seen.loop
        # Another thread holding the GIL in one call since ``since``: the loop thread's selector samples after
        # that are a thread waiting for the GIL, not turns (judge/gil.py).
        self.gil = gil.story(seen.gil, seen.mono, GIL_FRESH, seen.gil_wakes)
        if self.gil is not None and self.loop is not None and self.loop.last_turned is not None and \
                self.loop.last_turned > self.gil.since - gil.BACK:
            self.loop = replace(self.loop, last_turned=self.gil.since - gil.BACK)
        self.stretch = self.loop.stretch if self.loop else None
        self.turns = seen.turns if seen.turns is not None and seen.turns.live else None  # the counter, if live
        self.frozen_vetoed: list[str] = []  # what a vetoed loop-frozen said, for the verdict given instead
        self.pending: str | None = None  # the loop starved, not yet long enough to prove it
        hb = seen.heartbeat
        self.hb_role = heartbeat_role(seen.release, hb.keys) if hb is not None else ROLE_REPORT


    def common(self) -> dict[str, Any]:
        u, loop = self.usage, self.loop
        assert u is not None
        loop_dict = loop.to_dict() if loop and loop.bursts else {}
        if self.turns is not None:
            loop_dict["counter"] = self.turns.to_dict()
        probe = self.watched()
        if probe is not None:
            loop_dict["syscalls"] = probe.to_dict()
        return {"cores": u.cores, "hot_cores": u.hot.cores if u.hot else None, "span": u.span,
                "platforms_down": tuple(p.name for p in self.down), "down_for": self.down_for,
                "demand": u.demand, "hot_demand": u.hot_demand, "measure": u.measure,
                "rss": self.seen.memory.latest, "upstream": self.upstream_note(),
                "loop": loop_dict or None}

    def state_reasons(self) -> list[str]:
        out = []
        lr = self.latest_read
        if lr is None:
            out.append("no state file read")
        elif not lr.state.ok:
            out.append(f"state file {lr.state.read.status}: {lr.state.read.problem}")
        elif not lr.matches:
            out.append(f"state file ignored: it {lr.match_note}")
        if self.latest is not None and self.latest.exit_reason:
            out.append(f"the state file gives exit_reason '{self.latest.exit_reason}'"
                       + (" and restart_requested" if self.latest.restart_requested else ""))
            overdue = self.upstream_overdue()
            if overdue:
                out.append(overdue)
        up, age = self.seen.upstream, self.seen.age
        # The ledger names no process: one written before this gateway started is about an earlier one.
        if up is not None and up.lifecycle_phase and not (up.lifecycle_at is not None and self.now is not None
                                                          and age is not None and up.lifecycle_at < self.now - age):
            out.append(f"state/gateway.lifecycle.json: phase '{up.lifecycle_phase}'"
                       + (f", exit code {up.lifecycle_exit_code}" if up.lifecycle_exit_code is not None else "")
                       + (f", exit_reason '{up.lifecycle_exit_reason}'" if up.lifecycle_exit_reason else ""))
        return out

    def upstream_overdue(self) -> str | None:
        """Hermes' own watchdog said it was restarting this gateway, and the gateway still runs past that
        watchdog's own budget: its exit is wedged too, so the watchdog acts as usual. Never deferred for ever."""
        st = self.latest
        said_at = parse_iso(st.updated_at) if st is not None else None
        if said_at is None or self.now is None or self.now - said_at <= UPSTREAM_BUDGET:
            return None
        return (f"Hermes' own watchdog said it was restarting the gateway {self.now - said_at:.0f} s ago, past its "
                f"own budget of {UPSTREAM_BUDGET:.0f} s (3 missed probes of 30 s and the manager's delay): "
                "its exit is stuck too, so the watchdog acts as usual")

    def upstream_note(self) -> str | None:
        """Hermes is already handling this gateway: its own watchdog is making it exit for a restart, or
        its respawn-storm breaker is backing off. Then the watchdog does not restart it a second time."""
        st = self.latest
        handling = st is not None and (st.exit_reason in UPSTREAM_EXITS or (st.gateway_state == DEGRADED
                                                                             and st.restart_requested))
        if handling and st is not None and self.upstream_overdue() is None:
            return (f"Hermes' own watchdog is restarting the gateway (gateway_state '{st.gateway_state}', "
                    f"exit_reason '{st.exit_reason}')")
        up = self.seen.upstream
        return storm_note(up, self.now, self.seen.release) if up is not None and self.now is not None else None

    def loop_text(self) -> str | None:
        loop, st = self.loop, self.stretch
        if loop is None or not loop.bursts:
            return None
        if st is not None:
            where = f" in {st.entry.function}" if st.entry else ""
            if st.top and st.entry and st.top != st.entry:
                where += f" -> {st.top}"
            elif st.top:
                where = f" in {st.top}"
            rate = loop.bursts[-1].rate if loop.bursts else 0
            text = (f"the event-loop thread {st.tid} did not reach its selector in {st.samples} samples over "
                    f"{st.seconds:.1f} s ({loop.method} at {rate:.0f} Hz, {st.bursts} burst(s) back to back); "
                    f"it ran " + ("one callback" if st.one_callback else "callbacks") + where)
            if self.turns is not None and self.turns.turned_after(st.since):
                text += "; the loop-turn counter saw it turn meanwhile: the samples missed its short visits"
            elif self.syscalls_turned(st.since):
                text += "; ptrace saw it enter its selector meanwhile: the samples missed its short visits"
            elif self.turns is None:
                # Without the counter the samples are the proof: say its error (judge/proof.py).
                n = self.independent()
                text += (f"; of those, {n} were taken while the thread ran (independent looks), and a loop turning "
                         f"every {TURN_EVERY * 1000:.0f} ms with {VISIT * 1e6:.0f} µs visits would have been missed by "
                         f"all {n} with probability {miss_probability(n):.2g}")
            return text
        if loop.last_turned is not None:
            ago = f" {self.seen.mono - loop.last_turned:.0f} s ago" if self.seen.mono is not None else ""
            return f"the event loop reached its selector{ago} ({loop.turned_samples} samples): it turns"
        if loop.problem:
            return f"no loop stack: {loop.problem}" + (f" ({loop.hint})" if loop.hint else "")
        return None

    def turned_within(self, seconds: float) -> bool:
        loop = self.loop
        if loop is None or loop.last_turned is None:
            return False
        if self.seen.mono is None:
            return True
        return self.seen.mono - loop.last_turned <= seconds

    def turned_since_stale(self, age: float, stale_after: float) -> bool:
        """Did the loop reach its selector at a moment the heartbeat was already stale?"""
        loop = self.loop
        if loop is None or loop.last_turned is None or self.seen.mono is None:
            return False
        return loop.last_turned > self.seen.mono - age + stale_after

    def hb_note(self) -> str:
        hb = self.seen.heartbeat
        assert hb is not None
        return hb.describe() if self.hb_role == ROLE_REPORT else (
            f"the heartbeat is {hb.age:.0f} s old (stale after {hb.stale_after:.0f} s), in the on-loop format of a "
            "release not recognised: never a witness on its own (the stack and the loop-tick socket decide)")

    def loop_ran_during(self, since: float) -> bool:
        """Hermes' own witnesses say the loop ran after ``since`` (monotonic): a heartbeat the loop itself wrote
        (a recognised release's), or a byte from the loop-tick socket. Either vetoes a busy loop."""
        seen, mono = self.seen, self.seen.mono
        if mono is None:
            return False
        if seen.heartbeat is not None and self.hb_role == ROLE_WITNESS and mono - seen.heartbeat.age > since + 1.0:
            return True
        return (seen.tick is not None and seen.tick.answered and seen.tick.at > since) or self.syscalls_turned(since)

    def loop_in_dumps(self) -> tuple[str, int] | None:
        """The call the loop thread sat in, out of its selector, in the newest all-thread dumps (2 or more in a
        row, the newest fresh): (call, dumps)."""
        run: list[str] = []
        dumps, mono = self.seen.loop_dumps, self.seen.mono
        if not dumps or (mono is not None and mono - dumps[-1][0] > GIL_FRESH):
            return None
        for _at, call, in_selector in reversed(dumps):
            if in_selector or (run and call != run[0]):
                break
            run.append(call)
        return (run[0], len(run)) if len(run) >= 2 else None

    def watched(self) -> SyscallProbe | None:
        """The newest ptrace watch, if it was of the loop thread."""
        probe, tid = self.seen.syscalls, self.loop.loop_tid if self.loop else None
        return probe if probe is not None and probe.tid == tid else None

    def syscalls_turned(self, since: float) -> bool:
        """The newest ptrace watch of the loop thread saw it enter its selector after ``since``."""
        return syscalls.turned_during(self.seen.syscalls, self.stretch.tid if self.stretch else None, since)

    def syscalls_turned_within(self, seconds: float) -> bool:
        """A ptrace watch saw the loop enter its selector within the last ``seconds``."""
        t, mono = self.seen.syscall_turned, self.seen.mono
        return t is not None and mono is not None and mono - t < seconds

    def syscalls_silent_during(self, since: float) -> bool:
        """A ptrace watch made after ``since`` saw the loop thread run with no selector call, and none saw one
        for --loop-proof seconds: with the samples, the second witness (judge/syscalls.py)."""
        seen = self.seen
        return syscalls.silent_during(seen.syscalls, self.stretch.tid if self.stretch else None, since,
                                      seen.syscall_turned, seen.mono, self.th.proof)

    def independent(self) -> int:
        """The stretch's samples that count for the stack proof's error (judge/proof.py)."""
        st, loop = self.stretch, self.loop
        return independent_samples(st.samples, loop.loop_on_cpu) if st is not None and loop is not None else 0

    def tick_silent_during(self, since: float) -> bool:
        """A loop-tick probe made after ``since`` stayed silent: with the samples, the second witness."""
        tick = self.seen.tick
        return tick is not None and tick.at > since and not tick.answered

    def counted_within(self, seconds: float) -> bool:
        """The loop-turn counter saw the loop turn within the last ``seconds``."""
        return self.turns is not None and self.turns.stall <= seconds

    def all_own_down(self) -> bool:
        return bool(self.states) and all(s.state.ok and s.matches and s.state.not_connected for s in self.states)

    def old_rule(self) -> bool:
        """CPU pegged and every state read of the window names this process, running, with a platform
        down: a read naming another process (or unreadable) breaks the proof, it is not skipped."""
        assert self.usage is not None
        return (self.usage.pegged_value >= self.th.cpu and bool(self.states)
                and all(s.state.ok and s.matches and s.state.gateway_state == RUNNING and s.state.not_connected
                        for s in self.states))
