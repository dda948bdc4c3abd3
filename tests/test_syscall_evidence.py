"""Issue 25 item 3: syscall evidence on real processes. The real tracer (observe/syscall_tracer.py) watches
a simulated gateway's loop thread through ptrace: a loop computing 20 ms slices is seen entering epoll_wait
at once, a spinning loop is seen running with none; the gateway is unharmed (a signal sent meanwhile is
delivered, its loop goes on turning, nothing traces it afterwards); a process not proven is never watched.
Each holds while other processes load every core."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from hermes_watchdog.facts.readings import SYSCALL_RUN_FOR
from hermes_watchdog.observe import processes, syscalls
from tests.helpers import cli, signals_received, start_sim, wait_for
from tests.test_loop_verdicts import every_core_busy  # noqa: F401 - fixture

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ptrace watches are Linux-only")


def tracer_of(pid: int) -> int:
    """TracerPid of the process's main thread (0: nobody traces it)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("TracerPid:"):
            return int(line.split()[1])
    raise AssertionError("no TracerPid line")


def test_a_sliced_loop_is_seen_turning_and_a_spin_is_not(tmp_path: Path, every_core_busy) -> None:  # noqa: F811
    sliced = start_sim(tmp_path / "sliced", "sliced", "--slice-ms", "20").wait_running()
    spin = start_sim(tmp_path / "spin", "spin-connected", "--spin-after", "1").wait_running()
    try:
        spin.wait_spinning()
        got, why = syscalls.probe(processes.identity(sliced.pid), sliced.pid)
        assert got is not None, why
        # Its loop enters epoll_wait after each 20 ms slice: seen at the first, whatever the load.
        assert got.turned and why == "selector" and got.first_selector is not None, got
        got, why = syscalls.probe(processes.identity(spin.pid), spin.pid, seconds=60.0)
        assert got is not None, why
        assert not got.turned and got.silent(SYSCALL_RUN_FOR) and why == "ran", (got, why)
        assert got.ran is not None and got.ran >= SYSCALL_RUN_FOR
        for sim in (sliced, spin):
            assert sim.proc.poll() is None and tracer_of(sim.pid) == 0
    finally:
        sliced.kill()
        spin.kill()


def test_the_gateway_is_unharmed_by_a_watch(tmp_path: Path, every_core_busy) -> None:  # noqa: F811
    """Counting every turn for 3 s (the tracer's most intrusive use) while a signal arrives: the signal
    reaches the gateway's own handler, its loop goes on turning, and nothing traces it afterwards."""
    log = tmp_path / "signals.log"
    sim = start_sim(tmp_path / "home", "sliced", "--slice-ms", "20", "--signal-log", str(log)).wait_running()
    try:
        from threading import Timer

        Timer(0.5, os.kill, (sim.pid, signal.SIGUSR1)).start()
        second: list[tuple[object, str]] = []  # a watch asked for while one runs: busy, not refused
        Timer(1.0, lambda: second.append(syscalls.probe(processes.identity(sim.pid), sim.pid))).start()
        got, why = syscalls.probe(processes.identity(sim.pid), sim.pid, seconds=3.0, want=10**9)
        assert got is not None and why == "deadline", why
        wait_for(lambda: second, what="the second watch's answer")
        assert second[0][0] is None and "is being traced by PID" in second[0][1], second
        assert not syscalls.lasting(second[0][1]) and syscalls.lasting("ptrace not permitted")
        assert got.selector >= 5, got  # it turned all along, watched
        wait_for(lambda: "SIGUSR1" in signals_received(log), what="SIGUSR1 delivered to the gateway's handler")
        assert sim.proc.poll() is None and tracer_of(sim.pid) == 0
        again, _ = syscalls.probe(processes.identity(sim.pid), sim.pid)
        assert again is not None and again.turned  # its loop still turns
    finally:
        sim.kill()


def test_a_process_not_proven_is_never_watched(tmp_path: Path) -> None:
    sim = start_sim(tmp_path / "home", "sliced", "--slice-ms", "20").wait_running()
    try:
        ident = processes.identity(sim.pid)
        for wrong in (dataclasses.replace(ident, create_time=ident.create_time - 100),
                      dataclasses.replace(ident, cmdline=("python", "something-else")),
                      dataclasses.replace(ident, start_ticks=None)):
            got, why = syscalls.probe(wrong, sim.pid)
            assert got is None and why, wrong
        # The tracer's own check, for a start time that changed after the daemon's proof.
        raced = dataclasses.replace(ident, start_ticks=(ident.start_ticks or 0) + 7)
        got, why = syscalls.probe(raced, sim.pid)
        assert got is None and "not the process proven" in why, why
        got, why = syscalls.probe(ident, 1)  # a thread that is not this process's
        assert got is None and "not a thread of" in why, why
        time.sleep(0.2)
        assert tracer_of(sim.pid) == 0 and sim.proc.poll() is None
    finally:
        sim.kill()


def test_diagnose_counts_the_loops_turns_through_ptrace(tmp_path: Path, every_core_busy) -> None:  # noqa: F811
    """Issue 25 item 4 without the fix pack: `diagnose` says how often the loop turned, from its epoll_wait
    calls, or that it made none while it ran; not where --stack-with asks for no ptrace."""
    sliced = start_sim(tmp_path / "sliced", "sliced", "--slice-ms", "20").wait_running()
    spin = start_sim(tmp_path / "spin", "spin-connected", "--spin-after", "1").wait_running()
    try:
        spin.wait_spinning()
        folder = tmp_path / "evidence"  # the JSON and the report of one diagnosis (a new DIR holds them)
        r = cli("diagnose", str(sliced.pid), "--seconds", "2", "--hermes-home", str(sliced.home), "--out", str(folder))
        v = json.loads((folder / "diagnosis.json").read_text())["verdict"]
        assert v["signature"] != "busy-loop" and v["loop"]["syscalls"]["selector_calls"] >= 2, v
        assert any("seen through ptrace" in line for line in v["reasons"]), v["reasons"]
        assert "ptrace: the loop turned" in (folder / "report.md").read_text() and "ptrace" in r.out, r.out
        r = cli("diagnose", str(spin.pid), "--seconds", "3", "--hermes-home", str(spin.home), "--json")
        v = json.loads(r.out)["verdict"]
        watch = v["loop"]["syscalls"]
        # Half a second on a CPU, or the whole 5 s watch where the load left it less of a core.
        assert watch["selector_calls"] == 0 and (watch["ran_seconds"] >= SYSCALL_RUN_FOR
                                                 or watch["seconds"] >= syscalls.SECONDS - 0.1), v
        assert any("no epoll_wait" in line for line in v["reasons"]), v["reasons"]
        r = cli("diagnose", str(sliced.pid), "--seconds", "2", "--hermes-home", str(sliced.home), "--json",
                "--stack-with", "none")
        loop = json.loads(r.out)["verdict"].get("loop") or {}
        assert "syscalls" not in loop, loop
        assert tracer_of(sliced.pid) == 0 and tracer_of(spin.pid) == 0
    finally:
        sliced.kill()
        spin.kill()
