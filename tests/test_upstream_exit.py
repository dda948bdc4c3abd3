"""Hermes' own watchdog ends the gateway with exit 75 and restart_requested (git releases 0.19.1+), with real
processes: the simulated gateway exits the way upstream's in-process loop watchdog does
(``--upstream-exit-after``). Nothing is done twice: a manager's relaunch is verified, no restart of ours;
with nothing to relaunch it, the watchdog starts it through --restart-with command after the start
timeout and says why; with --restart-with signal it cannot, says so and alerts."""

from __future__ import annotations

import contextlib
import os
import signal

import psutil

from tests.helpers import events, standin_calls, standin_env, wait_for

FAST = ("--interval", "0.5", "--window", "3", "--grace", "1", "--cooldown", "0")
EXIT_AFTER = "6"  # seconds after start: the daemon has found the gateway by then on any machine


def _exited(home, pid: int) -> bool:
    return any(e["event"] == "upstream-exit" and e["pid"] == pid for e in events(home))


def test_a_relaunch_by_the_manager_is_verified_and_nothing_is_done_twice(tmp_path, supervised, daemons) -> None:
    home = tmp_path / "hermes"
    # systemd relaunches 5 s after an exit (RestartSec=5, RestartForceExitStatus=75): 2 s here.
    sup = supervised(home, "--upstream-exit-after", EXIT_AFTER, "--spin-once-marker", str(tmp_path / "exited"),
                     relaunch_delay=2.0)
    old = sup.wait_running()
    log = tmp_path / "calls.jsonl"
    d = daemons(tmp_path / "state", "--hermes-home", str(home), "--restart-with", "command", "--restart-command",
                f"start-gateway --hermes-home {home}", "--start-timeout", "30", *FAST, env=standin_env(log, None))
    d.wait_event(f"gateway PID {old}")
    wait_for(lambda: _exited(home, old), what="the gateway's own watchdog to end it")
    wait_for(lambda: d.incidents() and d.incident().get("result") == "relaunched", what="the relaunch verified")
    inc = d.incident()
    assert inc["signature"] == "gateway-gone" and inc["pid"] == old
    assert inc["new_pid"] == sup.child != old and inc["verify"]["ok"] is True
    assert any("loop_liveness_watchdog" in r and "restart_requested" in r for r in inc["reasons"])
    assert inc["restart"] is None and inc["action"]["kind"] == "wait"  # nothing asked of any manager
    # A whole further window of the relaunched gateway: still one relaunch, no command, no signal.
    wait_for(lambda: d.settled_healthy(3.0), what="the relaunched gateway to be watched healthy for a window")
    assert sup.launches == 2 and standin_calls(log) == [] and len(d.incidents()) == 1
    text = d.events()
    assert " EXIT " in text and " RESTART " not in text and " START [" not in text and " KILL " not in text
    assert "report.md" in {p.name for p in d.incidents()[0].iterdir()}


def test_nothing_relaunches_it_so_the_watchdog_starts_it_after_the_start_timeout(tmp_path, sim, daemons) -> None:
    home = tmp_path / "hermes"
    marker = tmp_path / "exited"
    # `hermes gateway run` in a terminal: no manager at all.
    g = sim("healthy", "--upstream-exit-after", EXIT_AFTER, "--spin-once-marker", str(marker), home=home)
    g.wait_running()
    log = tmp_path / "calls.jsonl"
    d = daemons(tmp_path / "state", "--hermes-home", str(home), "--restart-with", "command", "--restart-command",
                f"start-gateway --hermes-home {home} --spin-once-marker {marker}", "--start-timeout", "4", *FAST,
                env=standin_env(log, None))
    started: list[int] = []
    try:
        d.wait_event(f"gateway PID {g.pid}")
        wait_for(lambda: g.proc.poll() is not None, what="the gateway's own watchdog to end it")
        assert g.proc.returncode == 75
        wait_for(lambda: d.incidents() and d.incident().get("result") == "started", what="a start, verified")
        started = [c["started"] for c in standin_calls(log) if "started" in c]
        inc = d.incident()
        assert [c["argv"] for c in standin_calls(log) if "argv" in c] == [
            ["--hermes-home", str(home), "--spin-once-marker", str(marker)]]
        assert inc["pid"] == g.pid and inc["new_pid"] == started[0] and inc["verify"]["ok"] is True
        assert inc["restart"]["manager"] == "command" and inc["restart"]["ok"] is True
        assert inc["action"]["kind"] == "start"
        said = " ".join(inc["timeline"])
        assert "nothing relaunched it within the start timeout (4 s)" in said and "#94540" in said
        text = d.events()
        assert " START [" in text and "nothing relaunched it within the start timeout" in text
        assert " KILL " not in text
        wait_for(lambda: d.settled_healthy(3.0), what="the started gateway to be watched healthy for a window")
        assert len(started) == 1 and len(d.incidents()) == 1
        assert d.gateway()["budget"]["used"] == 1  # a start of ours counts in the budget
    finally:
        for pid in started or [c.get("started") for c in standin_calls(log) if c.get("started")]:
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_with_signals_only_nothing_can_start_it_and_it_says_so(tmp_path, sim, daemons) -> None:
    home = tmp_path / "hermes"
    g = sim("healthy", "--upstream-exit-after", EXIT_AFTER, home=home)
    g.wait_running()
    d = daemons(tmp_path / "state", "--hermes-home", str(home), "--restart-with", "signal", "--start-timeout", "3",
                *FAST)
    d.wait_event(f"gateway PID {g.pid}")
    wait_for(lambda: d.incidents() and d.incident().get("result") == "not-started", what="the alert")
    inc = d.incident()
    assert inc["action"]["kind"] == "alert" and "can stop a gateway but not start one" in inc["action"]["why"]
    assert inc["restart"] is None and " ALERT " in d.events() and " START [" not in d.events()
    # Still watching: a gateway started by hand is found, and the alert closes.
    g2 = sim("healthy", home=home).wait_running()
    d.wait_event(f"gateway PID {g2.pid}")
    wait_for(lambda: any("closed: recovered" in t for t in d.incident().get("timeline") or []),
             what="the alert to close once a gateway runs again")
    assert d.proc.poll() is None and len(d.incidents()) == 1
