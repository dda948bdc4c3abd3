"""The real `hermes-watchdog run` daemon against the REAL WHOLE Hermes gateway from PyPI
(``python -m hermes_cli.main gateway run``, tests/realgateway.py), QQBot connected to a loopback fake server.
Faults are real ones of the real gateway (0.14.0's QQBot busy loop) or injected at run time by test-only
hooks loaded into the gateway process (tests/realhermes/gateway_inject.py): a synchronous call that blocks
the event loop, and heartbeat writes failing as on a full disk while the loop runs on.

Hermes 0.19.0 rewrites state/gateway.heartbeat every 30 s from its loop, so these tests watch with
--frozen-after 45 (one and a half periods: a healthy beat is never that old) and a short window. They take
minutes each: one gateway per test, generous deadlines, polling, no sleeps.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
from pathlib import Path

import psutil

from tests.helpers import epoch, read_json, wait_for

FROZEN_AFTER = 45.0
WINDOW = 10.0
# Every number here is only a bound on waiting for something to happen, never on how fast it happens.
LONG = 400.0
WATCH = ("--interval", "1", "--window", str(int(WINDOW)), "--restart-with", "signal", "--grace", "5",
         "--cooldown", "0", "--start-timeout", "120")
HEARTBEAT = ("--frozen-after", str(int(FROZEN_AFTER)))


def watch(daemons, tmp_path: Path, gw, *extra: str):  # type: ignore[no-untyped-def]
    d = daemons(tmp_path / "state", "--hermes-home", str(gw.home), *WATCH, *extra)

    def watching_healthy() -> bool:
        if d.proc.poll() is not None:
            raise AssertionError(f"the daemon exited ({d.proc.returncode}):\n{d.events()}")
        return d.gateway().get("pid") == gw.pid and (d.gateway().get("verdict") or {}).get("signature") == "healthy"

    wait_for(watching_healthy, LONG, what=f"the daemon to watch gateway {gw.pid} and find it healthy")
    return d


def daemon_age(d, since: float) -> float:  # type: ignore[no-untyped-def]
    """Seconds since ``since`` (epoch) by the daemon's own clock (its state.json updated_at)."""
    now = epoch(d.status().get("updated_at"))
    return (now - since) if now is not None else 0.0


def heartbeat_age(d, gw) -> float:  # type: ignore[no-untyped-def]
    """How old the gateway's last heartbeat is, by the daemon's clock: what the daemon had in front of it."""
    beat = epoch((gw.heartbeat() or {}).get("updated_at"))
    return daemon_age(d, beat) if beat is not None else 0.0


def test_0_19_healthy_whole_gateway_stays_healthy(tmp_path, real_gateway, daemons) -> None:
    gw = real_gateway("0.19.0")
    pid = gw.pid
    assert psutil.Process(pid).cmdline()[1:] == ["-m", "hermes_cli.main", "gateway", "run"]
    d = watch(daemons, tmp_path, gw, *HEARTBEAT)
    start = epoch(d.status().get("updated_at"))
    assert start is not None
    verdicts: set[str] = set()
    beats: list[dict] = []

    def ninety_seconds_watched() -> bool:
        verdicts.add((d.gateway().get("verdict") or {}).get("signature"))
        beat = gw.heartbeat()
        if beat and (not beats or beat["monotonic"] != beats[-1]["monotonic"]):
            beats.append(beat)
        return daemon_age(d, start) >= 90

    wait_for(ninety_seconds_watched, LONG, what="90 s of watching by the daemon's clock")
    assert verdicts == {"healthy"}, verdicts
    assert d.gateway()["pid"] == pid and gw.alive(pid) and not d.incidents()
    assert " ALERT " not in d.events() and " KILL " not in d.events()
    assert d.gateway()["heartbeat"]["stale"] is False
    # The real 0.19.0 heartbeat: this PID's, rewritten from the loop every 30 s (never sooner).
    assert len(beats) >= 3 and {b["pid"] for b in beats} == {pid}
    gaps = [b["monotonic"] - a["monotonic"] for a, b in itertools.pairwise(beats)]
    assert all(g >= 29.9 for g in gaps), gaps
    assert gw.network_refused() == []  # the whole gateway needed nothing but 127.0.0.1


def test_0_19_blocked_loop_is_loop_frozen_names_the_blocking_call_and_is_not_killed(
        tmp_path, real_gateway, daemons) -> None:
    gw = real_gateway("0.19.0")
    pid = gw.pid
    d = watch(daemons, tmp_path, gw, *HEARTBEAT)
    ack = gw.inject("block")
    assert ack["loop_thread"] is True and ack["native_id"] == pid  # the call runs on the loop (main) thread
    assert all(s[0] == "injected_blocking_call" for s in gw.loop_stacks()), gw.loop_stacks()
    wait_for(lambda: d.incidents() and d.incident().get("signature") == "loop-frozen"
             and (d.incidents()[-1] / "report.md").exists(), LONG, what="a loop-frozen incident, written whole")
    inc = d.incident()
    folder = d.incidents()[-1]
    assert inc["pid"] == pid
    # The verdict itself names what holds the loop thread, not only a dump of every thread.
    assert "injected_blocking_call" in json.dumps(inc["reasons"]), inc["reasons"]
    assert "injected_blocking_call" in (folder / "stack.txt").read_text()
    assert inc["action"]["kind"] == "alert"  # --frozen-action defaults to alert: no kill
    assert heartbeat_age(d, gw) > FROZEN_AFTER
    # Two more windows after the alert: still no kill.
    alerted = epoch(d.status().get("updated_at"))
    assert alerted is not None
    wait_for(lambda: daemon_age(d, alerted) >= 2 * WINDOW, LONG, what="two more windows of watching")
    assert gw.alive(pid) and d.gateway()["pid"] == pid and len(d.incidents()) == 1
    assert not d.incident().get("restart") and " KILL " not in d.events()


def test_0_19_failing_heartbeat_writes_with_a_running_loop_are_never_restarted(
        tmp_path, real_gateway, daemons) -> None:
    """A full disk stops the heartbeat but not the loop (upstream's own watchdog once killed such a healthy
    gateway, #90502): even with --frozen-action restart the watchdog must leave it alone."""
    gw = real_gateway("0.19.0")
    pid = gw.pid
    d = watch(daemons, tmp_path, gw, *HEARTBEAT, "--frozen-action", "restart")
    assert gw.inject("fail-heartbeat")["patched"] is True
    last_beat = gw.heartbeat_mtime()

    def stale_for_a_window_and_more() -> bool:
        assert gw.alive(pid), f"the gateway {pid} was killed:\n{d.events()}"
        return heartbeat_age(d, gw) > FROZEN_AFTER + WINDOW + 10

    wait_for(stale_for_a_window_and_more, LONG, what="the heartbeat to be stale beyond --frozen-after + window")
    assert gw.heartbeat_mtime() == last_beat  # the writes really failed
    # ... while the loop runs: idle in its selector, as a healthy loop is between events.
    assert any(s[0] == "EpollSelector.select" for s in gw.loop_stacks()), gw.loop_stacks()
    assert gw.alive(pid) and d.gateway()["pid"] == pid
    assert not any((read_json(f / "incident.json") or {}).get("restart") for f in d.incidents())
    assert " KILL " not in d.events() and not d.gateway().get("restart_history")
    assert gw.running_connected(pid)


def test_0_14_whole_gateway_qqbot_spin_is_busy_loop_and_restarted(tmp_path, real_gateway, daemons) -> None:
    # HERMES_WATCHDOG_PATCHES=0: the cached venv is shared, and a busy-loop patch left in it must not hide
    # the bug.
    gw = real_gateway("0.14.0", supervised=True, extra_env={"HERMES_WATCHDOG_PATCHES": "0"})
    old = gw.pid
    d = watch(daemons, tmp_path, gw)
    gw.fake.close_sockets()  # 4009, then GET /gateway fails: the reconnect leaves a closed socket behind
    wait_for(lambda: d.incidents() and d.incident().get("result") == "restarted", LONG,
             what="the busy loop to be restarted and the restart verified")
    inc = d.incident()
    assert inc["signature"] == "busy-loop" and inc["pid"] == old
    assert inc["restart"]["signals"] == ["SIGTERM", "SIGKILL"]  # the spinning loop never runs its SIGTERM handler
    assert inc["verify"]["sigkill_needed"] is True
    assert "QQAdapter._listen_loop" in (d.incidents()[-1] / "stack.txt").read_text()
    assert not gw.alive(old) and gw.launches == 2
    new = gw.pid
    assert inc["new_pid"] == new != old
    gw.wait_ready(pid=new)
    assert gw.network_refused() == []


def test_harness_passes_extra_env_and_pth_hooks_to_the_whole_gateway(real_gateway) -> None:
    """For tests that need the gateway started with their own hooks (e.g. faulthandler on a signal)."""
    hook = "import faulthandler, signal; faulthandler.register(signal.SIGUSR2, all_threads=True, chain=False)\n"
    gw = real_gateway("0.14.0", extra_env={"PYTHONFAULTHANDLER": "1"}, pth={"test-faulthandler": hook})
    assert b"PYTHONFAULTHANDLER=1" in Path(f"/proc/{gw.pid}/environ").read_bytes()
    os.kill(gw.pid, signal.SIGUSR2)  # our own child, started by this test
    wait_for(lambda: "hermes_cli/main.py" in gw.out() and "in run_gateway" in gw.out(),
             what="the faulthandler dump of every thread")
    assert gw.alive() and gw.running_connected()
