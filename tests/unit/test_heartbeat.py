"""The event-loop heartbeat (Hermes >= 0.19) as plain data: parsing, judging against the gateway's PID,
and how it moves the verdict and the action."""

from __future__ import annotations

import json

import pytest

from hermes_watchdog.facts.readings import HeartbeatSeen
from hermes_watchdog.judge import policy
from hermes_watchdog.judge.families import recognise
from hermes_watchdog.judge.signatures import judge
from hermes_watchdog.judge.verdict import BUSY_LOOP, CPU_PEGGED, HEALTHY, LOOP_FROZEN, Seen
from hermes_watchdog.observe import heartbeat
from tests.unit.test_signatures import NOW, TH, cpu, state

STAMP = "2027-01-15T08:00:00+00:00"
T = 1_800_000_000.0  # epoch of STAMP is computed below; tests use relative ages


def beat(**fields: object) -> bytes:
    return json.dumps({"pid": 42, "updated_at": STAMP, "monotonic": 1.0, "start_time": 1.0, **fields}).encode()


def test_parse_and_assess() -> None:
    hb = heartbeat.parse("h", beat())
    assert hb is not None and hb.pid == 42 and hb.problem is None
    seen, note = heartbeat.assess(hb, 42, hb.updated_at + 10, stale_after=60)
    assert note is None and seen is not None and not seen.stale and round(seen.age) == 10
    seen, _ = heartbeat.assess(hb, 42, hb.updated_at + 61, stale_after=60)
    assert seen is not None and seen.stale
    # 'Z' and naive stamps are UTC, as Hermes writes them.
    assert heartbeat.parse("h", beat(updated_at="2027-01-15T08:00:00Z")).updated_at == hb.updated_at
    assert heartbeat.parse("h", beat(updated_at="2027-01-15T08:00:00")).updated_at == hb.updated_at


def test_no_file_means_nothing_to_say() -> None:
    assert heartbeat.parse("h", None) is None
    assert heartbeat.assess(None, 42, NOW) == (None, None)


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b"\xff\xfe", beat(updated_at="yesterday"), beat(updated_at=5)])
def test_bad_files_are_a_note_not_a_signal(raw: bytes) -> None:
    hb = heartbeat.parse("h", raw)
    assert hb is not None and hb.problem
    seen, note = heartbeat.assess(hb, 42, NOW)
    assert seen is None and note and "not usable" in note


def test_another_pids_heartbeat_is_ignored() -> None:
    """A file left by the gateway before a restart says nothing about the new one."""
    hb = heartbeat.parse("h", beat(pid=41))
    seen, note = heartbeat.assess(hb, 42, NOW)
    assert seen is None and "PID 41" in (note or "")


STALE, FRESH = HeartbeatSeen(130, 60), HeartbeatSeen(5, 60)
# These rules are 0.19.0's: its heartbeat is written by a task on the loop. A heartbeat from a release not
# recognised is never a witness alone, and one written off the loop never a witness (tests/unit/test_families.py).
R019 = Seen(release=recognise((0, 19, 0), "test", frozenset({"pid", "updated_at"}), False, False))


def test_a_stale_heartbeat_does_not_change_a_busy_loop_proven_by_cpu_and_state() -> None:
    spin = [state(qqbot="disconnected")]
    plain = judge(cpu(1.0), spin, None, TH, NOW)
    stale = judge(cpu(1.0), spin, None, TH, NOW, heartbeat=STALE)
    assert plain.signature == stale.signature == BUSY_LOOP


def test_stale_heartbeat_alone_is_loop_frozen_on_one_witness() -> None:
    idle = judge(cpu(0.01), [state(qqbot="connected")], None, TH, NOW, heartbeat=STALE, seen=R019)
    assert idle.signature == LOOP_FROZEN and idle.witnesses == ("heartbeat",)
    assert any("a restart needs two" in r for r in idle.reasons)
    assert judge(cpu(1.0), [state(qqbot="connected")], None, TH, NOW, heartbeat=FRESH).signature == CPU_PEGGED
    assert judge(cpu(0.01), [state(qqbot="connected")], None, TH, NOW, heartbeat=FRESH).signature == HEALTHY
    # Not enough samples yet: no verdict at all, heartbeat or not.
    assert judge(None, [], None, TH, NOW, heartbeat=STALE).signature == "unknown"


def test_a_stale_heartbeat_alone_never_restarts() -> None:
    v = judge(cpu(0.01, seconds=60), [state(qqbot="connected")], None, TH, NOW, heartbeat=STALE, seen=R019)
    assert policy.decide(v, held_for=60, rules=policy.Rules(60, 5, 0.5, 600, 900, "alert")).kind == policy.ALERT
    restart = policy.Rules(60, 5, 0.5, 600, 900, "alert", frozen_action="restart")
    assert policy.decide(v, held_for=600, rules=restart).kind == policy.ALERT


def test_heartbeat_is_matched_by_pid_and_start_time() -> None:
    raw = beat(pid=42, updated_at="2027-01-15T08:00:00+00:00", start_time=1_000_000.0)
    hb = heartbeat.parse("h", raw)
    # Hermes stamps start_time a few seconds after the process started (imports): that matches.
    seen, note = heartbeat.assess(hb, 42, NOW, 60, create_time=1_000_000.0 - 7)
    assert seen is not None and note is None
    # An earlier process with the same PID started before this one did: ignored, and said why.
    seen, note = heartbeat.assess(hb, 42, NOW, 60, create_time=1_000_500.0)
    assert seen is None and note is not None and "earlier process" in note
    # No start_time at all cannot be matched to this process.
    bare = heartbeat.parse("h", json.dumps({"pid": 42, "updated_at": "2027-01-15T08:00:00+00:00"}).encode())
    seen, note = heartbeat.assess(bare, 42, NOW, 60, create_time=1_000_000.0)
    assert seen is None and note is not None and "start_time" in note


def test_a_heartbeat_that_stopped_while_the_loop_turned_witnesses_nothing() -> None:
    """A full disk (#90502): the beats stop, the loop still turns. A turn seen after the heartbeat went stale
    proves its writes fail, not the loop, even once that turn is older than --frozen-after; a turn seen only
    before it went stale proves nothing about now."""
    from dataclasses import replace

    from hermes_watchdog.judge.loop import LoopFindings

    # mono 200: the last beat was at 70 (130 s ago), stale from 130 (60 s later).
    after = replace(R019, loop=LoopFindings(last_turned=150.0), heartbeat=STALE, mono=200.0)
    v = judge(cpu(0.01), [state(qqbot="connected")], None, TH, NOW, seen=after)
    assert v.signature != LOOP_FROZEN, v
    assert any("seen turning after it went stale" in r for r in v.reasons), v.reasons
    before = replace(R019, loop=LoopFindings(last_turned=120.0), heartbeat=STALE, mono=200.0)
    v = judge(cpu(0.01), [state(qqbot="connected")], None, TH, NOW, seen=before)
    assert v.signature == LOOP_FROZEN and v.witnesses == ("heartbeat",), v
