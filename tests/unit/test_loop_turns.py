"""The loop-turn counter: its file (format, ownership proof, safe reads), what it counts (a real interpreter
armed as a gateway's would be), and the pure rules that make it the first loop witness."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from hermes_watchdog.facts.cpu import CpuSnapshot, ThreadTimes
from hermes_watchdog.facts.loop_samples import RATE
from hermes_watchdog.facts.readings import HeartbeatSeen, TickProbe
from hermes_watchdog.judge import policy
from hermes_watchdog.judge.loop import findings
from hermes_watchdog.judge.proof import PROOF_SAMPLES, UNCOUNTED_RATE, miss_probability
from hermes_watchdog.judge.signatures import judge
from hermes_watchdog.judge.turns import STILL_PROOF, TurnFindings
from hermes_watchdog.judge.turns import findings as turn_findings
from hermes_watchdog.judge.verdict import BUSY_LOOP, BY_COUNTER, CPU_PEGGED, HEALTHY, LOOP_FROZEN, Seen
from hermes_watchdog.judge.window import WindowReadings, gone, judge_window
from hermes_watchdog.observe import loop_turns as reader
from hermes_watchdog.observe.processes import identity
from hermes_watchdog.patches import loop_turns as counter
from tests.unit.test_loop import (
    NOW,
    PID,
    RULES,
    SPIN_PER_BURST,
    SPINNING,
    STALE,
    TH,
    burst,
    cpu_over,
    raw,
    snaps_for,
    spin_bursts,
    state,
)

# ---------------------------------------------------------------- the file and its reader


def make_counter(home: Path) -> None:
    mm = counter._create(str(home), identity(os.getpid()).start_ticks)
    mm.close()


def test_the_counter_file_is_private_and_names_its_process(tmp_path: Path) -> None:
    make_counter(tmp_path)
    path = reader.path_of(tmp_path)
    st = os.lstat(path)
    assert st.st_size == reader.SIZE and st.st_mode & 0o777 == 0o600 and st.st_uid == os.getuid()
    got = reader.TurnReader(identity(os.getpid()), tmp_path).sample()
    assert got is not None and got.turns == 0 and got.tid is None and got.period == counter.PERIOD
    assert not TurnFindings((got,)).live  # no loop has run: not a witness either way
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # the temp file was renamed into place


def test_the_reader_refuses_what_the_hook_did_not_write_for_this_process(tmp_path: Path) -> None:
    me = identity(os.getpid())
    make_counter(tmp_path)
    path = reader.path_of(tmp_path)
    raw_ok = path.read_bytes()
    parent = identity(os.getppid())
    r = reader.TurnReader(parent, tmp_path)
    assert r.sample() is None and "names PID" in r.why  # another process's counter
    path.chmod(0o644)
    r = reader.TurnReader(me, tmp_path)
    assert r.sample() is None and "open to other users" in r.why
    path.chmod(0o600)
    path.write_bytes(raw_ok[:40])
    assert r.sample() is None and "not 64" in r.why
    path.write_bytes(raw_ok[:16] + (12345).to_bytes(8, "little", signed=True) + raw_ok[24:])
    assert r.sample() is None and "start time" in r.why  # an earlier process with the same pid
    path.unlink()
    os.symlink("/etc/hostname", path)
    assert r.sample() is None and "symbolic link" in r.why
    path.unlink()
    os.mkfifo(path, 0o600)  # never waited on
    assert r.sample() is None
    path.unlink()
    assert r.sample() is None and "not armed" in r.why


COUNTING = """
import asyncio, json, os, sys, threading
from hermes_watchdog.patches import hook
print(hook.arm(["python", "-m", "hermes_cli.main", "gateway", "run"]))
async def turns(n):
    for _ in range(n):
        await asyncio.sleep(0)
def helper():
    asyncio.run(turns(5000))  # a loop in another thread: never counted
t = threading.Thread(target=helper)
t.start(); t.join()
asyncio.run(turns(300))
print(json.dumps({"native": threading.get_native_id(), "pid": os.getpid(), "status": hook.status()}))
"""


def test_an_armed_gateway_counts_its_main_loop_only(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", COUNTING], capture_output=True, text=True, timeout=120, check=True,
                         env={**os.environ, "HERMES_HOME": str(tmp_path)})
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert "counting the main event loop" in info["status"]["turns"], info
    raw_bytes = reader.path_of(tmp_path).read_bytes()
    magic, pid, _start, uid, tid, _period, turns, last = reader._LAYOUT.unpack(raw_bytes)
    assert magic == reader.MAGIC and pid == info["pid"] and uid == os.getuid() and tid == info["native"]
    assert 300 <= turns < 1000, turns  # the main loop's 300 steps and its bookkeeping, not the helper's 5000
    assert last > 0


def test_the_counter_is_off_outside_a_gateway_and_with_its_switch(tmp_path: Path) -> None:
    code = ("from hermes_watchdog.patches import hook; import sys; "
            "print(hook.arm(sys.argv[1:]), hook.status().get('turns'))")
    env = {**os.environ, "HERMES_HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", code, "python", "-m", "hermes_cli.main", "status"],
                       capture_output=True, text=True, timeout=60, env=env, check=True)
    assert "not a Hermes gateway" in r.stdout and not reader.path_of(tmp_path).exists()
    r = subprocess.run([sys.executable, "-c", code, "python", "-m", "hermes_cli.main", "gateway", "run"],
                       capture_output=True, text=True, timeout=60, env={**env, counter.ENV_SWITCH: "0"}, check=True)
    assert "off: HERMES_WATCHDOG_TURNS=0" in r.stdout and not reader.path_of(tmp_path).exists()


def test_the_installer_puts_the_counter_beside_the_hook() -> None:
    from hermes_watchdog.patches import installer

    src = installer.SOURCES[installer.TURNS_NAME]
    assert src.name == "loop_turns.py" and src.is_file()
    hook_text = installer.SOURCES[installer.HOOK_NAME].read_text()
    assert f"import {installer.TURNS_NAME}" in hook_text  # the name the hook imports it by, installed


# ---------------------------------------------------------------- the rules


def turns_seen(stall: float, mono: float, rate: float = 50.0, tid: int = PID, reads: int = 10
               ) -> list[reader.TurnSample]:
    """Reads one a second up to ``mono``; the loop turned ``rate`` times a second until ``mono - stall``,
    its timer (stamp) with its last turn."""
    out, last_turn = [], mono - stall
    for i in range(reads):
        at = mono - (reads - 1 - i)
        seen_last = min(at, last_turn)
        out.append(reader.TurnSample(at, 1 + int(seen_last * rate), seen_last, tid, 1.0))
    return out


def test_a_counter_still_while_its_thread_wants_a_core_is_a_busy_loop_in_seconds() -> None:
    snaps = snaps_for(PID, 1.0)
    found = turn_findings(turns_seen(TH.proof + 1, 12.0), snaps)
    assert found is not None and found.starved(TH.cpu, TH.proof)
    v = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW, seen=Seen(turns=found, mono=12.0))
    assert v.signature == BUSY_LOOP and v.proof == BY_COUNTER and v.starvation_proven
    assert any("the loop turned 0 times in 9 s" in r for r in v.reasons), v.reasons
    assert v.loop is not None and v.loop["counter"]["stall_seconds"] == 9.0
    # Still 4 s: proof enough for the counter (STILL_PROOF) but not yet the proof window (--loop-proof 8).
    short = turn_findings(turns_seen(STILL_PROOF + 1, 12.0), snaps)
    assert short is not None and short.starved(TH.cpu) and not short.starved(TH.cpu, TH.proof)
    p = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW, seen=Seen(turns=short, mono=12.0))
    assert p.signature == CPU_PEGGED and any("suspect: the loop-turn counter" in r for r in p.reasons), p.reasons
    assert policy.decide(v, 0, RULES).kind == policy.RESTART
    # Still as long, its thread idle (blocked, or idle with no timers: the hook's timer rules that out):
    # not a busy loop.
    idle = snaps_for(PID, 0.0)
    quiet = turn_findings(turns_seen(STILL_PROOF + 1, 12.0), idle)
    assert quiet is not None and not quiet.starved(TH.cpu)
    assert judge(cpu_over(idle), [state(qqbot="connected")], None, TH, NOW,
                 seen=Seen(turns=quiet, mono=12.0)).signature != BUSY_LOOP


def test_a_counter_that_advanced_vetoes_what_stack_samples_say() -> None:
    snaps = snaps_for(PID, 1.0)
    loop = findings(spin_bursts(3, start=1.0), snaps)  # enough samples to prove a spin, never in the selector
    turning = turn_findings(turns_seen(0.02, 12.0), snaps)  # yet the loop counted 50 turns a second
    v = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW,
              seen=Seen(loop=loop, turns=turning, mono=12.0))
    assert v.signature == CPU_PEGGED, v.reasons
    assert any(re.search(r"the loop turned 4[45]\d times in 9 s \(50/s", r) for r in v.reasons), v.reasons
    assert any("counter saw it turn meanwhile" in r for r in v.reasons) and "loop turns is work" in v.reasons[-1]
    # The same samples without a counter are a busy loop, and the verdict says the proof's error.
    v = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW, seen=Seen(loop=loop, mono=12.0))
    assert v.signature == BUSY_LOOP and any(f"{miss_probability(3 * SPIN_PER_BURST):.2g}" in r for r in v.reasons)


def test_the_counter_is_the_exact_stall_for_loop_frozen_and_vetoes_other_witnesses() -> None:
    snaps = snaps_for(PID, 0.0, seconds=80)
    frozen = turn_findings(turns_seen(70.0, 80.0), snaps)
    v = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW, seen=Seen(turns=frozen, mono=80.0))
    assert v.signature == LOOP_FROZEN and v.witnesses == ("counter",) and v.starvation_proven
    # At least 69 s: the timer stamped 70 s ago, and a loop that turned after would have run it by 69.
    assert any("has not turned for 69 s" in r for r in v.reasons), v.reasons
    restart = policy.Rules(60, 5, 0.5, 600, 900, "alert", frozen_action="restart")
    assert policy.decide(v, 0, restart).kind == policy.RESTART  # exact: no second witness needed
    # A stale heartbeat with a counter that turns a second ago: not frozen.
    turning = turn_findings(turns_seen(0.5, 80.0), snaps)
    h = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW,
              seen=Seen(turns=turning, heartbeat=STALE, mono=80.0))
    assert h.signature == HEALTHY and any("not frozen: the loop turned" in r for r in h.reasons), h.reasons


def test_without_a_counter_the_stack_proof_needs_enough_samples_or_a_silent_socket() -> None:
    snaps = snaps_for(PID, 1.0)
    few = findings([burst(1.0 + i * 3.2, raw((SPINNING, 300)), rate=100) for i in range(3)], snaps)
    assert few.stretch is not None and few.stretch.seconds >= TH.proof
    v = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW, seen=Seen(loop=few, mono=12.0))
    assert v.signature == CPU_PEGGED
    assert any(f"900 of the {PROOF_SAMPLES} independent samples" in r for r in v.reasons), v.reasons
    assert any(f"probability {miss_probability(900):.2g}" in r for r in v.reasons), v.reasons
    # A loop-tick probe in the stretch that stayed silent is the second witness the samples need.
    silent = TickProbe(9.0, False, "silent")
    t = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW, seen=Seen(loop=few, tick=silent, mono=12.0))
    assert t.signature == BUSY_LOOP


def test_samples_taken_while_the_loop_thread_waits_for_a_cpu_do_not_count() -> None:
    """On a loaded machine the thread wants a core and runs 30 % of the time: a sample taken while it
    waits shows where it was preempted, again. Enough raw samples, too few independent ones."""
    snaps, t = [], 0.0
    while t <= 12.0:
        snaps.append(CpuSnapshot(t, t * 0.3, (ThreadTimes(PID, t * 0.3, int(t * 0.3e9), int(t * 0.7e9)),)))
        t += 1.0
    loop = findings(spin_bursts(3, start=1.0), snaps)
    assert loop.loop_demand is not None and loop.loop_demand > 0.9 and loop.loop_on_cpu is not None
    v = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW, seen=Seen(loop=loop, mono=12.0))
    assert v.signature != BUSY_LOOP
    assert any(f"{int(3 * SPIN_PER_BURST * 0.3)} of the {PROOF_SAMPLES} independent" in r for r in v.reasons), v.reasons


def test_the_proof_size_meets_its_error_bound() -> None:
    assert miss_probability(PROOF_SAMPLES) <= 0.001 < miss_probability(PROOF_SAMPLES - 1)
    assert miss_probability(895) > 0.5  # the false proof: 895 samples proved nothing


@pytest.mark.parametrize("stall", [0.0, 2.0])
def test_a_short_stall_is_no_proof(stall: float) -> None:
    snaps = snaps_for(PID, 1.0)
    found = turn_findings(turns_seen(stall, 12.0), snaps)
    assert found is not None and not found.starved(TH.cpu)


def test_the_counter_lives_only_in_the_armed_thread() -> None:
    # In this (unarmed) interpreter nothing is wrapped: _count refuses every loop.
    assert counter._count(object()) is None
    seen: list[object] = []
    t = threading.Thread(target=lambda: seen.append(counter._count(object())))
    t.start()
    t.join()
    assert seen == [None]


# ---------------------------------------------------------------- the tick's judge step (judge/window.py)
def _window(snaps: list, turns: list, bursts: tuple = (), heartbeat: HeartbeatSeen | None = None) -> WindowReadings:
    return WindowReadings(tuple(snaps), tuple(snaps), (state(qqbot="connected"),), bursts, tuple(turns), heartbeat,
                          None, None, None, None, age=100.0, mono=12.0, now=NOW)


def test_the_tick_judges_the_window_and_plans_the_next_bursts() -> None:
    still = judge_window(_window(snaps_for(PID, 1.0), turns_seen(TH.proof + 1, 12.0)), TH)
    assert still.verdict.signature == BUSY_LOOP and still.suspect and still.dense_rate == RATE
    turning = judge_window(_window(snaps_for(PID, 0.0), turns_seen(0.5, 12.0)), TH)
    assert turning.verdict.signature == HEALTHY and not turning.suspect and turning.dense_rate == RATE
    # No counter: the dense samples are the proof, at the proof's rate; a stale beat is suspect alone.
    stale = judge_window(_window(snaps_for(PID, 0.0), [], heartbeat=HeartbeatSeen(age=90.0, stale_after=60.0)), TH)
    assert stale.suspect and stale.dense_rate == UNCOUNTED_RATE


def test_a_gone_gateway_is_judged_by_the_judge() -> None:
    v = gone("its death was not clean", True, "gateway.pid: PID 7 has exited")
    assert v.signature == "gateway-gone" and v.reasons == (
        "its death was not clean", "the state file says running, but gateway.pid: PID 7 has exited")
    assert gone(None, False, "x").reasons == ()
