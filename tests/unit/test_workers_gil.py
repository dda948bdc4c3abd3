"""workers-saturated and gil-held on plain data: the reductions of an all-thread dump (facts/threads.py),
the rules (judge/workers.py, judge/gil.py), their place among the loop rules, the dump schedule and the
policy. No process."""

from __future__ import annotations

from dataclasses import replace

from hermes_watchdog.facts.deaf import DeafSeen, DeafThresholds
from hermes_watchdog.facts.stacks import Dump, Frame, ThreadStack
from hermes_watchdog.facts.threads import GilSample, agent_pool, gil_sample, workers_sample
from hermes_watchdog.judge import gil, policy, workers
from hermes_watchdog.judge.deaf import WORKERS_SATURATED
from hermes_watchdog.judge.loop import LoopFindings
from hermes_watchdog.judge.signatures import judge
from hermes_watchdog.judge.verdict import GIL_HELD, HEALTHY, LOOP_FROZEN, Seen
from hermes_watchdog.observe.thread_dumps import DumpSchedule, agents_gate
from tests.unit.test_heartbeat import R019, STALE
from tests.unit.test_signatures import NOW, TH, cpu, state

POOL = "/usr/lib/python3.11/concurrent/futures/thread.py"
IDLE = (Frame("_worker", POOL, 81), Frame("Thread.run", "/usr/lib/python3.11/threading.py", 982))
LOOP = (Frame("EpollSelector.select", "/usr/lib/python3.11/selectors.py", 468),
        Frame("BaseEventLoop._run_once", "/usr/lib/python3.11/asyncio/base_events.py", 1884),
        Frame("BaseEventLoop.run_forever", "/usr/lib/python3.11/asyncio/base_events.py", 607))
CALL = Frame("_run_conversation", "/srv/hermes/run_agent.py", 4100)
REGEX = Frame("fullmatch", "/usr/lib/python3.11/re/__init__.py", 171)


def worker(n: int, busy: bool, prefix: str | None = "hermes-gateway", gil: bool = False,
           top: Frame = CALL) -> ThreadStack:
    frames = ((top, Frame("_WorkItem.run", POOL, 58), *IDLE) if busy else IDLE)
    return ThreadStack(1000 + n, f"{prefix}_{n}" if prefix else None, gil, gil, frames)


def loop_thread(has_gil: bool = False) -> ThreadStack:
    return ThreadStack(999, "MainThread", has_gil, has_gil, LOOP)


def dump(busy: int, threads: int = 10, prefix: str | None = "hermes-gateway", **kw: object) -> Dump:
    return Dump((loop_thread(), *(worker(i, i < busy, prefix, **kw) for i in range(threads))))  # type: ignore[arg-type]


def test_the_agent_pool_and_what_makes_it_full() -> None:
    p = agent_pool(dump(10))
    assert p is not None and p.prefix == "hermes-gateway" and p.threads == 10 and p.all_busy and p.maximum == 10
    assert p.busy[0] == ("hermes-gateway_0", str(CALL))
    # Full: every thread busy and the pool at its maximum, or more turns counted than threads serving them.
    assert workers_sample(dump(10), 0.0, 10).full and "maximum of 10" in (workers_sample(dump(10), 0, 10).full or "")
    assert "12 agent turns" in (workers_sample(dump(4, threads=4), 0.0, 12).full or "")
    # Room left: a thread idle, or a pool under its maximum with nothing waiting (a new turn gets a thread).
    assert workers_sample(dump(9), 0.0, 9).full is None
    assert workers_sample(dump(4, threads=4), 0.0, 4).full is None
    assert workers_sample(Dump((loop_thread(),)), 0.0, 3).pool is None
    # asyncio's default executor (0.14.0): its maximum from the CPUs; a pool of Hermes' own is preferred.
    a = agent_pool(dump(5, threads=5, prefix="asyncio"), cpus=1)
    assert a is not None and a.maximum == 5 and a.all_busy
    both = Dump((*dump(2, threads=3, prefix="asyncio").threads, *dump(1, threads=2).threads[1:]))
    assert (agent_pool(both) or a).prefix == "hermes-gateway"
    # The hook's dumps carry no names: every pool thread counts as one pool, its maximum unknown.
    u = agent_pool(dump(3, threads=3, prefix=None))
    assert u is not None and u.prefix is None and u.maximum is None and u.all_busy
    # A busy call in the standard library is named with the code that made it.
    wait = Frame("Condition.wait", "/usr/lib/python3.11/threading.py", 331)
    t = worker(0, True)
    p2 = agent_pool(Dump((replace(t, frames=(wait, *t.frames)),)))
    assert p2 is not None and p2.busy[0][1] == f"{CALL} -> {wait}"


TH_W = DeafThresholds(workers_busy_after=120)


def samples(*spec: tuple[float, int, int | None]) -> list:
    return [workers_sample(dump(busy), at, agents) for at, busy, agents in spec]


def test_workers_saturated_needs_the_whole_stretch_full() -> None:
    full = samples((0, 10, 10), (40, 10, 11), (80, 10, 12), (120, 10, 12))
    f = workers.rule(full, TH_W)
    assert f is not None and f.signature == WORKERS_SATURATED
    assert f.evidence["seconds"] == 120 and f.evidence["dumps"] == 4 and f.evidence["busy"] == 10
    assert "12 agent turns" in f.evidence["full"] and any("_run_conversation" in r for r in f.reasons)
    assert workers.rule(full[:3], TH_W) is None  # 80 s only
    # A dump with a worker free breaks the stretch; a failed dump does not.
    broken = samples((0, 10, 10), (40, 9, 9), (80, 10, 10), (120, 10, 10))
    assert workers.rule(broken, TH_W) is None
    failed = [*full[:2], workers_sample(None, 60, 10, "py-spy did not answer"), *full[2:]]
    assert workers.rule(failed, TH_W) is not None
    assert workers.rule([], TH_W) is None and workers.rule(full[-1:], TH_W) is None


def test_workers_saturated_is_judged_only_for_a_loop_that_turns_and_alerts_by_default() -> None:
    full = tuple(samples((0, 10, 12), (60, 10, 12), (120, 10, 12), (180, 10, 12)))
    v = judge(cpu(0.01), [state(qqbot="connected")], None, TH, NOW, seen=Seen(deaf=DeafSeen(workers=full)))
    assert v.signature == WORKERS_SATURATED, v
    rules = policy.Rules(60, 5, 0.5, 600, 900, "alert")
    assert policy.decide(v, 0.0, rules).kind == policy.ALERT
    assert policy.decide(v, 0.0, replace(rules, deaf_action="restart")).kind == policy.RESTART
    # A stale heartbeat (the loop does not turn) is the loop's verdict, not the workers'.
    frozen = judge(cpu(0.01), [state(qqbot="connected")], None, TH, NOW, heartbeat=STALE,
                   seen=replace(R019, deaf=DeafSeen(workers=full)))
    assert frozen.signature == LOOP_FROZEN


def gs(at: float, holder: int | None = 1001, call: str = str(REGEX), loop_gil: bool = False) -> GilSample:
    return GilSample(at, 999, loop_gil, None if holder is None else (holder, f"hermes-gateway_{holder}", call))


def test_gil_story_is_one_holder_in_one_call_dump_after_dump() -> None:
    s = gil.story([gs(100), gs(102), gs(104)], now=105, fresh=15)
    assert s is not None and s.since == 100 and s.dumps == 3 and s.name == "hermes-gateway_1001"
    assert "fullmatch" in s.describe()
    assert gil.story([gs(100), gs(102)], now=105, fresh=15) is None  # too few
    assert gil.story([gs(100), gs(102), gs(104)], now=130, fresh=15) is None  # not fresh
    assert gil.story([gs(100), gs(102, holder=1002), gs(104), gs(106)], now=107, fresh=15) is None  # another thread
    assert gil.story([gs(100), gs(102, call="other"), gs(104), gs(106)], now=107, fresh=15) is None
    assert gil.story([gs(100), gs(102), gs(104, holder=None, loop_gil=True), gs(106)], now=107, fresh=15) is None
    assert gil.story([gs(80), gs(82), gs(100), gs(102)], now=103, fresh=15) is None  # a gap: two runs
    # The kernel's count of the loop thread's wake-ups: ~200/s waiting for the GIL; an idle loop, a few.
    run = [gs(100), gs(102), gs(104)]
    waiting = [(t, 1000 + 200 * (t - 99)) for t in range(99, 106)]
    s2 = gil.story(run, now=105, fresh=15, wakes=waiting)
    assert s2 is not None and s2.wakes == 200 and "woke 200 times a second" in s2.describe()
    assert gil.story(run, now=105, fresh=15, wakes=[(t, 1000 + 3 * t) for t in range(99, 106)]) is None
    assert gil.story(run, now=105, fresh=15, wakes=waiting[:1]) is not None  # not counted: the dumps decide
    # From a real dump: the holder is a thread other than the loop's, marked by py-spy.
    d = Dump((loop_thread(), worker(0, True, gil=True, top=REGEX), worker(1, False)))
    g = gil_sample(d, 5.0)
    assert g is not None and g.holder is not None and g.holder[1] == "hermes-gateway_0" and not g.loop_has_gil
    assert gil_sample(Dump((loop_thread(True), worker(0, True))), 5.0) == GilSample(5.0, 999, True, None)
    assert gil_sample(Dump((loop_thread(), worker(0, True))), 5.0) is None  # nobody marked: cannot say


def test_gil_held_turns_selector_samples_into_a_wait_for_the_gil() -> None:
    """The loop thread's stack is in its selector (waiting for the GIL after it returns): alone that vetoes a
    stale heartbeat (a full disk). With dumps naming another thread holding the GIL since before, it is
    gil-held, with two witnesses."""
    # mono 200: the beat went stale at 130; selector samples until 190; the GIL held since 120.
    base = replace(R019, loop=LoopFindings(last_turned=190.0), heartbeat=STALE, mono=200.0)
    v = judge(cpu(0.01), [state(qqbot="connected")], None, TH, NOW, seen=base)
    assert v.signature == HEALTHY and any("seen turning after it went stale" in r for r in v.reasons), v
    held = replace(base, gil=tuple(gs(t) for t in range(120, 200, 2)))
    v = judge(cpu(0.01), [state(qqbot="connected")], None, TH, NOW, seen=held)
    assert v.signature == GIL_HELD and v.witnesses == ("heartbeat", "gil"), v
    assert v.evidence and v.evidence["gil"]["thread"] == "hermes-gateway_1001" and "fullmatch" in (v.blocking or "")
    rules = policy.Rules(60, 5, 0.5, 600, 900, "alert")
    assert policy.decide(v, 10.0, rules).kind == policy.ALERT
    assert policy.decide(v, 10.0, replace(rules, frozen_action="restart")).kind == policy.RESTART
    # The GIL held only since after the loop was last seen turning: the turn stands, no verdict on the loop.
    late = replace(base, gil=tuple(gs(t) for t in range(192, 200, 2)))
    assert judge(cpu(0.01), [state(qqbot="connected")], None, TH, NOW, seen=late).signature == HEALTHY


def test_dump_schedule() -> None:
    s, th = DumpSchedule(), DeafThresholds(workers_busy_after=180)
    gate = agents_gate()
    assert agents_gate(1) == 5 and agents_gate(2) == 6 and agents_gate(64) == 10
    assert DumpSchedule.workers_every(th) == 45
    assert s.due(0.0, 0, 30, False, th) == (False, False)  # no agent running, not suspect
    assert s.due(0.0, gate - 1, 30, False, th) == (False, False)  # too few turns to fill any pool we know
    assert s.due(0.0, gate, 30, False, th) == (True, False)
    assert s.due(10.0, gate, 30, False, th) == (False, False)
    assert s.due(45.0, gate, 30, True, th) == (True, True)
    assert s.due(46.0, gate, 30, True, th) == (False, False)
    assert s.due(48.0, None, 30, True, th) == (False, True)
    # No count in the state file: the workers' dumps only where more threads run than a full pool of ten.
    assert DumpSchedule().due(0.0, None, 8, False, th) == (False, False)
    assert DumpSchedule().due(0.0, None, 14, False, th) == (True, False)


def test_a_frozen_loop_is_named_from_the_dumps_when_its_samples_have_not_shown_it() -> None:
    """py-spy record starved on a loaded machine: no stretch yet; the all-thread dumps taken while suspect
    still name the call (not a witness: one heartbeat stays one witness)."""
    blocked = str(Frame("injected_blocking_call", "/srv/inject.py", 70))
    seen = replace(R019, heartbeat=STALE, mono=200.0,
                   loop_dumps=((194.0, blocked, False), (196.0, blocked, False), (198.0, blocked, False)))
    v = judge(cpu(0.01), [state(qqbot="connected")], None, TH, NOW, seen=seen)
    assert v.signature == LOOP_FROZEN and v.witnesses == ("heartbeat",) and v.blocking == blocked, v
    assert any("in the last 3 all-thread dumps" in r for r in v.reasons), v.reasons
    # In its selector, or a single dump, or stale dumps: no name.
    for dumps in (((196.0, blocked, False), (198.0, "select (selectors.py:468)", True)),
                  ((198.0, blocked, False),), ((150.0, blocked, False), (152.0, blocked, False))):
        v = judge(cpu(0.01), [state(qqbot="connected")], None, TH, NOW, seen=replace(seen, loop_dumps=dumps))
        assert v.signature == LOOP_FROZEN and v.blocking is None, (dumps, v)
