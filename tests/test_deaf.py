"""Alive but deaf, on real processes: the simulated gateway leaks descriptors under a lowered
RLIMIT_NOFILE, leaves loopback sockets in CLOSE_WAIT, or grows its RSS, and the real `hermes-watchdog run`
opens the incident. Thresholds are shortened by flags; nothing is timed, every wait is a poll."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.helpers import Supervised, cli, start_supervised, wait_for

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc descriptors and prlimit")


@pytest.fixture
def supervised() -> Iterator:  # type: ignore[type-arg]
    started: list[Supervised] = []

    def _start(home: Path, *args: str) -> Supervised:
        s = start_supervised(home, *args)
        started.append(s)
        return s

    yield _start
    for s in started:
        s.stop()


@linux_only
def test_descriptor_leak_under_a_low_limit_alerts_then_restarts(tmp_path: Path, supervised, daemons) -> None:
    home = tmp_path / "hermes"
    sup = supervised(home, "--mode", "healthy", "--nofile", "200", "--leak-fds-per-s", "10")
    first = sup.wait_running()
    d = daemons(tmp_path / "wd", "--hermes-home", str(home), "--restart-with", "signal", "--interval", "1",
                "--window", "6", "--grace", "5", "--stack-with", "none")
    d.wait_event("RESTART", timeout=180)
    inc = wait_for(lambda: (d.incident(0).get("restart") and d.incident(0)), timeout=60, what="the restart recorded")
    v = inc["verdict"]
    assert v["signature"] == "fd-exhaustion", v
    ev = v["evidence"]
    assert ev["soft_limit"] == 200 and ev["open"] >= 160, ev
    assert ev["kinds"]["files"] > ev["kinds"]["sockets"], ev
    assert ev["top_paths"][0]["path"].endswith("state.db") and ev["top_paths"][0]["count"] > 100, ev
    wait_for(lambda: sup.launches >= 2 and sup.child != first, timeout=120, what="the relaunch")
    # An alert from 80 % escalated to the restart on the same incident, or a tick saw 95 % first.
    assert any("escalated" in n for n in inc["timeline"]) or ev["level"] == "restart", inc["timeline"]
    hist = wait_for(lambda: d.status().get("gateways") and d.gateway().get("restart_history"), timeout=60,
                    what="the restart in state.json")
    assert hist[0]["signature"] == "fd-exhaustion" and hist[0]["pid"] == first, hist


@linux_only
def test_sockets_left_in_close_wait_are_reported_not_restarted(tmp_path: Path, supervised, daemons) -> None:
    home = tmp_path / "hermes"
    sup = supervised(home, "--mode", "healthy", "--half-close", "3", "--extra-platforms", "discord")
    pid = sup.wait_running()
    d = daemons(tmp_path / "wd", "--hermes-home", str(home), "--restart-with", "signal", "--interval", "1",
                "--window", "6", "--half-closed-after", "8", "--stack-with", "none")
    d.wait_event("ALERT", timeout=180)
    inc = d.incident(0)
    v = inc["verdict"]
    assert v["signature"] == "sockets-half-closed", v
    ev = v["evidence"]
    assert ev["held_long"] >= 1 and ev["count"] >= 1, ev
    assert all(h["remote"].startswith("127.0.0.1:") for h in ev["half_closed"]), ev
    assert ev["half_closed"][0]["seconds"] >= 8, ev
    assert "discord" in ev["platforms_connected"] and "qqbot" in ev["platforms_connected"], ev
    assert inc["action"]["kind"] == "alert" and "--deaf-action restart" in inc["action"]["why"]
    assert "RESTART" not in d.events() and psutil.pid_exists(pid) and sup.launches == 1
    # state.json is written at the end of the tick that opened the incident.
    wait_for(lambda: (d.gateway().get("verdict") or {}).get("signature") == "sockets-half-closed", timeout=60,
             what="status: the verdict")
    deaf = d.gateway()["deaf"]
    assert deaf["close_wait"] == 3 and deaf["close_wait_oldest_seconds"] >= 8, deaf
    st = cli("status", "--state-dir", str(tmp_path / "wd"))
    assert "3 TCP socket(s) in CLOSE_WAIT" in st.out, st.out


def test_fast_rss_growth_alerts_without_a_memory_limit(tmp_path: Path, supervised, daemons) -> None:
    home = tmp_path / "hermes"
    sup = supervised(home, "--mode", "healthy", "--grow-mb-per-s", "4")
    pid = sup.wait_running()
    d = daemons(tmp_path / "wd", "--hermes-home", str(home), "--restart-with", "signal", "--interval", "1",
                "--window", "6", "--memory-growth", "1GiB", "--memory-growth-for", "20", "--stack-with", "none")
    d.wait_event("ALERT", timeout=180)
    inc = d.incident(0)
    v = inc["verdict"]
    assert v["signature"] == "memory-growth", v
    ev = v["evidence"]
    assert ev["bytes_per_hour"] > 1 << 30 and ev["over_seconds"] >= 18, ev
    assert ev["exhausts_machine_in_seconds"] > 0, ev
    assert any("available memory" in r for r in v["reasons"]), v["reasons"]
    assert inc["action"]["kind"] == "alert" and "RESTART" not in d.events() and psutil.pid_exists(pid)


def test_a_hang_before_any_file_is_written_is_startup_hang(tmp_path: Path, daemons) -> None:
    """Upstream #67009: a gateway that hangs loading its config writes no pid, lock or state file at all;
    the daemon finds it in the process table and calls it startup-hang after --start-timeout."""
    from tests.helpers import start_sim

    home = tmp_path / "hermes"
    sim = start_sim(home, "healthy", "--hang-before-files")
    try:
        d = daemons(tmp_path / "wd", "--hermes-home", str(home), "--restart-with", "signal", "--interval", "1",
                    "--window", "6", "--start-timeout", "8", "--stack-with", "none")
        d.wait_event("ALERT", timeout=180)
        inc = d.incident(0)
        assert inc["verdict"]["signature"] == "startup-hang", inc["verdict"]
        assert any("without writing a state file" in r for r in inc["verdict"]["reasons"]), inc["verdict"]
        assert inc["pid"] == sim.pid and inc["action"]["kind"] == "alert"
        assert not (home / "gateway_state.json").exists() and not (home / "gateway.pid").exists()
        assert "process table" in d.events()
    finally:
        sim.kill()


def test_a_gateway_killed_while_its_ledger_says_running_is_an_unclean_death(tmp_path: Path, daemons) -> None:
    """Upstream #107619. The simulated gateway writes no lifecycle ledger of its own, so the test writes the
    two files a git release 0.19.1+ keeps (gateway/lifecycle_ledger.py: {phase, pid, start_time}; the
    heartbeat with its ``mem``) for the live simulated gateway, then SIGKILLs it: no exit is recorded."""
    import json
    import time

    from tests.helpers import start_sim

    home = tmp_path / "hermes"
    sim = start_sim(home, "healthy").wait_running()
    (home / "state").mkdir(exist_ok=True)
    (home / "state" / "gateway.lifecycle.json").write_text(json.dumps(
        {"phase": "running", "pid": sim.pid, "start_time": time.time()}))
    (home / "state" / "gateway.heartbeat").write_text(json.dumps(
        {"pid": sim.pid, "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "monotonic": 1.0,
         "start_time": time.time(), "loop_tick_socket": False, "mem": {"rss_kib": 6 << 20}}))
    d = daemons(tmp_path / "wd", "--hermes-home", str(home), "--restart-with", "signal", "--interval", "1",
                "--window", "6", "--stack-with", "none")
    d.wait_event("FOUND", timeout=60)
    sim.kill()
    line = d.wait_event("unclean death", timeout=120)
    assert f"'running' for PID {sim.pid}" in line and "rss 6.0 GiB" in line, line
    v = wait_for(lambda: (d.gateway().get("verdict") or {}).get("signature") == "gateway-gone"
                 and d.gateway()["verdict"], timeout=60, what="status: gateway-gone")
    assert any("unclean death" in r for r in v["reasons"]), v
    assert line.count("unclean death") == 1  # said once


def test_a_ledger_that_recorded_the_exit_is_no_unclean_death(tmp_path: Path, daemons) -> None:
    import json
    import time

    from tests.helpers import start_sim

    home = tmp_path / "hermes"
    sim = start_sim(home, "healthy").wait_running()
    (home / "state").mkdir(exist_ok=True)
    (home / "state" / "gateway.lifecycle.json").write_text(json.dumps(
        {"phase": "exited", "pid": sim.pid, "start_time": time.time(), "exit_code": 0}))
    d = daemons(tmp_path / "wd", "--hermes-home", str(home), "--restart-with", "signal", "--interval", "1",
                "--window", "6", "--stack-with", "none")
    d.wait_event("FOUND", timeout=60)
    sim.kill()
    d.wait_event("gateway-gone", timeout=120)
    assert "unclean death" not in d.events()
