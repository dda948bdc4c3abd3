"""The faulthandler text parser on real faulthandler output (written by this interpreter), the analysis it
feeds, and the hook's gateway check against the watchdog's own."""

from __future__ import annotations

import faulthandler
import threading
from pathlib import Path

import pytest

from hermes_watchdog.observe import faulthandler_text
from hermes_watchdog.observe.processes import looks_like_gateway
from hermes_watchdog.observe.stacks import analyse
from hermes_watchdog.patches import hook


def _read_events(out: object, release: threading.Event) -> None:
    faulthandler.dump_traceback(file=out, all_threads=True)
    release.set()


def _listen_loop(out: object, release: threading.Event) -> None:
    _read_events(out, release)


def test_real_dump_parses_into_frames_innermost_first(tmp_path: Path) -> None:
    release, parked = threading.Event(), threading.Event()

    def waiter() -> None:
        parked.set()
        release.wait(30)

    t = threading.Thread(target=waiter, name="worker")
    t.start()
    parked.wait(30)
    path = tmp_path / "dump.txt"
    with open(path, "w") as out:
        _listen_loop(out, release)
    t.join(30)
    text = path.read_text()
    dumps = faulthandler_text.parse(text, main_ident=threading.main_thread().ident, main_tid=4242)
    assert len(dumps) == 1
    threads = dumps[0].threads
    assert len(threads) >= 2, text
    main = next(th for th in threads if th.name == "MainThread")
    assert main.os_tid == 4242
    names = [f.function for f in main.frames]
    assert names[:2] == ["_read_events", "_listen_loop"], text  # innermost first, as py-spy gives them
    assert main.frames[0].file.endswith("test_faulthandler_text.py") and main.frames[0].line > 0
    other = next(th for th in threads if th is not main)
    assert other.os_tid is None and any(f.function == "waiter" for f in other.frames)
    # The same analysis as py-spy's dumps: the hot thread's stack, its innermost frame in every dump.
    a = analyse(dumps * 3, 4242)
    assert a.hot_tid == 4242 and [f.function for f in a.frames][:2] == ["_read_events", "_listen_loop"]
    assert a.innermost_in == 3


def test_several_dumps_in_one_file_are_split(tmp_path: Path) -> None:
    path = tmp_path / "many.txt"
    with open(path, "w") as out:
        for _ in range(3):
            faulthandler.dump_traceback(file=out, all_threads=True)
    assert len(faulthandler_text.parse(path.read_text())) == 3


def test_the_last_fatal_dump_of_a_stderr_log() -> None:
    log = ("some earlier log line\n"
           "Fatal Python error: Aborted\n\n"
           "Thread 0x00007f0000000001 (most recent call first):\n"
           '  File "/x/gateway/platforms/qqbot/adapter.py", line 492 in _listen_loop\n'
           '  File "/usr/lib/python3.11/asyncio/events.py", line 84 in _run\n\n'
           "Current thread 0x00007f0000000002 (most recent call first):\n"
           "  <no Python frame>\n\n"
           "Extension modules: yaml._yaml, psutil._psutil_linux (total: 2)\n"
           "a line of the relaunched gateway\n")
    fatal = faulthandler_text.last_fatal(log)
    assert fatal is not None and fatal.startswith("Fatal Python error: Aborted")
    (dump,) = faulthandler_text.parse(fatal, main_ident=0x7F0000000001, main_tid=7)
    assert [t.os_tid for t in dump.threads] == [7, None]
    assert dump.threads[0].frames[0].function == "_listen_loop" and dump.threads[1].frames == ()
    assert faulthandler_text.last_fatal("no crash here\n") is None


def test_garbage_gives_no_dumps() -> None:
    assert faulthandler_text.parse("") == []
    assert faulthandler_text.parse('  File "x.py", line 1 in f\nnothing\n') == []


@pytest.mark.parametrize("argv", [
    ["/v/bin/python", "/v/bin/hermes", "gateway", "run"],
    ["/v/bin/python", "/v/bin/hermes", "gateway", "run", "--replace"],
    ["/v/bin/python", "/v/bin/hermes", "--profile", "work", "gateway", "run"],
    ["/v/bin/python", "/v/bin/hermes", "gateway"],
    ["/v/bin/python3.11", "-u", "-m", "hermes_cli.main", "gateway", "run", "--replace"],
    ["/v/bin/python", "-X", "faulthandler", "-m", "hermes_cli.main", "-p", "x", "gateway", "run"],
    ["/v/bin/python", "/tmp/bin/hermes-gateway", "4000"],
    ["/v/bin/python", "/src/hermes-agent/gateway/run.py"],
    ["/v/bin/python", "/v/bin/hermes", "gateway", "status"],
    ["/v/bin/python", "/v/bin/hermes", "chat"],
    ["/v/bin/python", "-c", "import gateway; print('gateway run')"],
    ["/v/bin/python", "-m", "pytest", "gateway", "run"],
    ["/v/bin/python"],
    ["/v/bin/python", "/v/bin/tail", "-f", "hermes", "gateway", "run"],
])
def test_the_hook_recognises_a_gateway_as_the_watchdog_does(argv: list[str]) -> None:
    assert hook.gateway_argv(argv)[0] is looks_like_gateway(argv)


def test_the_hook_finds_the_profile_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert hook.gateway_argv(["py", "/v/bin/hermes", "--profile", "work", "gateway", "run"]) == (True, "work")
    monkeypatch.delenv("HERMES_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert hook.hermes_home("work") == str(tmp_path / ".hermes" / "profiles" / "work")
    monkeypatch.setenv("HERMES_HOME", "/h")
    assert hook.hermes_home("work") == "/h"
