"""Hermes' own exits and its respawn-storm breakers, with plain data: the storm rule of each family, what
says its watchdog ended the gateway for a restart, the decision "relaunched / wait / start it ourselves /
hold / cannot", and the restart machine's edges after such an exit (fake world, no processes)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from hermes_watchdog.act.managers.base import RestartResult
from hermes_watchdog.act.restart import NewCheck, RestartMachine, StartPlan
from hermes_watchdog.act.restart_state import ORIGIN_HERMES, Phase, Restart
from hermes_watchdog.facts.readings import STORM_CRASH_CYCLES, STORM_STARTS, StormRule, Upstream, chain_ending_at
from hermes_watchdog.judge import exits
from hermes_watchdog.judge.families import FAMILIES, UNKNOWN, Recognised
from hermes_watchdog.judge.signatures import judge
from hermes_watchdog.judge.verdict import Seen, StateSeen, Thresholds
from hermes_watchdog.observe.statefile import parse_state
from hermes_watchdog.observe.upstream import parse_boots
from tests.unit.test_restart_machine import NEW, OLD, Recorder, World

STARTS = StormRule(STORM_STARTS, 5, 120.0)
CYCLES = StormRule(STORM_CRASH_CYCLES, 3, 300.0)
NOW = 1_000_000.0


# ------------------------------------------------------------------ storm rules
def test_starts_rule_trips_above_the_count_within_the_window() -> None:
    five = Upstream(starts=tuple(NOW - i * 20 for i in range(5)))
    assert five.storm(NOW, STARTS) == 0  # 5 is allowed: more than 5 trips
    six = Upstream(starts=tuple(NOW - i * 20 for i in range(6)))
    assert six.storm(NOW, STARTS) == 6
    assert six.storm(NOW + 200, STARTS) == 0  # the window moved on
    assert Upstream(starts=tuple(NOW - i * 30 for i in range(6))).storm(NOW, STARTS) == 0  # the oldest is 150 s back


def test_crash_cycles_chain_on_the_gap_not_an_absolute_window() -> None:
    # A slow ~150 s cycle (wedged loop, Hermes' watchdog exits 75, relaunch): 3 boots over 300 s still chain.
    slow = Upstream(boots=(NOW - 300, NOW - 150, NOW - 1))
    assert slow.storm(NOW, CYCLES) == 3
    assert slow.storm(NOW, STARTS) == 0  # invisible to a starts count (no gateway-starts.log lines at all)
    # Two boots chained: not yet.
    assert Upstream(boots=(NOW - 150, NOW - 1)).storm(NOW, CYCLES) == 0
    # A gap wider than 300 s breaks the chain: the older boots are an episode that ended.
    assert Upstream(boots=(NOW - 1000, NOW - 900, NOW - 400, NOW - 10)).storm(NOW, CYCLES) == 0
    # Quiet for more than the gap since the last boot: forgotten.
    assert slow.storm(NOW + 400, CYCLES) == 0


def test_chain_handles_a_clock_stepped_back_and_empty_history() -> None:
    assert chain_ending_at((), NOW, 300) == ()
    assert chain_ending_at((NOW + 100, NOW - 50), NOW, 300) == (NOW - 50, NOW + 100)
    assert chain_ending_at((NOW + 1000, NOW - 50), NOW, 300) == (NOW - 50,)  # far future: not a link


def test_restart_loop_file_is_read_defensively() -> None:
    ok = json.dumps({"boots": [NOW - 2, NOW - 1, True, "x", 1e999]}).encode()
    assert parse_boots("p", ok) == (NOW - 2, NOW - 1)
    assert parse_boots("p", b"garbage{") == () and parse_boots("p", None) == ()
    assert parse_boots("p", b'{"boots": 3}') == ()


def _state(**fields: object) -> StateSeen:
    rec = {"pid": 4242, "kind": "hermes-gateway", "gateway_state": "running", "platforms": {}, **fields}
    return StateSeen(parse_state("/h/gateway_state.json", json.dumps(rec).encode()), True)


def _note(release: Recognised | None, up: Upstream) -> str | None:
    from hermes_watchdog.facts.cpu import CpuSnapshot
    from hermes_watchdog.judge.cpu import usage

    snaps = [CpuSnapshot(at=t, cpu=0.01 * t, wall=NOW - 10 + t) for t in (0.0, 5.0, 10.0)]
    v = judge(usage(snaps), [_state()], None, Thresholds(), now=NOW, seen=Seen(upstream=up, release=release))
    return v.upstream


def test_upstream_note_honours_the_recognised_familys_rule() -> None:
    fam = {f.name: f for f in FAMILIES}
    storm_of_starts = Upstream(starts=tuple(NOW - i * 10 for i in range(6)))
    slow_cycles = Upstream(boots=(NOW - 300, NOW - 150, NOW - 1))
    # Unknown release: 0.19.0's rule, as before families.
    assert "respawn storm (6 starts" in (_note(None, storm_of_starts) or "")
    assert _note(Recognised(UNKNOWN, "nothing"), slow_cycles) is None
    # 0.19.0: starts.
    assert "more than 5" in (_note(Recognised(fam["0.19.0"], "version"), storm_of_starts) or "")
    # Later releases: chained crash cycles, which a starts count never sees.
    later = Recognised(fam["0.21.4+"], "payload")
    note = _note(later, slow_cycles) or ""
    assert "3 crash cycles chained" in note and "300 s" in note
    assert _note(later, Upstream(boots=(NOW - 150, NOW - 1))) is None
    # ... and they keep the starts breaker too (gateway-starts.log is still in upstream's status.py).
    assert "respawn storm (6 starts" in (_note(later, storm_of_starts) or "")
    # 0.14-0.18 have no breaker of their own.
    assert _note(Recognised(fam["0.14-0.18"], "version"), storm_of_starts) is None


# ------------------------------------------------------------------ what says Hermes asked for a restart
def test_upstream_exit_is_read_from_the_state_file_or_the_lifecycle_ledger() -> None:
    degraded = _state(gateway_state="degraded", exit_reason="loop_liveness_watchdog", restart_requested=True).state
    said = exits.upstream_exit(degraded, None) or ""
    assert "loop_liveness_watchdog" in said and "restart_requested" in said
    ledger = Upstream(lifecycle_phase="exited", lifecycle_exit_code=75, lifecycle_exit_reason="shutdown_watchdog")
    assert "exit code 75" in (exits.upstream_exit(_state().state, ledger) or "")
    # Not a request for a restart: a clean stop, a reason without the request, another exit code.
    assert exits.upstream_exit(_state(gateway_state="stopped", exit_reason="signal").state, None) is None
    assert exits.upstream_exit(_state(exit_reason="loop_liveness_watchdog").state, None) is None
    assert exits.upstream_exit(_state().state, Upstream(lifecycle_phase="exited", lifecycle_exit_code=1)) is None
    # The ledger as later releases stamp it names the process (and is all they write before os._exit(75)):
    # it counts for that PID only.
    own = Upstream(lifecycle_phase="exited", lifecycle_exit_code=75, lifecycle_exit_reason="loop_liveness_watchdog",
                   lifecycle_pid=4242, lifecycle_at=NOW)
    assert "loop_liveness_watchdog" in (exits.upstream_exit(None, own, pid=4242) or "")
    assert exits.upstream_exit(None, own, pid=4343) is None
    # A ledger that names no process: one written before this gateway started is an earlier gateway's.
    stamped = Upstream(lifecycle_phase="exited", lifecycle_exit_code=75, lifecycle_at=NOW)
    assert exits.upstream_exit(_state().state, stamped, started=NOW - 60, pid=4242) is not None
    assert exits.upstream_exit(_state().state, stamped, started=NOW + 60, pid=4242) is None


# ------------------------------------------------------------------ the decision after the exit
def test_decision_after_the_exit() -> None:
    d = exits.after_exit
    assert d(waited=5, start_timeout=90, relaunched=True, starter=None).kind == exits.RELAUNCHED
    assert d(waited=90, start_timeout=90, relaunched=False, starter="command").kind == exits.WAIT
    start = d(waited=91, start_timeout=90, relaunched=False, starter="command ['x']")
    assert start.kind == exits.START and "#94540" in start.why and "command ['x']" in start.why
    cannot = d(waited=91, start_timeout=90, relaunched=False, starter=None, cannot_start="signals cannot start")
    assert cannot.kind == exits.CANNOT_START and "signals cannot start" in cannot.why
    held = d(waited=91, start_timeout=90, relaunched=False, starter="s", storm="breaker tripped")
    assert held.kind == exits.HOLD and "breaker tripped" in held.why
    spent = d(waited=91, start_timeout=90, relaunched=False, starter="s", storm="x", budget_spent="3 of 3 used")
    assert spent.kind == exits.CANNOT_START and "3 of 3" in spent.why
    assert d(waited=91, start_timeout=90, relaunched=False, starter="s", budget_wait="cooldown").kind == exits.HOLD


# ------------------------------------------------------------------ the machine after Hermes' own exit
@dataclass
class ExitWorld(World):
    plan: StartPlan = field(default_factory=lambda: StartPlan(starter="command ['start-gateway']"))
    starts: list[str] = field(default_factory=list)
    start_ok: bool = True

    def start_plan(self) -> StartPlan:
        return self.plan

    def start(self) -> RestartResult:
        self.starts.append("start")
        return RestartResult("command", self.start_ok, "exit 0" if self.start_ok else "exit 1")


def after(world: ExitWorld, rec: Recorder, timeout: float = 30.0) -> RestartMachine:
    world.living.clear()  # it has exited
    m = RestartMachine.after_exit(OLD, world, rec, gone_at=world.t, wall=1e9, start_timeout=timeout)
    m.start("Hermes' own watchdog ended it")
    return m


def test_relaunched_by_its_manager_is_verified_and_nothing_is_sent_or_started() -> None:
    world, rec = ExitWorld(), Recorder()
    m = after(world, rec)
    assert m.r.phase == Phase.VERIFYING and m.r.origin == ORIGIN_HERMES and rec.path == [Phase.VERIFYING]
    world.t = 10.0
    world.new = NEW
    world.new_check = NewCheck(ready=True, detail="new gateway PID 200 is running")
    assert m.step() == Phase.RESTARTED
    world.t = 100.0
    assert m.step() == Phase.RESTARTED
    assert world.kills == [] and world.starts == [] and not m.r.started_it


def test_nothing_relaunches_it_so_the_watchdog_starts_it_once_after_the_start_timeout() -> None:
    world, rec = ExitWorld(), Recorder()
    m = after(world, rec, timeout=30)
    world.t = 30.0
    assert m.step() == Phase.VERIFYING and world.starts == []  # not before the start timeout is over
    world.t = 30.5
    assert m.step() == Phase.STARTING and world.starts == ["start"] and m.r.started_it
    assert "nothing relaunched it within the start timeout" in rec.transitions[-1][2]
    world.t = 31.0
    assert m.step() == Phase.STARTING and world.starts == ["start"]  # never a second start
    world.new = NEW
    world.new_check = NewCheck(ready=True, detail="new gateway PID 200 is running")
    assert m.step() == Phase.RESTARTED and world.kills == []


def test_a_gateway_found_at_the_last_look_is_verified_not_started_twice() -> None:
    world, rec = ExitWorld(), Recorder()
    m = after(world, rec, timeout=30)
    world.t, world.new = 31.0, NEW
    assert m.step() == Phase.VERIFYING and world.starts == [] and m.r.new == NEW


def test_a_started_gateway_that_never_comes_up_fails() -> None:
    world, rec = ExitWorld(), Recorder()
    m = after(world, rec, timeout=30)
    world.t = 31.0
    assert m.step() == Phase.STARTING
    world.t = 62.0
    assert m.step() == Phase.FAILED and "after the watchdog started it" in m.r.detail


def test_signals_only_cannot_start_it_and_says_so() -> None:
    world, rec = ExitWorld(plan=StartPlan(starter=None, cannot_start="--restart-with signal cannot start one")), \
        Recorder()
    m = after(world, rec, timeout=30)
    world.t = 31.0
    assert m.step() == Phase.FAILED and world.starts == []
    assert "--restart-with signal cannot start one" in m.r.detail


def test_breaker_backing_off_holds_the_start_and_says_it_once() -> None:
    world, rec = ExitWorld(plan=StartPlan(starter="command", storm="Hermes' breaker has tripped")), Recorder()
    m = after(world, rec, timeout=30)
    for t in (31.0, 40.0, 50.0):
        world.t = t
        assert m.step() == Phase.VERIFYING
    assert world.starts == [] and [k for k, _ in rec.events] == ["WARN"]
    world.plan = StartPlan(starter="command")  # the breaker is quiet again
    world.t = 60.0
    assert m.step() == Phase.STARTING and world.starts == ["start"]


def test_a_failing_start_is_a_failure_with_the_managers_words() -> None:
    world, rec = ExitWorld(start_ok=False), Recorder()
    m = after(world, rec, timeout=30)
    world.t = 31.0
    assert m.step() == Phase.FAILED and "the start failed: exit 1" in m.r.detail and not m.r.started_it


def test_pending_record_keeps_the_origin() -> None:
    world, rec = ExitWorld(), Recorder()
    m = after(world, rec, timeout=30)
    data = m.r.to_dict(lambda mono: 1e9 + mono)
    back = Restart.from_dict(data, lambda wall: wall - 1e9, grace=20, start_timeout=90)
    assert back.origin == ORIGIN_HERMES and back.phase == Phase.VERIFYING and not back.started_it


def test_deferring_to_upstreams_own_watchdog_has_a_deadline() -> None:
    """Issue 20: a spinning gateway whose state says exit_reason=loop_liveness_watchdog was only alerted on, for
    ever. Deferred within upstream's own budget; past it, the watchdog acts as usual and says why."""
    from hermes_watchdog.facts.cpu import CpuSnapshot
    from hermes_watchdog.judge.cpu import usage
    from hermes_watchdog.judge.families import UPSTREAM_BUDGET
    from hermes_watchdog.timefmt import iso

    snaps = [CpuSnapshot(at=t, cpu=0.99 * t, wall=NOW - 10 + t) for t in (0.0, 5.0, 10.0)]

    def verdict(said_ago: float):  # type: ignore[no-untyped-def]
        st = _state(gateway_state="degraded", exit_reason="loop_liveness_watchdog", restart_requested=True,
                    updated_at=iso(NOW - said_ago), platforms={"qq": {"state": "disconnected"}})
        return judge(usage(snaps), [st], None, Thresholds(), now=NOW, seen=Seen())

    fresh = verdict(30)
    assert fresh.upstream and "Hermes' own watchdog is restarting" in fresh.upstream
    late = verdict(UPSTREAM_BUDGET + 30)
    assert late.upstream is None
    assert any("past its own budget" in r for r in late.reasons), late.reasons
