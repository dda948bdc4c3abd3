"""Issue 25 item 3: syscall evidence as the loop witness where no counter is live, as plain data. The
samples alone need 11,510 looks taken while the thread ran; a ptrace watch of the loop thread says exactly
whether it entered its selector (judge/syscalls.py)."""

from __future__ import annotations

import threading
import time

from hermes_watchdog.facts.plan import SamplingPlan
from hermes_watchdog.facts.readings import SYSCALL_RUN_FOR, SyscallProbe
from hermes_watchdog.judge import policy
from hermes_watchdog.judge.loop import findings
from hermes_watchdog.judge.signatures import SPIN_SHARE, judge
from hermes_watchdog.judge.syscalls import AGAIN, want_trace
from hermes_watchdog.judge.verdict import BUSY_LOOP, BY_SYSCALLS, CPU_PEGGED, Seen
from hermes_watchdog.observe.loop_sampler import LoopSampler
from tests.helpers import wait_for
from tests.unit.test_loop import NOW, PID, RULES, SPINNING, TH, burst, cpu_over, raw, snaps_for, state

ON_CPU = TH.cpu * SPIN_SHARE


def thin_spin(n: int = 3, start: float = 1.0) -> list:  # type: ignore[type-arg]
    """Back-to-back 3 s bursts of 75 samples each: a stretch far short of the samples' own proof."""
    return [burst(start + i * 3.2, raw((SPINNING, 75))) for i in range(n)]


def silent(at: float, ran: float = 0.6) -> SyscallProbe:
    return SyscallProbe(at, PID, 1.0, ran, 0, 40)


def turned(at: float) -> SyscallProbe:
    return SyscallProbe(at, PID, 0.02, 0.01, 1, 0, first_selector=0.02)


def verdict(probe: SyscallProbe | None, last_turn: float | None = None, demand: float = 1.0):  # type: ignore[no-untyped-def]
    snaps = snaps_for(PID, demand)
    loop = findings(thin_spin(), snaps)
    return judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW,
                 seen=Seen(loop=loop, mono=12.0, syscalls=probe, syscall_turned=last_turn))


def test_the_samples_alone_are_not_enough_here() -> None:
    v = verdict(None)
    assert v.signature == CPU_PEGGED and any("independent samples" in r for r in v.reasons), v.reasons


def test_a_silent_watch_in_the_stretch_proves_the_busy_loop() -> None:
    v = verdict(silent(at=9.0))
    assert v.signature == BUSY_LOOP and v.proof == BY_SYSCALLS and v.starvation_proven, v.reasons
    assert any("no epoll_wait" in r for r in v.reasons)
    assert policy.decide(v, 0, RULES).kind == policy.RESTART


def test_a_selector_call_seen_in_the_stretch_vetoes_it() -> None:
    v = verdict(turned(at=9.0), last_turn=8.98)
    assert v.signature == CPU_PEGGED and any("ptrace saw it enter its selector" in r for r in v.reasons), v.reasons


def test_a_turn_seen_within_the_proof_window_keeps_it_pending() -> None:
    # The newest watch is silent, but an earlier one saw a turn 4 s ago: not yet --loop-proof seconds.
    v = verdict(silent(at=11.0), last_turn=8.0)
    assert v.signature == CPU_PEGGED and any("selector less than" in r for r in v.reasons), v.reasons
    assert verdict(silent(at=11.0), last_turn=12.0 - TH.proof).signature == BUSY_LOOP


def test_a_watch_too_short_or_from_before_the_stretch_proves_nothing() -> None:
    assert verdict(silent(at=9.0, ran=SYSCALL_RUN_FOR / 2)).signature == CPU_PEGGED  # it barely ran
    assert verdict(silent(at=0.5)).signature == CPU_PEGGED  # before the stretch began
    other = SyscallProbe(9.0, PID + 1, 1.0, 0.6, 0, 0)  # another thread's watch
    assert verdict(other).signature == CPU_PEGGED


def test_what_to_watch_and_when() -> None:
    snaps = snaps_for(PID, 1.0)
    loop = findings(thin_spin(), snaps)
    assert loop.stretch is not None
    since = loop.stretch.since
    assert want_trace(loop, False, None, 12.0, ON_CPU) == PID
    assert want_trace(loop, True, None, 12.0, ON_CPU) is None  # the counter decides alone
    assert want_trace(loop, False, silent(since + 1), since + 2, ON_CPU) is None  # one is fresh
    assert want_trace(loop, False, silent(since + 1), since + 1 + AGAIN, ON_CPU) == PID  # again, while it lasts
    assert want_trace(loop, False, silent(since - 1), since + 1, ON_CPU) == PID  # that one predates the stretch
    sleeping = findings(thin_spin(), snaps_for(PID, 0.05))  # a blocked thread is not interrupted for it
    assert want_trace(sleeping, False, None, 12.0, ON_CPU) is None
    assert want_trace(findings([], snaps), False, None, 12.0, ON_CPU) is None


def test_the_sampler_makes_one_watch_per_request_and_backs_off_when_refused() -> None:
    """The sampler's watch thread, driven with a plain function in place of the tracer: a request made while
    a watch runs is not queued again, and a lasting refusal (ptrace not permitted) is not retried at once."""
    calls: list[int] = []
    gate = threading.Event()

    def watch(tid: int) -> tuple[SyscallProbe | None, str]:
        calls.append(tid)
        gate.wait(10)
        return turned(1.0), "selector"

    s = LoopSampler(PID, SamplingPlan(), None, trace=watch)
    try:
        s.trace(PID)
        wait_for(lambda: calls, what="the first watch")
        s.trace(PID)
        s.trace(PID)  # asked again while it runs
        gate.set()
        got: list[SyscallProbe] = []
        wait_for(lambda: got.extend(s.drain()[2]) or got, what="the watch drained")
        time.sleep(0.2)
        assert calls == [PID] and len(got) == 1 and s.trace_problem is None
    finally:
        s.close(1.0)
    refused: list[int] = []

    def no(tid: int) -> tuple[SyscallProbe | None, str]:
        refused.append(tid)
        return None, "ptrace not permitted"

    s = LoopSampler(PID, SamplingPlan(), None, trace=no)
    try:
        s.trace(PID)
        wait_for(lambda: s.trace_problem, what="the refusal")
        s.trace(PID)
        time.sleep(0.3)
        assert refused == [PID] and s.trace_problem == "ptrace not permitted"  # backing off, not asking again
    finally:
        s.close(1.0)
