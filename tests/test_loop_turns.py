"""The loop-turn counter on real processes: simulated gateways with the fix pack's hook armed (``--hook``)
count their loop's turns, and the real `hermes-watchdog run` reads them.

A loop that computes in slices and yields between them turns 20 to 200 times a second and must never be
taken for a spin, with or without the counter (without it, the stack proof has to be large enough to have
seen it turn: judge/loop.py); a loop that never yields is restarted on the counter's word. Both hold
while other processes load every core. The 10-minute soak and the timings are in bench/turns.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from hermes_watchdog.observe import loop_turns as reader
from tests.helpers import cli, wait_for
from tests.test_fix_usability import make_venv
from tests.test_loop_verdicts import every_core_busy, loop_info  # noqa: F401 - fixtures

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="schedstat demand is Linux-only")


@linux_only
def test_sliced_loops_never_restarted(tmp_path: Path, supervised, daemons) -> None:
    """5, 20 and 50 ms slices, each with and without the hook, side by side in one daemon at default
    settings: six gateways that each want a core on this 2-core machine, so every core is loaded."""
    gateways = {f"{ms}ms{'-hook' if hook else ''}": ("--mode", "sliced", "--slice-ms", str(ms),
                                                    "--extra-platforms", "telegram", *(("--hook",) if hook else ()))
                for ms in (5, 20, 50) for hook in (False, True)}
    homes = {name: tmp_path / name for name in gateways}
    sups = {name: supervised(homes[name], *args) for name, args in gateways.items()}
    pids = {name: s.wait_running() for name, s in sups.items()}
    d = daemons(tmp_path / "wd", *[a for h in homes.values() for a in ("--hermes-home", str(h))],
                "--restart-with", "signal")

    def counter(name: str) -> dict:
        return loop_info(d.gateway_at(homes[name])).get("counter") or {}

    watches: dict[str, list[int]] = {}  # without the hook: selector calls of each ptrace watch seen in status

    def soaked() -> bool:
        st = {name: d.gateway_at(homes[name]) for name in gateways}
        if not all(st.values()):
            return False
        for n in gateways:
            seen = loop_info(st[n]).get("syscalls")
            if seen is not None:
                watches.setdefault(n, []).append(seen["selector_calls"])
        # With the hook: the counter read for a while, turning. Without: dense stack bursts judged, each
        # of which could have proven a spin had it been one.
        counted = all((counter(n).get("turns_per_second") or 0) > 0 and counter(n).get("live")
                      for n in gateways if n.endswith("-hook"))
        sampled = all(loop_info(st[n]).get("usable_bursts", 0) >= 3 for n in gateways if not n.endswith("-hook"))
        return counted and sampled and all((st[n].get("verdict") or {}).get("span_seconds", 0) >= 30
                                           for n in gateways)

    wait_for(soaked, timeout=240, what="every sliced gateway watched (counted or densely sampled) for 30 s")
    log = d.events()
    assert "busy-loop" not in log and "RESTART" not in log and "KILL" not in log, log
    assert d.incidents() == []
    # Without the hook the samples miss the loop's short visits and stretches form; where one asked for a
    # ptrace watch (judge/syscalls.py: only while the thread wants a core), the watch saw the loop turn: a
    # sliced loop enters epoll_wait after each slice. (How many watches happen depends on the load, so the
    # count is not asserted; every one must have seen a turn.)
    assert all(calls >= 1 for n, seen in watches.items() for calls in seen), watches
    for name, s in sups.items():
        assert s.launches == 1 and psutil.pid_exists(pids[name]), name
        if name.endswith("-hook"):
            v = d.gateway_at(homes[name])["verdict"]
            assert any("loop-turn counter" in r for r in v["reasons"]), v
        else:
            assert not counter(name), name  # no hook, no counter: the samples decided alone


def test_true_spin_restarted_by_counter(tmp_path: Path, supervised, daemons, every_core_busy) -> None:  # noqa: F811
    home = tmp_path / "hermes"
    sup = supervised(home, "--mode", "spin-connected", "--spin-after", "3", "--extra-platforms", "telegram",
                     "--hook", "--spin-once-marker", str(tmp_path / "spun"))
    first = sup.wait_running()
    d = daemons(tmp_path / "wd", "--hermes-home", str(home), "--restart-with", "signal")
    d.wait_event("RECOVERED", timeout=240)
    inc = d.incident(0)
    v = inc["verdict"]
    assert v["signature"] == "busy-loop" and v["proof"] == "counter", v
    assert v["loop"]["counter"]["stall_seconds"] >= 3 and v["loop"]["counter"]["loop_thread"] == first, v["loop"]
    assert any("the loop turned 0 times in" in r for r in v["reasons"]), v["reasons"]
    # Starvation proven: SIGKILL after the short grace (its SIGTERM handler cannot run).
    assert inc["restart"]["signals"] == ["SIGTERM", "SIGKILL"], inc["restart"]
    assert inc["result"] == "restarted" and inc["new_pid"] not in (None, first)


def test_the_installed_fix_pack_counts_a_gateways_loop(tmp_path: Path) -> None:
    """`patch install` puts the counter beside the hook; a `hermes gateway run` of that interpreter counts
    its loop's turns into its home, and a `hermes status` of the same interpreter does not."""
    python, purelib = make_venv(tmp_path / "venv")
    (purelib / "gateway").mkdir()
    (purelib / "gateway" / "__init__.py").write_text("")
    (purelib / "hermes_cli").mkdir()
    (purelib / "hermes_cli" / "__init__.py").write_text("")
    # Just enough of a gateway: a loop that turns a known number of times, then says what the hook did.
    (purelib / "hermes_cli" / "main.py").write_text(
        "import asyncio, json, sys\n"
        "async def main():\n"
        "    for _ in range(500):\n"
        "        await asyncio.sleep(0)\n"
        "asyncio.run(main())\n"
        "print(json.dumps(sys.modules['hermes_watchdog_hook'].status()))\n")
    r = cli("patch", "install", "--python", str(python))
    assert r.code == 0, r.err
    assert (purelib / "hermes_watchdog_loop_turns.py").is_file()
    home = tmp_path / "home"
    env = {**os.environ, "HERMES_HOME": str(home)}
    out = subprocess.run([str(python), "-m", "hermes_cli.main", "status"], capture_output=True, text=True,
                         timeout=120, env=env, check=True)
    assert not reader.path_of(home).exists(), out.stdout
    out = subprocess.run([str(python), "-m", "hermes_cli.main", "gateway", "run"], capture_output=True, text=True,
                         timeout=120, env=env, check=True)
    assert "counting the main event loop" in json.loads(out.stdout.strip().splitlines()[-1])["turns"], out.stdout
    turns = reader._LAYOUT.unpack(reader.path_of(home).read_bytes())[6]
    assert turns >= 500, turns
    r = cli("patch", "uninstall", "--python", str(python))
    assert r.code == 0 and not (purelib / "hermes_watchdog_loop_turns.py").exists(), r.out
