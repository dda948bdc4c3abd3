"""The hook's marker and its stack thread, checked in this very test process: the marker must name this
process, the stack address must be the one this process binds, and the process answering on the socket must
be this one. Real sockets, a real child process as the impostor; no signal anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from hermes_watchdog.observe import hook_marker, hook_stacks, processes, stack_capture
from hermes_watchdog.observe.hook_marker import read_marker, stacks_address
from hermes_watchdog.patches import stack_thread

LINUX = sys.platform.startswith("linux")


def test_only_the_address_this_process_would_bind_is_taken() -> None:
    home = Path("/h")
    base = {"pid": 42, "start_time": 7}
    nonce = "0123456789abcdef"
    assert stacks_address(base | {"stacks": f"@hermes-watchdog-stacks.42.7.{nonce}"}, home) == (
        f"@hermes-watchdog-stacks.42.7.{nonce}", "")
    assert stacks_address(base | {"stacks": "/h/state/hermes-watchdog-stacks.42.sock"}, home)[0] is not None
    for bad in (f"@hermes-watchdog-stacks.43.7.{nonce}", f"@hermes-watchdog-stacks.42.8.{nonce}",
                "@hermes-watchdog-stacks.42.7", "@hermes-watchdog-stacks.42.7.",
                f"@hermes-watchdog-stacks.42.7.{nonce}0",
                "@hermes-watchdog-stacks.42.7.0123456789ABCDEF", "@anything", "/tmp/x.sock",
                "/h/state/../../tmp/hermes-watchdog-stacks.42.sock", "/h/state/hermes-watchdog-stacks.41.sock"):
        addr, why = stacks_address(base | {"stacks": bad}, home)
        assert addr is None and "is not this gateway's" in why, bad
    for missing in ({}, {"stacks": None}, {"stacks": ""}, {"stacks": 5}):
        addr, why = stacks_address(base | missing, home)
        assert addr is None and "no stack thread" in why
    addr, why = stacks_address(base | {"stacks": None, "stacks_error": "PermissionError('state/ is open')"}, home)
    assert addr is None and "did not start in this gateway: PermissionError('state/ is open')" in why


def _home(tmp_path: Path, **fields: object) -> Path:
    home = tmp_path / "hermes"
    (home / "state").mkdir(parents=True, exist_ok=True)
    me = processes.identity(os.getpid())
    data = {"pid": me.pid, "start_time": me.start_ticks, "main_thread": threading.get_ident(), "fatal_handler": True,
            "stacks": stack_thread.address(str(home), me.pid, me.start_ticks, "0" * 16)} | fields
    marker = home / "state" / hook_marker.MARKER
    if marker.exists():
        marker.unlink()
    marker.write_text(json.dumps({k: v for k, v in data.items() if v is not ...}))
    marker.chmod(0o600)
    return home


def test_the_marker_must_name_this_very_process(tmp_path: Path) -> None:
    me = processes.identity(os.getpid())
    marker, why = read_marker(me, _home(tmp_path, sigusr2={"file": "/x.log", "chain": False,
                                                           "chain_requested": True}))
    assert marker is not None and marker.stacks is not None and marker.fatal_handler, why
    assert marker.registration() == "SIGUSR2 -> /x.log, chain=False (Hermes asked for chain=True; the hook turned it)"
    assert read_marker(me, _home(tmp_path, sigusr2=None))[0].registration() == "SIGUSR2 not registered"
    for fields, said in (({"pid": me.pid + 1}, "earlier gateway"), ({"start_time": (me.start_ticks or 0) - 50},
                         "same PID"), ({"start_time": None}, "cannot be compared")):
        marker, why = read_marker(me, _home(tmp_path, **fields))
        assert marker is None and said in why, (fields, why)
    home = _home(tmp_path)
    (home / "state" / hook_marker.MARKER).chmod(0o644)
    marker, why = read_marker(me, home)
    assert marker is None and "open to other users" in why


@pytest.mark.skipif(not LINUX, reason="the abstract socket name and SO_PEERCRED are Linux's")
def test_the_stack_thread_answers_with_every_thread_and_only_its_own_process_is_believed(tmp_path: Path) -> None:
    me = processes.identity(os.getpid())
    home = _home(tmp_path)
    # An impostor binds this process's name first (another process, as a user could): the peer check refuses
    # its answer, and nothing is parsed from it.
    squatter = subprocess.Popen(
        [sys.executable, "-c", "import socket, sys, time\n"
                               "s = socket.socket(socket.AF_UNIX); s.bind(b'\\0' + sys.argv[1].encode()); s.listen()\n"
                               "print('ok', flush=True)\n"
                               "while True:\n"
                               "    c, _ = s.accept()\n"
                               "    c.sendall(b'Thread 0x1 (most recent call first):\\n'); c.close()\n",
         stack_thread.address(str(home), me.pid, me.start_ticks, "0" * 16)[1:]], stdout=subprocess.PIPE, text=True)
    try:
        assert squatter.stdout is not None and squatter.stdout.readline().strip() == "ok"
        marker, _ = read_marker(me, home)
        assert marker is not None
        text, why = hook_stacks.request(me, marker, 2.0)
        assert text is None and f"served by PID {squatter.pid}, not by the gateway" in why, why
    finally:
        squatter.kill()
        squatter.wait(10)
    # The real thread, in this very process: every other thread's stack, this test's frame among them.
    addr = stack_thread.start(str(home), me.start_ticks)
    assert addr is not None and addr.startswith(stack_thread.address(str(home), me.pid, me.start_ticks)), addr
    home = _home(tmp_path, stacks=addr)  # the marker as the hook writes it, naming the thread's own address
    dumps, reason, _ = stack_capture.HookStacks().dumps(me, home, count=3, spread=0.2)
    assert len(dumps) == 3, reason
    frames = [f.function for t in dumps[0].threads for f in t.frames]
    assert not any(f == "_serve" for f in frames)  # the answering thread leaves itself out
    # The thread the marker names as the gateway's main thread (this one) carries its native id on Linux.
    mine = next(t for t in dumps[0].threads if t.os_tid == os.getpid())
    assert mine.frames[0].function == "request" or any(
        f.function == "test_the_stack_thread_answers_with_every_thread_and_only_its_own_process_is_believed"
        for f in mine.frames), mine.frames


def test_the_installer_puts_the_stack_thread_beside_the_hook() -> None:
    from hermes_watchdog.patches import installer

    assert installer.SOURCES[installer.STACKS_NAME].name == "stack_thread.py"
    assert f"import {installer.STACKS_NAME}" in installer.SOURCES[installer.HOOK_NAME].read_text()
    # Standard library only: it runs inside Hermes' interpreter, where hermes_watchdog is not installed.
    assert "hermes_watchdog" not in installer.SOURCES[installer.STACKS_NAME].read_text().split('"""', 2)[2]


def test_faulthandler_is_the_hooks_old_name() -> None:
    from hermes_watchdog import config

    assert isinstance(stack_capture.choose("faulthandler"), stack_capture.HookStacks)
    assert stack_capture.choose("hook").name == "hook"
    assert config.Config().stack_with == "auto"
    with pytest.raises(ValueError):
        stack_capture.choose("sigusr2")
