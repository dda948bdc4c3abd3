"""Alive but deaf beyond descriptors and sockets, on real processes: every agent worker of the simulated
gateway's pool (Hermes 0.19.0's: 10 threads named ``hermes-gateway``) waits on a model API that never
answers while more turns queue (workers-saturated), or a worker holds the GIL in a catastrophic regex so the
loop, runnable, never runs (gil-held). The real daemon, the real py-spy; thresholds shortened by flags;
every wait is a poll."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.helpers import Supervised, start_supervised, wait_for

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="py-spy without root, schedstat")


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
def test_every_agent_worker_stuck_is_workers_saturated_alerted_not_restarted(
        tmp_path: Path, supervised, daemons) -> None:
    home = tmp_path / "hermes"
    sup = supervised(home, "--mode", "healthy", "--stuck-agents", "12")
    pid = sup.wait_running()
    d = daemons(tmp_path / "wd", "--hermes-home", str(home), "--restart-with", "signal", "--interval", "1",
                "--window", "6", "--workers-busy-after", "20")
    d.wait_event("ALERT", timeout=180)
    inc = d.incident(0)
    v = inc["verdict"]
    assert v["signature"] == "workers-saturated", v
    ev = v["evidence"]
    assert ev["pool"] == "hermes-gateway" and ev["threads"] == 10 and ev["busy"] == 10, ev
    assert ev["active_agents"] == 12 and "12 agent turns" in ev["full"] and ev["seconds"] >= 20, ev
    assert all("_run_conversation" in c["call"] for c in ev["busy_calls"]), ev
    assert inc["action"]["kind"] == "alert" and "--deaf-action restart" in inc["action"]["why"]
    assert "RESTART" not in d.events() and psutil.pid_exists(pid) and sup.launches == 1
    deaf = wait_for(lambda: (d.gateway().get("deaf") or {}).get("agent_workers_busy") == 10 and d.gateway()["deaf"],
                    timeout=60, what="the busy workers in state.json")
    assert deaf["agent_workers"] == 10


@linux_only
def test_a_worker_holding_the_gil_is_gil_held_naming_the_thread(tmp_path: Path, supervised, daemons) -> None:
    """Hermes 0.19.0's heartbeat, written on the loop, goes stale; the loop thread's stack samples show it in
    its selector (it waits there for the GIL), which alone would veto a frozen loop; the all-thread dumps
    show another thread holding the GIL in one call, and the loop thread's wake-ups say it asks for it."""
    home = tmp_path / "hermes"
    sup = supervised(home, "--mode", "healthy", "--release", "0.19.0", "--heartbeat-period", "5",
                     "--hold-gil-after", "3")
    pid = sup.wait_running()
    d = daemons(tmp_path / "wd", "--hermes-home", str(home), "--restart-with", "signal", "--frozen-after", "20")
    d.wait_event("ALERT", timeout=240)
    inc = d.incident(0)
    v = inc["verdict"]
    assert v["signature"] == "gil-held", v
    assert v["witnesses"] == ["heartbeat", "gil"], v
    g = v["evidence"]["gil"]
    assert g["thread"].startswith("hermes-gateway_") and "fullmatch" in g["call"] and g["dumps"] >= 3, g
    assert g["loop_wakes_per_second"] is None or g["loop_wakes_per_second"] >= 50, g
    assert "fullmatch" in (v["blocking_frame"] or ""), v
    # Alert by default, as loop-frozen: --frozen-action restart would restart on these two witnesses.
    assert inc["action"]["kind"] == "alert" and "--frozen-action restart" in inc["action"]["why"]
    assert "RESTART" not in d.events() and psutil.pid_exists(pid) and sup.launches == 1
