from __future__ import annotations

from hermes_watchdog.facts.cpu import CpuSnapshot, ThreadTimes
from hermes_watchdog.judge.cpu import usage


def snap(at: float, cpu: float, *threads: tuple[int, float]) -> CpuSnapshot:
    return CpuSnapshot(at, cpu, tuple(ThreadTimes(t, c) for t, c in threads))


def test_usage_needs_two_samples() -> None:
    assert usage([]) is None
    assert usage([snap(0, 0)]) is None


def test_process_and_thread_rates() -> None:
    u = usage([snap(0, 10, (1, 5), (2, 5)), snap(2, 11.9, (1, 6.9), (2, 5)), snap(4, 13.8, (1, 8.8), (2, 5))])
    assert u is not None
    assert abs(u.cores - 0.95) < 1e-9
    assert u.hot is not None and u.hot.tid == 1 and abs(u.hot.cores - 0.95) < 1e-9
    assert [round(c, 2) for _, c in u.intervals] == [0.95, 0.95]


def test_thread_born_mid_window_is_measured_from_first_sighting() -> None:
    u = usage([snap(0, 0, (1, 0)), snap(2, 1, (1, 0), (9, 50)), snap(4, 3, (1, 0), (9, 52))])
    assert u is not None and u.hot is not None
    assert u.hot.tid == 9 and abs(u.hot.cores - 0.5) < 1e-9  # 2 s of CPU over the 4 s span


def test_counter_going_backwards_is_clamped() -> None:
    u = usage([snap(0, 5), snap(1, 4)])
    assert u is not None and u.cores == 0.0
