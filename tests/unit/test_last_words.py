"""The SIGABRT decision and the collection of the stack a dying gateway printed (files, no processes)."""

from __future__ import annotations

import signal
from pathlib import Path

from hermes_watchdog.facts.identity import Identity
from hermes_watchdog.observe import last_words

GW = Identity(4321, 1000.0, ("python", "-m", "hermes_cli.main", "gateway", "run"), 77, uid=0)
DUMP = ("Fatal Python error: Aborted\n\n"
        "Thread 0x00007f0000000009 (most recent call first):\n"
        '  File "/usr/lib/python3.11/threading.py", line 320 in wait\n\n'
        "Current thread 0x00007f0000000001 (most recent call first):\n"
        '  File "/v/site-packages/gateway/platforms/qqbot/adapter.py", line 654 in _read_events\n'
        '  File "/v/site-packages/gateway/platforms/qqbot/adapter.py", line 492 in _listen_loop\n'
        '  File "/usr/lib/python3.11/asyncio/events.py", line 80 in _run\n\n'
        "Extension modules: yaml._yaml (total: 1)\n")


def test_sigabrt_only_when_no_stack_was_taken_and_faulthandler_is_on(tmp_path: Path) -> None:
    on = {"PYTHONFAULTHANDLER": "1"}
    assert last_words.final_signal(GW, tmp_path, on, stack_captured=True) == (signal.SIGKILL, None)
    sig, why = last_words.final_signal(GW, tmp_path, on, stack_captured=False)
    assert sig == signal.SIGABRT and why is not None and "PYTHONFAULTHANDLER" in why
    assert last_words.final_signal(GW, tmp_path, {"PYTHONFAULTHANDLER": ""}, False)[0] == signal.SIGKILL
    assert last_words.final_signal(GW, tmp_path, None, False)[0] == signal.SIGKILL  # environment unreadable


def test_the_stack_printed_after_the_offset_is_collected(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "gateway.error.log"
    log.parent.mkdir()
    old = DUMP.replace("_read_events", "an_older_crash")
    log.write_text("starting\n" + old)
    assert last_words.error_log_size(tmp_path) == log.stat().st_size
    offset = last_words.error_log_size(tmp_path)
    assert last_words.collect(tmp_path, GW, "signal", offset)[0] is None  # the older crash is not this one
    with log.open("a") as fh:
        fh.write(DUMP + "the relaunched gateway starts\n")
    stack, where = last_words.collect(tmp_path, GW, "launchd", offset)
    assert stack is not None and where == str(log)
    assert stack.method == "sigabrt" and stack.captured and stack.hot_name == "MainThread"
    assert [f.function for f in stack.frames][:2] == ["_read_events", "_listen_loop"]  # the main thread: last listed
    assert last_words.error_log_size(tmp_path / "nowhere") == 0
