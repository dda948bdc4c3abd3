"""Issue 24 item 9: known upstream issues matched offline, with plain data."""

from __future__ import annotations

import ast
from pathlib import Path

import hermes_watchdog.sim.gateway as sim_gateway
from hermes_watchdog.judge.known_issues import KNOWN, from_record, match
from hermes_watchdog.patches.fixes import FIXES

QQ_FRAMES = ["QQAdapter._read_events (gateway/platforms/qqbot/adapter.py:654)", "Handle._run (asyncio/events.py:80)"]


def test_the_qqbot_spin_on_an_affected_release_is_matched_with_its_fix_and_the_fix_pack() -> None:
    [m] = match("busy-loop", QQ_FRAMES, ["qqbot"], (0, 14, 0))
    text = m.text((0, 14, 0))
    assert m.sure and text.startswith("matches hermes-agent #17703 (QQBot adapter spins on a closed WebSocket)")
    assert "fixed in 0.17.0; this gateway runs 0.14.0: upgrade, or `hermes-watchdog patch install`" in text
    assert match("busy-loop", QQ_FRAMES, ["qqbot"], (0, 17, 0)) == []  # fixed there: not this issue
    [maybe] = match("busy-loop", QQ_FRAMES, [], None)  # no version known: only a possible match
    assert not maybe.sure and maybe.text(None).startswith("may match")
    assert match("loop-frozen", QQ_FRAMES, ["qqbot"], (0, 14, 0)) == []  # another signature
    assert match("busy-loop", ["Other._spin (x.py:1)"], ["qqbot"], (0, 14, 0)) == []  # the frame decides


def test_entries_without_frames_need_their_platform_and_version() -> None:
    assert [m.issue.key for m in match("busy-loop", [], ["telegram"], (0, 22, 4))] == ["telegram-deaf-spin"]
    assert match("busy-loop", [], ["discord"], (0, 22, 4)) == []
    assert [m.issue.key for m in match("memory-high", [], [], (0, 20, 0))] == ["memory-runaway"]
    assert match("memory-high", [], [], (0, 19, 0)) == []


def test_every_entrys_frames_are_functions_the_simulator_or_a_proven_fix_has() -> None:
    """The frames an entry names must exist where we have seen them: the simulated QQ adapter (whose spin the
    end-to-end tests capture) or a class and method the fix pack probes on the real releases."""
    tree = ast.parse(Path(sim_gateway.__file__).read_text())
    sim = {f"{c.name}.{f.name}" for c in ast.walk(tree) if isinstance(c, ast.ClassDef)
           for f in c.body if isinstance(f, ast.AsyncFunctionDef | ast.FunctionDef)}
    fixed = {f"{fix.cls}.{m}" for fix in FIXES for m in ("_read_events", "_listen_loop")}
    for issue in KNOWN:
        for frame in issue.frames:
            assert frame in sim or frame in fixed, (issue.key, frame)
        if issue.fix_pack:
            assert issue.fix_pack in {f.name for f in FIXES}, issue.key


def test_a_record_is_matched_from_its_verdict_stack_and_version() -> None:
    rec = {"verdict": {"signature": "busy-loop", "platforms_down": ["qqbot"],
                       "loop": {"top_frame": "QQAdapter._listen_loop (adapter.py:492)"}},
           "stack": {"hot_thread": {"frames": [{"function": "QQAdapter._read_events"}]}},
           "versions": {"hermes": "git 0.16.0 (abc1234)"}}
    [m] = from_record(rec)
    assert m["id"] == "qqbot-closed-socket" and m["sure"] is True and "runs 0.16.0" in str(m["text"])
    assert from_record({}) == []
