"""CPU demand (time on a CPU + time waiting on a run queue, from Linux schedstat) judges "pegged", so a
spinning gateway that other processes starve of CPU time is still found; CPU time where there is none.

Pure arithmetic first (plain snapshots), then real processes: the simulated gateway pinned to one CPU
beside 2 x cpu_count busy processes pinned to the same CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from hermes_watchdog.diagnosis import cpu_dict
from hermes_watchdog.facts.cpu import CpuSnapshot, ThreadTimes
from hermes_watchdog.judge.cpu import CPU_TIME, DEMAND, usage
from hermes_watchdog.judge.signatures import judge
from hermes_watchdog.judge.verdict import BUSY_LOOP, STUCK_DISCONNECTED, StateSeen, Thresholds
from hermes_watchdog.observe import sampler
from hermes_watchdog.observe.statefile import parse_state
from hermes_watchdog.record import metrics, render, report
from tests.helpers import cli, wait_for

NS = 1_000_000_000
TH = Thresholds()
NOW = 1_800_000_000.0


def t(tid: int, cpu: float, run: float | None = None, wait: float | None = None) -> ThreadTimes:
    """A thread: CPU seconds, and schedstat seconds on CPU / waiting (None: no schedstat)."""
    return ThreadTimes(tid, cpu, None if run is None else int(run * NS), None if wait is None else int(wait * NS))


def snap(at: float, *threads: ThreadTimes) -> CpuSnapshot:
    return CpuSnapshot(at, sum(x.cpu for x in threads), tuple(threads))


def disconnected() -> list[StateSeen]:
    data = {"pid": 1, "gateway_state": "running",
            "platforms": {"qqbot": {"state": "disconnected", "updated_at": "2027-01-15T07:00:00+00:00"}}}
    return [StateSeen(parse_state("s", json.dumps(data).encode()), True)]


# ------------------------------------------------------------------ pure arithmetic

def starved_spin(with_schedstat: bool = True):
    """Thread 11 runnable for all 5 s but on the CPU for only 1 s (0.2 of the time); thread 12 asleep."""
    if with_schedstat:
        return usage([snap(0, t(11, 10, 10, 3), t(12, 1, 1, 0.1)),
                      snap(5, t(11, 11, 11, 7), t(12, 1, 1, 0.1))])
    return usage([snap(0, t(11, 10), t(12, 1)), snap(5, t(11, 11), t(12, 1))])


def test_runnable_thread_is_pegged_by_demand_although_it_got_a_fifth_of_a_core() -> None:
    u = starved_spin()
    assert u is not None and u.measure == DEMAND
    assert u.hot is not None and u.hot.tid == 11
    assert u.hot.cores == pytest.approx(0.2) and u.hot.on_cpu == pytest.approx(0.2)
    assert u.hot.waiting == pytest.approx(0.8) and u.hot_demand == pytest.approx(1.0)
    assert u.cores == pytest.approx(0.2) and u.pegged_value == pytest.approx(1.0)
    v = judge(u, disconnected(), None, TH, NOW)
    assert v.signature == BUSY_LOOP, v.reasons
    assert v.measure == DEMAND and v.hot_demand == pytest.approx(1.0) and v.hot_cores == pytest.approx(0.2)
    assert "hottest thread 11 wants 1.00 core (demand: on CPU 0.20 + waiting 0.80), gets 0.20" in v.reasons[0]
    d = v.to_dict()
    assert d["measure"] == "demand" and d["hot_demand"] == 1.0 and d["demand"] == 1.0
    assert d["cores"] == 0.2 and d["hot_thread_cores"] == 0.2  # the old fields stay


def test_without_schedstat_cpu_time_judges_and_says_so() -> None:
    u = starved_spin(with_schedstat=False)
    assert u is not None and u.measure == CPU_TIME and u.demand is None and u.hot_demand is None
    assert u.pegged_value == pytest.approx(0.2)
    v = judge(u, disconnected(), None, TH, NOW)
    assert v.signature == STUCK_DISCONNECTED and v.measure == CPU_TIME
    assert "(CPU time; no run-queue data on this system" in v.reasons[0]
    pegged = judge(usage([snap(0, t(11, 0)), snap(5, t(11, 5))]), disconnected(), None, TH, NOW)
    assert pegged.signature == BUSY_LOOP and pegged.measure == CPU_TIME
    assert pegged.reasons[0].startswith("CPU 1.00 cores over 5.0 s (CPU time; no run-queue data on this system")


def test_kernel_without_schedstats_reads_zeros_and_falls_back() -> None:
    u = usage([snap(0, t(11, 10, 0, 0)), snap(5, t(11, 11, 0, 0))])  # sched_info off: "0 0 0"
    assert u is not None and u.measure == CPU_TIME and u.demand is None


def test_schedstat_that_does_not_move_while_cpu_time_grows_is_not_trusted() -> None:
    u = usage([snap(0, t(11, 10, 10, 1)), snap(5, t(11, 14, 10, 1))])
    assert u is not None and u.measure == CPU_TIME and u.hot is not None and u.hot.demand is None
    assert u.cores == pytest.approx(0.8)


def test_a_thread_missing_schedstat_in_the_last_sample_means_cpu_time() -> None:
    u = usage([snap(0, t(11, 0, 0, 0), t(12, 0, 0, 0)), snap(5, t(11, 1, 1, 4), t(12, 0))])
    assert u is not None and u.measure == CPU_TIME


def test_vanished_thread_is_not_measured_and_a_new_one_counts_from_its_first_sighting() -> None:
    u = usage([snap(0, t(11, 0, 0, 0), t(13, 5, 5, 5)),
               snap(2, t(11, 1, 1, 1), t(13, 6, 6, 6), t(14, 0, 0, 0)),
               snap(4, t(11, 2, 2, 2), t(14, 1, 1, 1))])  # 13 exited; 14 born at 2 s
    assert u is not None and u.measure == DEMAND
    by_tid = {x.tid: x for x in u.threads}
    assert set(by_tid) == {11, 14}
    assert by_tid[11].demand == pytest.approx(1.0)
    assert by_tid[14].demand == pytest.approx(0.5)  # 2 s of demand over the 4 s span
    assert u.demand == pytest.approx(1.5)
    # Per interval, the threads present at both ends of it: 11 and 13, then 11 and 14.
    assert [round(d, 2) for _, d in u.demand_intervals] == [2.0, 2.0]


def test_counter_going_backwards_is_clamped_not_negative() -> None:
    # The same tid reused by a new thread: its counters restart near zero.
    u = usage([snap(0, t(11, 50, 50, 9)), snap(5, t(11, 0.5, 0.5, 0.1))])
    assert u is not None and u.measure == DEMAND
    assert u.hot is not None and u.hot.demand == 0.0 and u.hot.cores == 0.0 and u.demand == 0.0


def test_thread_demand_above_one_core_is_capped() -> None:
    # Waits are booked when the thread gets the CPU back, so a short window can read a little above 1.
    u = usage([snap(0, t(11, 0, 0, 0)), snap(2, t(11, 0.5, 0.5, 1.7))])
    assert u is not None and u.hot is not None
    assert u.hot.demand == pytest.approx(1.0) and u.hot.on_cpu + u.hot.waiting == pytest.approx(1.0)


def test_process_demand_sums_threads_but_pegged_is_the_hottest_thread() -> None:
    # Two workers, each runnable 60% of the time: the process wants 1.2 cores, no single thread is pegged.
    u = usage([snap(0, t(11, 0, 0, 0), t(12, 0, 0, 0)), snap(5, t(11, 1.5, 1.5, 1.5), t(12, 1.5, 1.5, 1.5))])
    assert u is not None and u.demand == pytest.approx(1.2) and u.hot_demand == pytest.approx(0.6)
    assert u.pegged_value < TH.cpu
    assert judge(u, disconnected(), None, TH, NOW).signature == STUCK_DISCONNECTED
    # Process CPU time at the threshold still counts, as before.
    both = usage([snap(0, t(11, 0, 0, 0), t(12, 0, 0, 0)), snap(5, t(11, 2.5, 2.5, 0), t(12, 2.5, 2.5, 0))])
    assert both is not None and both.pegged_value == pytest.approx(1.0)


def test_hot_thread_is_the_one_that_wants_the_cpu_most() -> None:
    # 12 got more CPU time, but 11 was runnable all the time: 11 is the one to take a stack of.
    u = usage([snap(0, t(11, 0, 0, 0), t(12, 0, 0, 0)), snap(5, t(11, 1, 1, 4), t(12, 2, 2, 0))])
    assert u is not None and u.hot is not None and u.hot.tid == 11


def test_diagnosis_render_and_report_show_both_measures() -> None:
    u = starved_spin()
    d = cpu_dict(u, "MainThread", ())
    assert d["measure"] == "demand" and d["ratio"] == 0.2 and d["demand"] == 1.0
    assert d["hot_thread"] == {"tid": 11, "name": "MainThread", "ratio": 0.2, "demand": 1.0, "on_cpu": 0.2,
                               "waiting": 0.8}
    assert d["samples"] == [{"t": 5, "cores": 0.2, "demand": 1.0}]
    lines = "\n".join(render.cpu_text(d))
    assert "gets 0.2 cores, wants 1.0 (on CPU 0.2 + waiting 0.8)" in lines and "judged by demand" in lines
    md = report.render({"cpu": d}, "", "")
    assert "wants 1.0 (on CPU 0.2 + waiting 0.8)" in md and "Judged by **demand**" in md
    plain = cpu_dict(starved_spin(with_schedstat=False), None, ())
    assert plain["measure"] == "cpu-time" and plain["demand"] is None
    assert "judged by CPU time (no run-queue data on this system)" in render.cpu_text(plain)
    assert "Judged by **CPU time**" in report.render({"cpu": plain}, "", "")


def test_metrics_carry_demand_only_when_known() -> None:
    from tests.unit.test_metrics import render as scrape

    g = metrics.GatewayMetrics("qq", True, 0.2, 0.2, cpu_demand=1.02, hot_thread_demand=1.0)
    m = scrape(metrics.Snapshot((g,), 1.0, 1.0))
    assert m[("hermes_watchdog_gateway_cpu_demand_cores", (("profile", "qq"),))] == 1.02
    assert m[("hermes_watchdog_gateway_hot_thread_demand_cores", (("profile", "qq"),))] == 1.0
    m = scrape(metrics.Snapshot((metrics.GatewayMetrics("mac", True, 0.2, 0.2),), 1.0, 1.0))
    assert not [k for k in m if "demand" in k[0]]  # no schedstat: no series, not a 0


def test_schedstat_reader_is_bounded_and_tolerant(tmp_path: Path) -> None:
    f = tmp_path / "schedstat"
    f.write_text("553519450 609644 27\n")
    assert sampler.read_schedstat(str(f)) == (553519450, 609644)
    f.write_text("garbage")
    assert sampler.read_schedstat(str(f)) is None
    f.write_bytes(b"1 2 3 " + b"9" * 10_000)  # never read past the bound
    assert sampler.read_schedstat(str(f)) == (1, 2)


# ------------------------------------------------------------------ real processes

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="schedstat is Linux only")


@linux_only
def test_sampler_reads_each_threads_schedstat_of_a_real_process() -> None:
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, name="sleeper")
    worker.start()
    try:
        s = sampler.snapshot(psutil.Process())
    finally:
        stop.set()
        worker.join()
    assert worker.native_id in {x.tid for x in s.threads}
    assert all(x.run_ns is not None and x.wait_ns is not None for x in s.threads)
    main = next(x for x in s.threads if x.tid == os.getpid())
    assert main.run_ns and main.run_ns > 0


@pytest.fixture
def one_cpu_load() -> Iterator[tuple[int, list[int]]]:
    """2 x cpu_count busy processes pinned to one CPU (killed by PID afterwards): (that CPU, their PIDs)."""
    cpu = min(os.sched_getaffinity(0))
    busy: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(2 * (os.cpu_count() or 1)):
            p = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            busy.append(p)
            os.sched_setaffinity(p.pid, {cpu})
        yield cpu, [p.pid for p in busy]
    finally:
        for p in busy:
            p.kill()
        for p in busy:
            p.wait(10)


def diagnose(pid: int) -> dict:
    r = cli("diagnose", str(pid), "--seconds", "3", "--json")
    assert r.code in (0, 1) and "Traceback" not in r.err, r.err
    return r.json()


@linux_only
def test_spin_starved_by_busy_processes_on_its_cpu_is_still_busy_loop(sim, one_cpu_load) -> None:
    cpu, _ = one_cpu_load
    g = sim("spin", "--spin-after", "1")
    os.sched_setaffinity(g.pid, {cpu})
    g.wait_running().wait_spinning()
    d = diagnose(g.pid)
    v, c = d["verdict"], d["cpu"]
    assert v["signature"] == "busy-loop", v
    assert v["measure"] == "demand" and c["measure"] == "demand"
    assert c["hot_thread"]["tid"] == g.pid and v["hot_demand"] >= 0.9, c
    # The point: it got well under the threshold of CPU time, which alone would not call it pegged.
    assert c["hot_thread"]["ratio"] < 0.7 and c["ratio"] < 0.7, c
    assert any("wants" in r and "waiting" in r for r in v["reasons"]), v["reasons"]


@linux_only
def test_idle_gateway_under_the_same_load_is_not_pegged(sim, one_cpu_load) -> None:
    cpu, _ = one_cpu_load
    g = sim("healthy")
    os.sched_setaffinity(g.pid, {cpu})
    g.wait_running()
    d = diagnose(g.pid)
    v, c = d["verdict"], d["cpu"]
    assert v["signature"] == "healthy", v
    assert c["measure"] == "demand" and c["hot_thread"]["demand"] < 0.5, c  # asleep in epoll: not runnable


@linux_only
def test_idle_disconnected_gateway_under_load_stays_stuck_not_busy(sim, one_cpu_load) -> None:
    cpu, _ = one_cpu_load
    g = sim("idle-disconnected", "--spin-after", "0.3")
    os.sched_setaffinity(g.pid, {cpu})
    g.wait_running()
    wait_for(lambda: "disconnected" in (g.home / "gateway_state.json").read_text(), what="disconnect")
    d = diagnose(g.pid)
    assert d["verdict"]["signature"] == "stuck-disconnected", d["verdict"]
    assert d["cpu"]["measure"] == "demand" and d["cpu"]["hot_thread"]["demand"] < 0.5, d["cpu"]
