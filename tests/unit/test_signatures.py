"""The rules as plain data: no processes, no clock."""

from __future__ import annotations

import json

from hermes_watchdog.facts.cpu import CpuSnapshot, ThreadTimes
from hermes_watchdog.facts.stacks import Frame, StackAnalysis
from hermes_watchdog.judge.cpu import usage
from hermes_watchdog.judge.signatures import judge
from hermes_watchdog.judge.verdict import (
    BUSY_LOOP,
    CPU_PEGGED,
    HEALTHY,
    STUCK_DISCONNECTED,
    UNKNOWN,
    StateSeen,
    Thresholds,
)
from hermes_watchdog.observe.statefile import parse_state

NOW = 1_800_000_000.0
TH = Thresholds()


def cpu(cores: float, hot: float | None = None, seconds: float = 5.0):
    hot = cores if hot is None else hot
    return usage([CpuSnapshot(0, 0, (ThreadTimes(11, 0), ThreadTimes(12, 0))),
                  CpuSnapshot(seconds, cores * seconds, (ThreadTimes(11, hot * seconds), ThreadTimes(12, 0)))])


def state(gw: str = "running", matches: bool = True, updated: str = "2027-01-15T07:00:00+00:00",
          **platforms: str) -> StateSeen:
    data = {"pid": 1, "gateway_state": gw,
            "platforms": {k: {"state": v, "updated_at": updated} for k, v in platforms.items()}}
    return StateSeen(parse_state("s", json.dumps(data).encode()), matches, "names PID 2, not 1")


LOOP = StackAnalysis(captured=True, dumps=5, innermost_in=4,
                     frames=(Frame("QQAdapter._listen_loop", "gateway/platforms/qqbot/adapter.py", 492),))
OTHER = StackAnalysis(captured=True, dumps=5, innermost_in=5,
                      frames=(Frame("crunch", "agent/work.py", 10),))
NOSTACK = StackAnalysis(captured=False, reason="permission denied (ptrace)")


def test_busy_loop_needs_running_disconnected_and_pegged() -> None:
    v = judge(cpu(1.0), [state(qqbot="disconnected", telegram="connected")], None, TH, NOW)
    assert v.signature == BUSY_LOOP and v.platforms_down == ("qqbot",)
    assert any("qqbot is 'disconnected'" in r for r in v.reasons)


def test_hot_thread_alone_can_be_pegged() -> None:
    v = judge(cpu(0.95, hot=0.93), [state(qqbot="disconnected")], None, TH, NOW)
    assert v.signature == BUSY_LOOP


def test_function_names_in_the_hot_stack_change_nothing_in_the_verdict() -> None:
    # The hot thread's dumps are evidence for the report; no rule reads a name in them (the loop's own
    # samples name the call), so the verdict and its reasons are the same whatever they show.
    seen = [state(qqbot="disconnected")]
    plain = judge(cpu(1.0), seen, None, TH, NOW)
    named = judge(cpu(1.0), seen, LOOP, TH, NOW)
    other = judge(cpu(1.0), seen, OTHER, TH, NOW)
    assert plain.signature == named.signature == other.signature == BUSY_LOOP
    assert plain.confidence == named.confidence == other.confidence
    assert plain.reasons == named.reasons == other.reasons


def test_legitimate_cpu_with_connected_platforms_is_never_busy_loop() -> None:
    v = judge(cpu(1.9, hot=0.99), [state(qqbot="connected", telegram="connected")], OTHER, TH, NOW)
    assert v.signature == CPU_PEGGED


def test_pegged_without_state_file_is_cpu_pegged_even_with_loop_stack() -> None:
    missing = StateSeen(parse_state("s", None), False, "")
    v = judge(cpu(1.0), [missing], LOOP, TH, NOW)
    assert v.signature == CPU_PEGGED
    assert any("state file missing" in r for r in v.reasons)


def test_state_of_another_process_is_ignored() -> None:
    v = judge(cpu(1.0), [state(qqbot="disconnected", matches=False)], None, TH, NOW)
    assert v.signature == CPU_PEGGED
    assert any("state file ignored" in r for r in v.reasons)


def test_platform_must_be_down_in_every_read_of_the_window() -> None:
    v = judge(cpu(1.0), [state(qqbot="connected"), state(qqbot="disconnected")], None, TH, NOW)
    assert v.signature == CPU_PEGGED


def test_not_running_gateway_is_not_busy_loop() -> None:
    v = judge(cpu(1.0), [state("draining", qqbot="disconnected")], None, TH, NOW)
    assert v.signature == CPU_PEGGED


def test_idle_and_disconnected_is_stuck_with_confidence_by_duration() -> None:
    long_ago = judge(cpu(0.01), [state(updated="2027-01-15T06:00:00+00:00", qqbot="disconnected")], None, TH,
                     NOW)
    recent = judge(cpu(0.01), [state(updated="2027-01-15T07:59:50+00:00", qqbot="retrying")], None, TH, NOW)
    assert long_ago.signature == recent.signature == STUCK_DISCONNECTED
    assert long_ago.confidence > recent.confidence
    assert any("2.0 h ago" in r for r in long_ago.reasons)


def test_healthy_and_unknown() -> None:
    assert judge(cpu(0.02), [state(qqbot="connected")], None, TH, NOW).signature == HEALTHY
    assert judge(cpu(0.5), [], None, TH, NOW).signature == HEALTHY
    assert judge(None, [], None, TH, NOW).signature == UNKNOWN


def test_threshold_is_configurable() -> None:
    seen = [state(qqbot="disconnected")]
    assert judge(cpu(0.6), seen, None, TH, NOW).signature == STUCK_DISCONNECTED
    assert judge(cpu(0.6), seen, None, Thresholds(cpu=0.5), NOW).signature == BUSY_LOOP
