"""The event loop judged from its stack samples, as plain data: parsing, classification, stretches, and
the verdicts and actions they lead to. No processes, no clock."""

from __future__ import annotations

import json

from hermes_watchdog.config import parse_size
from hermes_watchdog.facts.cpu import CpuSnapshot, ThreadTimes
from hermes_watchdog.facts.loop_samples import CALLBACK, SELECTOR, TURNING, Burst, classify, kind_of
from hermes_watchdog.facts.plan import SamplingPlan
from hermes_watchdog.facts.readings import HeartbeatSeen, TickProbe, Upstream
from hermes_watchdog.facts.stacks import Frame
from hermes_watchdog.judge import policy
from hermes_watchdog.judge.families import recognise
from hermes_watchdog.judge.loop import findings, stretch
from hermes_watchdog.judge.proof import PROOF_SAMPLES
from hermes_watchdog.judge.signatures import judge
from hermes_watchdog.judge.verdict import (
    BUSY_LOOP,
    BY_CPU_STATE,
    BY_STACK,
    CPU_PEGGED,
    HEALTHY,
    LOOP_FROZEN,
    MEMORY_HIGH,
    STARTUP_HANG,
    Memory,
    Seen,
    StateSeen,
    Thresholds,
)
from hermes_watchdog.observe.pyspy_record import parse_raw
from hermes_watchdog.observe.statefile import parse_state
from hermes_watchdog.observe.upstream import parse_starts

NOW = 1_800_000_000.0
TH = Thresholds()
PID = 100

LOOP_BASE = ("thread (100): MainThread;<module> (main.py:9);run (asyncio/runners.py:190);"
             "Runner.run (asyncio/runners.py:118);BaseEventLoop.run_until_complete (asyncio/base_events.py:640);"
             "BaseEventLoop.run_forever (asyncio/base_events.py:607);"
             "BaseEventLoop._run_once (asyncio/base_events.py:1922)")
IN_SELECTOR = LOOP_BASE + ";EpollSelector.select (selectors.py:468)"
IN_BOOKKEEPING = LOOP_BASE + ";BaseEventLoop.time (asyncio/base_events.py:707)"
SPINNING = LOOP_BASE + ";Handle._run (asyncio/events.py:80);_reconcile_presence (app/sync.py:257)"
BLOCKED = (LOOP_BASE + ";Handle._run (asyncio/events.py:80);_settle_accounts (app/ledger.py:30);"
           "_flush_ledger_sync (app/ledger.py:12)")
WORKER = "thread (101): agent-worker;run (threading.py:982);crunch (agent/work.py:10)"


def raw(*lines: tuple[str, int]) -> list[str]:
    return [f"{stack} {count}" for stack, count in lines]


def burst(start: float, lines: list[str], seconds: float = 3.0, rate: float = 25) -> Burst:
    # 25 samples a second here: the arithmetic in these tests stays small; the rules scale with the rate.
    return classify(parse_raw(lines), start, start + seconds, "py-spy record", PID, rate=rate)


# A spin is proven by samples only once they are enough to have seen a loop turning every 50 ms
# (judge/proof.py: PROOF_SAMPLES): three 3 s bursts of a third of that each.
SPIN_PER_BURST = -(-PROOF_SAMPLES // 3)


def test_parse_raw_reads_thread_ids_names_and_frames_innermost_first() -> None:
    [s] = parse_raw([SPINNING + " 7"])
    assert s.tid == 100 and s.thread_name == "MainThread" and s.count == 7
    assert s.frames[0] == Frame("_reconcile_presence", "app/sync.py", 257)
    assert s.frames[-1].function == "<module>"
    hexed = parse_raw(["thread (0x1F): worker;f (a.py:1) 2"])
    assert hexed[0].tid == 31
    assert parse_raw(["garbage", "", "no count here"]) == []


def test_samples_are_classified_by_what_run_once_called() -> None:
    def kind(line: str) -> str | None:
        return kind_of(parse_raw([line + " 1"])[0].frames)

    assert kind(IN_SELECTOR) == SELECTOR
    assert kind(IN_BOOKKEEPING) == TURNING
    assert kind(LOOP_BASE) == TURNING
    assert kind(SPINNING) == CALLBACK
    assert kind(BLOCKED) == CALLBACK
    assert kind(WORKER) is None


def test_the_loop_thread_is_found_by_structure_not_by_name() -> None:
    b = burst(0, raw((WORKER, 75), (SPINNING.replace("MainThread", "anything"), 70), (IN_BOOKKEEPING, 5)))
    assert b.loop_found and b.tid == PID and b.samples == 75 and b.callback == 70 and b.turning == 5
    assert b.turned
    assert b.innermost[0][0].function == "_reconcile_presence"
    none = burst(0, raw((WORKER, 75)))
    assert not none.loop_found and not none.usable


def spin_bursts(n: int, start: float = 0.0, gap: float = 0.2) -> list[Burst]:
    out, t = [], start
    for _ in range(n):
        out.append(burst(t, raw((SPINNING, SPIN_PER_BURST)), rate=SPIN_PER_BURST / 3))
        t += 3.0 + gap
    return out


def test_a_stretch_needs_dense_bursts_back_to_back() -> None:
    st, turned = stretch(spin_bursts(3))
    assert st is not None and turned is None
    assert st.bursts == 3 and abs(st.seconds - 9.4) < 1e-6 and st.samples == 3 * SPIN_PER_BURST
    # A gap longer than MAX_GAP breaks the stretch: no proof across a hole.
    holes = spin_bursts(2) + spin_bursts(2, start=20.0)
    st, _ = stretch(holes)
    assert st is not None and st.bursts == 2 and st.since == 20.0


def test_one_selector_sample_ends_the_stretch() -> None:
    bursts = [*spin_bursts(2), burst(6.4, raw((SPINNING, 74), (IN_SELECTOR, 1))), *spin_bursts(1, start=9.6)]
    st, turned = stretch(bursts)
    assert turned is not None and turned.selector == 1
    assert st is not None and st.bursts == 1 and st.since == 9.6


def test_a_bursty_loop_is_never_starved_for_the_proof_window() -> None:
    """4 s busy, 0.5 s idle: at 25 Hz each idle visit gives ~12 selector samples, and any 8 s stretch of
    back-to-back 3 s bursts contains a visit."""
    samples_at = [i / 25 for i in range(60 * 25)]
    bursts, t = [], 0.0
    while t + 3 <= 60:
        lines: dict[str, int] = {}
        for at in samples_at:
            if t <= at < t + 3:
                key = IN_SELECTOR if at % 4.5 >= 4.0 else SPINNING
                lines[key] = lines.get(key, 0) + 1
        bursts.append(burst(t, raw(*lines.items())))
        t += 3.2
        st, _ = stretch(bursts)
        assert st is None or st.seconds < TH.proof


def test_low_coverage_bursts_do_not_count() -> None:
    thin = burst(0, raw((SPINNING, 12)), seconds=3.0)  # 12 of 75 expected samples: py-spy was starved
    assert not thin.usable
    assert stretch([thin])[0] is None


def snaps_for(tid: int, demand: float, seconds: float = 12.0, step: float = 1.0) -> list[CpuSnapshot]:
    out, t = [], 0.0
    while t <= seconds + 1e-9:
        ns = int(t * demand * 1e9)
        out.append(CpuSnapshot(t, t * demand, (ThreadTimes(tid, t * demand, ns, 0),), rss=100 << 20))
        t += step
    return out


def cpu_over(snaps: list[CpuSnapshot]):  # type: ignore[no-untyped-def]
    from hermes_watchdog.judge.cpu import usage

    return usage(snaps)


def state(gw: str = "running", **platforms: str) -> StateSeen:
    data = {"pid": PID, "gateway_state": gw, "platforms": {k: {"state": v} for k, v in platforms.items()}}
    return StateSeen(parse_state("s", json.dumps(data).encode()), True)


def test_busy_loop_is_proven_by_demand_and_the_stack_with_every_platform_connected() -> None:
    snaps = snaps_for(PID, 1.0)
    loop = findings(spin_bursts(3, start=1.0), snaps)
    v = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW, seen=Seen(loop=loop, mono=12.0))
    assert v.signature == BUSY_LOOP and v.proof == BY_STACK and v.starvation_proven
    assert v.blocking is not None and "_reconcile_presence" in v.blocking
    assert policy.decide(v, 0, RULES).kind == policy.RESTART  # no 60 s window: the stack proved it


def test_a_short_stretch_is_pending_not_a_restart() -> None:
    snaps = snaps_for(PID, 1.0, seconds=4)
    loop = findings(spin_bursts(1, start=0.5), snaps)
    v = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW, seen=Seen(loop=loop, mono=4.0))
    assert v.signature == CPU_PEGGED and any("suspect" in r for r in v.reasons)
    assert policy.decide(v, 4, RULES).kind == policy.WAIT


def test_a_loop_seen_in_its_selector_vetoes_the_old_cpu_and_state_rule() -> None:
    snaps = snaps_for(PID, 1.0)
    loop = findings([burst(8.0, raw((SPINNING, 60), (IN_SELECTOR, 15)))], snaps)
    v = judge(cpu_over(snaps), [state(qqbot="disconnected")] * 3, None, TH, NOW, seen=Seen(loop=loop, mono=12.0))
    assert v.signature == CPU_PEGGED
    assert any("reached its selector" in r for r in v.reasons)
    # Without stack evidence the old rule still holds, with its full window.
    old = judge(cpu_over(snaps), [state(qqbot="disconnected")] * 3, None, TH, NOW)
    assert old.signature == BUSY_LOOP and old.proof == BY_CPU_STATE


def test_legitimate_worker_thread_cpu_is_not_a_busy_loop() -> None:
    snaps = snaps_for(101, 1.0)  # the worker wants the CPU; the loop thread waits in its selector
    loop = findings([burst(8.0, raw((WORKER, 75), (IN_SELECTOR, 75)))], snaps)
    v = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW, seen=Seen(loop=loop, mono=12.0))
    assert v.signature == CPU_PEGGED


def blocked_bursts(seconds: float, start: float = 0.0) -> list[Burst]:
    out, t = [], start
    while t + 3 <= start + seconds:
        out.append(burst(t, raw((BLOCKED, SPIN_PER_BURST)), rate=SPIN_PER_BURST / 3))
        t += 3.2
    return out


STALE, FRESH = HeartbeatSeen(90, 60), HeartbeatSeen(5, 60)
SILENT, ANSWERED = TickProbe(70.0, False, "silent"), TickProbe(70.0, True, "answered")
RULES = policy.Rules(60, 5, 0.5, 600, 900, "alert")
RESTART_RULES = policy.Rules(60, 5, 0.5, 600, 900, "alert", frozen_action="restart")


def test_a_blocked_loop_is_loop_frozen_naming_the_call() -> None:
    snaps = snaps_for(PID, 0.0, seconds=70)
    loop = findings(blocked_bursts(66), snaps)
    v = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW, seen=Seen(loop=loop, mono=70.0))
    assert v.signature == LOOP_FROZEN and v.witnesses == ("stack",)
    assert v.blocking is not None and "_flush_ledger_sync" in v.blocking
    assert policy.decide(v, 0, RULES).kind == policy.ALERT
    assert policy.decide(v, 0, RESTART_RULES).kind == policy.ALERT  # one witness
    two = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW,
                seen=Seen(loop=loop, heartbeat=STALE, tick=SILENT, mono=70.0))
    assert two.witnesses == ("stack", "heartbeat", "loop-tick")
    assert policy.decide(two, 0, RESTART_RULES).kind == policy.RESTART


def test_a_spin_is_not_frozen_and_a_frozen_stretch_needs_the_cpu_idle() -> None:
    snaps = snaps_for(PID, 1.0, seconds=70)
    loop = findings(blocked_bursts(66), snaps)  # the same frame every time, but wanting a whole core
    v = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW, seen=Seen(loop=loop, mono=70.0))
    assert v.signature == BUSY_LOOP


def snaps_split(tid: int, on_cpu: float, waiting: float, seconds: float = 70.0) -> list[CpuSnapshot]:
    """CPU samples of one thread that runs ``on_cpu`` and waits on a run queue ``waiting`` (cores), beside a
    heartbeat thread that runs a little (so the run-queue figures are trusted: judge/cpu.schedstat_usable)."""
    return [CpuSnapshot(float(t), t * (on_cpu + 0.01), (
        ThreadTimes(tid, t * on_cpu, int(t * on_cpu * 1e9), int(t * waiting * 1e9)),
        ThreadTimes(tid + 7, t * 0.01, int(t * 0.01 * 1e9), 0)))
            for t in range(int(seconds) + 1)]


def test_run_queue_wait_without_cpu_time_is_no_demand() -> None:
    # A loop asleep in one call (never on a CPU) booked run-queue wait it never had (a full CI run saw 0.43
    # core: ptrace stops wake a sleeper): it is frozen, not a spin, and its demand is the CPU it got.
    snaps = snaps_split(PID, 0.0, 0.95)
    loop = findings(blocked_bursts(66), snaps)
    assert loop.loop_demand == 0.0
    v = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW, seen=Seen(loop=loop, mono=70.0))
    assert v.signature == LOOP_FROZEN and v.witnesses == ("stack",), v.reasons


def test_a_spin_that_gets_little_cpu_on_a_crowded_machine_still_wants_a_core() -> None:
    snaps = snaps_split(PID, 0.05, 0.93)  # 1/20 of a core: 20 runnable threads per core
    loop = findings(blocked_bursts(66), snaps)
    assert loop.loop_demand is not None and loop.loop_demand >= TH.cpu
    # The loop-tick socket's silence stands in for the samples a thread on 1/20 of a core cannot give.
    v = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW,
              seen=Seen(loop=loop, tick=SILENT, mono=70.0))
    assert v.signature == BUSY_LOOP, v.reasons


def test_a_spin_that_shares_the_gil_with_other_threads_is_a_busy_loop() -> None:
    # 0.6 core on the CPU, nothing on the run queue: the rest of the time it waits for the GIL (sleep to the
    # scheduler) while a heartbeat thread or a worker runs Python. Never in its selector: still a spin.
    snaps = snaps_split(PID, 0.6, 0.0)
    loop = findings(blocked_bursts(66), snaps)
    v = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW,
              seen=Seen(loop=loop, tick=SILENT, mono=70.0))
    assert v.signature == BUSY_LOOP, v.reasons
    # Under half the threshold it is a loop off the CPU: frozen, not a spin.
    off = snaps_split(PID, 0.3, 0.0)
    frozen = judge(cpu_over(off), [state(qqbot="connected")], None, TH, NOW,
                   seen=Seen(loop=findings(blocked_bursts(66), off), tick=SILENT, mono=70.0))
    assert frozen.signature == LOOP_FROZEN, frozen.reasons


def test_failing_heartbeat_writes_are_vetoed_by_the_loop_in_its_selector() -> None:
    snaps = snaps_for(PID, 0.0, seconds=70)
    loop = findings([burst(60.0, raw((IN_SELECTOR, 75)))], snaps)
    v = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW,
              seen=Seen(loop=loop, heartbeat=STALE, mono=70.0))
    assert v.signature == HEALTHY
    assert any("seen turning after it went stale" in r for r in v.reasons), v.reasons
    # A byte from the loop-tick socket vetoes as well.
    t = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW,
              seen=Seen(heartbeat=STALE, tick=ANSWERED, mono=70.0))
    assert t.signature == HEALTHY
    # Heartbeat and a silent socket, no stack: two witnesses agree.
    both = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW,
                 seen=Seen(heartbeat=STALE, tick=SILENT, mono=70.0))
    assert both.signature == LOOP_FROZEN and len(both.witnesses) == 2


def test_memory_high_needs_every_sample_above_the_limit() -> None:
    th = Thresholds(memory_limit=parse_size("400MiB"))
    snaps = snaps_for(PID, 0.0, seconds=60)
    over = Memory(tuple((s.at, (500 << 20) + int(s.at) * (1 << 20)) for s in snaps))
    v = judge(cpu_over(snaps), [state(qqbot="connected")], None, th, NOW, seen=Seen(memory=over))
    assert v.signature == MEMORY_HIGH and v.rss == (560 << 20)
    assert any("MiB/h" in r or "GiB/h" in r for r in v.reasons)
    assert policy.decide(v, 60, RULES).kind == policy.RESTART
    alert = policy.Rules(**{**RULES.__dict__, "memory_action": "alert"})
    assert policy.decide(v, 60, alert).kind == policy.ALERT
    dipped = Memory(((0.0, 500 << 20), (30.0, 300 << 20), (60.0, 500 << 20)))
    assert judge(cpu_over(snaps), [state(qqbot="connected")], None, th, NOW,
                 seen=Seen(memory=dipped)).signature == HEALTHY
    assert judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW,
                 seen=Seen(memory=over)).signature == HEALTHY  # no limit set: no verdict


def test_startup_hang() -> None:
    snaps = snaps_for(PID, 0.0, seconds=10)
    starting = [state("starting")] * 2
    assert judge(cpu_over(snaps), starting, None, TH, NOW, seen=Seen(age=30)).signature == HEALTHY
    v = judge(cpu_over(snaps), starting, None, TH, NOW, seen=Seen(age=400))
    assert v.signature == STARTUP_HANG and policy.decide(v, 0, RULES).kind == policy.ALERT
    missing = [StateSeen(parse_state("s", None), False)] * 2
    assert judge(cpu_over(snaps), missing, None, TH, NOW, seen=Seen(age=400)).signature == STARTUP_HANG


def test_upstream_handling_turns_a_restart_into_an_alert() -> None:
    snaps = snaps_for(PID, 1.0)
    loop = findings(spin_bursts(3, start=1.0), snaps)
    data = {"pid": PID, "gateway_state": "degraded", "exit_reason": "loop_liveness_watchdog",
            "restart_requested": True, "platforms": {}}
    degraded = StateSeen(parse_state("s", json.dumps(data).encode()), True)
    v = judge(cpu_over(snaps), [degraded], None, TH, NOW, seen=Seen(loop=loop, mono=12.0))
    assert v.signature == BUSY_LOOP and v.upstream and "own watchdog" in v.upstream
    a = policy.decide(v, 0, RULES)
    assert a.kind == policy.ALERT and "not restarting" in a.why
    storm = Upstream(starts=tuple(NOW - i * 10 for i in range(7)))
    s = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW, seen=Seen(loop=loop, upstream=storm,
                                                                                     mono=12.0))
    assert s.upstream and "respawn storm" in s.upstream and policy.decide(s, 0, RULES).kind == policy.ALERT


def test_parse_starts_and_sizes() -> None:
    assert parse_starts(b"1.5\n\ngarbage\n2e9\n" + b"9" * 100 + b"\n") == (1.5, 2e9)
    assert parse_size("2GiB") == 2 << 30 and parse_size("400MiB") == 400 << 20 and parse_size("1.5GB") == 1_500_000_000
    assert parse_size("12") == 12
    for bad in ("", "GiB", "-1GiB", "2 parsecs", "0"):
        assert parse_size(bad) is None


def test_sampling_plan_is_dense_only_while_suspect() -> None:
    plan = SamplingPlan(background=60.0)
    assert plan.due(0.0) == plan.background_burst  # the first look
    assert plan.due(30.0, last_start=0.0) is None
    assert plan.due(61.0, last_start=0.0) == plan.background_burst
    calm = plan
    plan = plan.noted(61.0, suspect=True)
    assert plan.due(62.0, last_start=61.0) == plan.dense_burst
    assert not calm.dense(62.0)  # a value: the plan another thread holds never changes under it
    assert not plan.dense(61.0 + plan.calm_after + 1)
    assert plan.due(61.0 + plan.calm_after + 1, last_start=62.0) is None  # calm: the next background burst is 60 s on
    assert plan.due(62.0 + plan.background, last_start=62.0) == plan.background_burst


YIELDING = LOOP_BASE + ";Handle._run (asyncio/events.py:80);work (app/jobs.py:20);sleep (asyncio/tasks.py:640)"
BETWEEN = LOOP_BASE + ";Handle._run (asyncio/events.py:80)"
OTHER_TASK = LOOP_BASE + ";Handle._run (asyncio/events.py:80);other_job (app/jobs.py:50)"


def test_a_task_suspending_or_resuming_in_asyncio_is_the_loop_turning() -> None:
    def kind(line: str) -> str | None:
        return kind_of(parse_raw([line + " 1"])[0].frames)

    assert kind(YIELDING) == TURNING
    assert kind(BETWEEN) == TURNING


def test_many_tasks_taking_turns_are_not_one_starved_callback() -> None:
    """A loop turning hundreds of times a second between short steps of several tasks: 25 Hz may never
    catch it in its selector, but it never ran one callback it did not get back from."""
    snaps = snaps_for(PID, 1.0)
    bursts = [burst(1.0 + i * 3.2, raw((SPINNING, 40), (OTHER_TASK, 35))) for i in range(3)]
    loop = findings(bursts, snaps)
    assert loop.stretch is not None and not loop.stretch.one_callback
    v = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW, seen=Seen(loop=loop, mono=12.0))
    assert v.signature == CPU_PEGGED


def test_a_heartbeat_or_socket_byte_during_the_stretch_vetoes_a_busy_loop() -> None:
    snaps = snaps_for(PID, 1.0)
    loop = findings(spin_bursts(3, start=1.0), snaps)
    written_during = HeartbeatSeen(age=3.0, stale_after=60.0)  # written at mono 9, after the stretch began
    # A heartbeat vetoes only where the loop writes it, in a recognised release (0.19.0 here).
    r019 = recognise((0, 19, 0), "test", frozenset({"pid", "updated_at"}), False, False)
    v = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW,
              seen=Seen(loop=loop, heartbeat=written_during, mono=12.0, release=r019))
    assert v.signature == CPU_PEGGED
    t = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW,
              seen=Seen(loop=loop, tick=TickProbe(8.0, True, "answered"), mono=12.0))
    assert t.signature == CPU_PEGGED
    before = HeartbeatSeen(age=30.0, stale_after=60.0)  # written before the spin: no veto
    assert judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW,
                 seen=Seen(loop=loop, heartbeat=before, mono=12.0, release=r019)).signature == BUSY_LOOP
    # The same beat from a release not recognised is no veto: the stack and the demand decide.
    assert judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW,
                 seen=Seen(loop=loop, heartbeat=written_during, mono=12.0)).signature == BUSY_LOOP


def test_stack_every_zero_samples_only_while_suspect_and_failures_back_off() -> None:
    plan = SamplingPlan(background=0.0)
    assert plan.due(0.0) is None and plan.due(1000.0) is None
    plan = plan.noted(5.0, suspect=True)
    assert plan.due(6.0) == plan.dense_burst
    assert plan.due(7.0, backoff_until=40.0) is None and plan.dense(7.0)  # still suspect: the probe goes on
    assert plan.due(41.0, backoff_until=40.0) is None  # calm again, and no background sampling


def test_a_refused_loop_tick_socket_says_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import socket

    from hermes_watchdog.observe import looptick

    path = looptick.socket_path(tmp_path, 4242)
    path.parent.mkdir()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))  # bound, never listening: connect is refused, as after the server closed
    try:
        assert looptick.probe(tmp_path, 4242, os.getuid(), tries=1, timeout=0.2) is None
        s.listen(1)  # listening, never answering: silence, as a frozen loop gives
        got = looptick.probe(tmp_path, 4242, os.getuid(), tries=2, timeout=0.2, pause=0.0)
        assert got is not None and not got.answered
    finally:
        s.close()


def test_one_callback_is_judged_by_function_not_line() -> None:
    """A spinning coroutine runs through several lines of its body: still one callback."""
    other_line = SPINNING.replace("app/sync.py:257", "app/sync.py:256")
    snaps = snaps_for(PID, 1.0)
    bursts = [burst(1.0 + i * 3.2, raw((SPINNING, SPIN_PER_BURST - 900), (other_line, 900)), rate=SPIN_PER_BURST / 3)
              for i in range(3)]
    loop = findings(bursts, snaps)
    assert loop.stretch is not None and loop.stretch.one_callback
    v = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW, seen=Seen(loop=loop, mono=12.0))
    assert v.signature == BUSY_LOOP and v.proof == BY_STACK


def test_the_plan_starts_at_the_proof_rate() -> None:
    """Until the loop-turn counter is read, dense bursts are the proof: at judge/proof.py's rate."""
    from hermes_watchdog.judge.proof import UNCOUNTED_RATE

    assert SamplingPlan().dense_rate == UNCOUNTED_RATE
