"""One tick's judgement of a watched gateway: the window of readings observe/ took, in; the verdict, the
loop-turn counter's findings and how to sample the loop next, out. Pure: the daemon's tick is observe
(I/O) -> this -> policy and daemon/decide.py -> effects."""

from __future__ import annotations

from dataclasses import dataclass

from hermes_watchdog.facts.cpu import CpuSnapshot
from hermes_watchdog.facts.deaf import DeafSeen
from hermes_watchdog.facts.loop_samples import RATE, Burst
from hermes_watchdog.facts.readings import HeartbeatSeen, SyscallProbe, TickProbe, TurnSample, Upstream
from hermes_watchdog.facts.threads import GilSample
from hermes_watchdog.judge.cpu import usage
from hermes_watchdog.judge.families import Recognised
from hermes_watchdog.judge.loop import findings as loop_findings
from hermes_watchdog.judge.proof import UNCOUNTED_RATE
from hermes_watchdog.judge.signatures import SPIN_SHARE, judge
from hermes_watchdog.judge.syscalls import want_trace
from hermes_watchdog.judge.turns import SUSPECT_AFTER
from hermes_watchdog.judge.turns import findings as turn_findings
from hermes_watchdog.judge.verdict import (
    BUSY_LOOP,
    GATEWAY_GONE,
    LOOP_FROZEN,
    Memory,
    Seen,
    StateSeen,
    Thresholds,
    Verdict,
)


@dataclass(frozen=True)
class WindowReadings:
    """What the window of one watched gateway holds after this tick's reads."""

    snaps: tuple[CpuSnapshot, ...]  # the verdict's window
    long_snaps: tuple[CpuSnapshot, ...]  # as long as the bursts: the loop thread's demand over a stretch
    states: tuple[StateSeen, ...]
    bursts: tuple[Burst, ...]
    turns: tuple[TurnSample, ...]
    heartbeat: HeartbeatSeen | None
    tick: TickProbe | None
    upstream: Upstream | None
    release: Recognised | None
    deaf: DeafSeen | None
    age: float  # seconds since the gateway started
    mono: float  # monotonic now (the newest sample's)
    now: float  # epoch now
    syscalls: SyscallProbe | None = None  # the newest ptrace watch of the loop thread
    syscall_turned: float | None = None  # monotonic: the newest selector call a watch saw
    gil: tuple[GilSample, ...] = ()  # who held the GIL in all-thread dumps while suspect, oldest first
    loop_dumps: tuple[tuple[float, str, bool], ...] = ()  # (monotonic, loop thread's call, in its selector)


@dataclass(frozen=True)
class Judged:
    verdict: Verdict
    suspect: bool  # sample the loop densely: it wants the CPU, it was seen off its selector, its beat is stale
    dense_rate: int  # Hz of dense bursts: RATE where the counter proves turns, else the samples are the proof
    trace: int | None = None  # the loop thread whose system calls to watch now (judge/syscalls.py)


def judge_window(r: WindowReadings, th: Thresholds) -> Judged:
    turns = turn_findings(list(r.turns), list(r.long_snaps))
    seen = Seen(loop=loop_findings(list(r.bursts), list(r.long_snaps)), heartbeat=r.heartbeat, tick=r.tick,
                memory=Memory(tuple((s.at, s.rss) for s in r.snaps if s.rss is not None)), age=r.age,
                upstream=r.upstream, mono=r.mono, release=r.release, deaf=r.deaf, turns=turns,
                syscalls=r.syscalls, syscall_turned=r.syscall_turned, gil=r.gil, gil_wakes=loop_wakes(r),
                loop_dumps=r.loop_dumps)
    verdict = judge(usage(list(r.snaps)), list(r.states), None, th, now=r.now, seen=seen)
    live = turns is not None and turns.live
    return Judged(verdict, suspect(r, verdict, th), RATE if live else UNCOUNTED_RATE,
                  # Proven already: the evidence's py-spy dumps must find the thread free of ptrace.
                  None if verdict.signature == BUSY_LOOP else
                  want_trace(seen.loop, live, r.syscalls, r.mono, th.cpu * SPIN_SHARE))


def loop_wakes(r: WindowReadings) -> tuple[tuple[float, int], ...]:
    """The wake-ups (schedstat slices) of the loop thread the newest all-thread dump names, for gil-held."""
    tid = r.gil[-1].loop_tid if r.gil else None
    if tid is None:
        return ()
    return tuple((s.at, t.slices) for s in r.long_snaps for t in s.threads if t.tid == tid and t.slices is not None)


def suspect(r: WindowReadings, verdict: Verdict, th: Thresholds) -> bool:
    """Dense loop sampling while something is suspect: the loop thread wants the CPU, the counter has not
    moved for a while, a loop burst saw it off its selector, the heartbeat is stale, or a verdict says busy
    or frozen."""
    now_cpu = usage(list(r.long_snaps[-2:])) if len(r.long_snaps) >= 2 else None
    last = r.bursts[-1] if r.bursts else None
    turn = r.turns[-1] if r.turns else None
    return (
        (now_cpu is not None and now_cpu.pegged_value >= th.cpu / 2)
        or (turn is not None and turn.tid is not None and turn.stall >= SUSPECT_AFTER)
        or (last is not None and last.usable and not last.turned)
        or (r.heartbeat is not None and r.heartbeat.stale)
        or verdict.signature in {BUSY_LOOP, LOOP_FROZEN}
    )


def gone(death: str | None, state_says_running: bool, how: str) -> Verdict:
    """No live gateway. Not called a crash: Hermes 0.19 leaves "running" behind on a clean SIGTERM on
    purpose; its lifecycle ledger (0.19.1+) does record clean exits, so that one can say "unclean death"."""
    return Verdict(GATEWAY_GONE, 0.9, tuple(r for r in (
        death, f"the state file says running, but {how}" if state_says_running else None) if r))
