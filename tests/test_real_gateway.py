"""The real `hermes-watchdog run` daemon against the REAL WHOLE Hermes gateway from PyPI
(``python -m hermes_cli.main gateway run``, tests/realgateway.py), QQBot connected to a loopback fake server
(and, in one test, the real Telegram adapter to a loopback fake Bot API).
Faults are real ones of the real gateway (0.14.0's QQBot busy loop) or injected at run time by test-only
hooks loaded into the gateway process (tests/realhermes/gateway_inject.py): a synchronous call that blocks
the event loop, and heartbeat writes failing as on a full disk while the loop runs on.

Hermes 0.19.0 rewrites state/gateway.heartbeat every 30 s from its loop, so these tests watch with
--frozen-after 45 (one and a half periods: a healthy beat is never that old) and a short window. The 0.19.0
scenarios run side by side in one test (minutes, once); generous deadlines, polling, no sleeps.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
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


def test_0_19_healthy_blocked_and_failing_heartbeat_side_by_side(tmp_path, real_gateway, daemons) -> None:
    """Three real 0.19.0 gateways at once (one run of minutes, not three): one left alone must stay healthy
    for 60 s; one whose loop is blocked in a synchronous call must be loop-frozen, naming the call, and not
    killed (--frozen-action defaults to alert); one whose heartbeat writes fail as on a full disk while its
    loop runs must never be restarted, even with --frozen-action restart (upstream's own watchdog once
    killed such a healthy gateway, #90502)."""
    healthy, blocked, diskfull = (real_gateway("0.19.0") for _ in range(3))
    assert psutil.Process(healthy.pid).cmdline()[1:] == ["-m", "hermes_cli.main", "gateway", "run"]
    a = daemons(tmp_path / "state-a", "--hermes-home", str(healthy.home), "--hermes-home", str(blocked.home),
                *WATCH, *HEARTBEAT)
    b = daemons(tmp_path / "state-b", "--hermes-home", str(diskfull.home), *WATCH, *HEARTBEAT,
                "--frozen-action", "restart")

    def watching_healthy() -> bool:
        for d in (a, b):
            if d.proc.poll() is not None:
                raise AssertionError(f"the daemon exited ({d.proc.returncode}):\n{d.events()}")
        return all(d.gateway_at(gw.home).get("pid") == gw.pid
                   and (d.gateway_at(gw.home).get("verdict") or {}).get("signature") == "healthy"
                   for d, gw in ((a, healthy), (a, blocked), (b, diskfull)))

    wait_for(watching_healthy, LONG, what="the daemons to watch the three gateways and find them healthy")
    start = epoch(a.status().get("updated_at"))
    assert start is not None
    ack = blocked.inject("block")
    assert ack["loop_thread"] is True and ack["native_id"] == blocked.pid  # on the loop (main) thread
    assert all(s[0] == "injected_blocking_call" for s in blocked.loop_stacks()), blocked.loop_stacks()
    assert diskfull.inject("fail-heartbeat")["patched"] is True
    last_beat = diskfull.heartbeat_mtime()
    verdicts: set[str] = set()
    beats: list[dict] = []
    alerted: list[float] = []

    def all_seen() -> bool:
        verdicts.add((a.gateway_at(healthy.home).get("verdict") or {}).get("signature"))
        beat = healthy.heartbeat()
        if beat and (not beats or beat["monotonic"] != beats[-1]["monotonic"]):
            beats.append(beat)
        assert diskfull.alive(diskfull.pid), f"the gateway {diskfull.pid} was killed:\n{b.events()}"
        done = [f for f in a.incidents() if (f / "report.md").exists()]
        if done and not alerted:
            alerted.append(epoch(a.status().get("updated_at")) or 0.0)
        return (daemon_age(a, start) >= 60 and bool(alerted) and daemon_age(a, alerted[0]) >= 2 * WINDOW
                and heartbeat_age(b, diskfull) > FROZEN_AFTER + WINDOW + 10)

    wait_for(all_seen, LONG, what="60 s of watching, the blocked loop's alert and two windows after it, and the "
                                  "failed heartbeat stale beyond --frozen-after + window")
    # Healthy: nothing but healthy for 60 s by the daemon's clock; its real heartbeat every 30 s.
    assert verdicts == {"healthy"}, verdicts
    assert a.gateway_at(healthy.home)["pid"] == healthy.pid and healthy.alive(healthy.pid)
    assert a.gateway_at(healthy.home)["heartbeat"]["stale"] is False
    assert len(beats) >= 2 and {x["pid"] for x in beats} == {healthy.pid}
    gaps = [y["monotonic"] - x["monotonic"] for x, y in itertools.pairwise(beats)]
    assert all(g >= 29.9 for g in gaps), gaps
    # Blocked: one loop-frozen incident, on that gateway, naming the call, an alert and no kill.
    assert len(a.incidents()) == 1
    inc, folder = a.incident(), a.incidents()[-1]
    assert inc["signature"] == "loop-frozen" and inc["pid"] == blocked.pid, inc
    assert "injected_blocking_call" in json.dumps(inc["reasons"]), inc["reasons"]
    assert "injected_blocking_call" in (folder / "stack.txt").read_text()
    assert inc["action"]["kind"] == "alert" and not inc.get("restart")
    assert blocked.alive(blocked.pid) and a.gateway_at(blocked.home)["pid"] == blocked.pid
    assert " KILL " not in a.events() and " RESTART " not in a.events()
    # Failing heartbeat writes: stale, but the loop runs (idle in its selector): never restarted.
    assert diskfull.heartbeat_mtime() == last_beat  # the writes really failed
    assert any(s[0] == "EpollSelector.select" for s in diskfull.loop_stacks()), diskfull.loop_stacks()
    assert diskfull.alive(diskfull.pid) and b.gateway_at(diskfull.home)["pid"] == diskfull.pid
    assert not any((read_json(f / "incident.json") or {}).get("restart") for f in b.incidents())
    assert " KILL " not in b.events() and not b.gateway_at(diskfull.home).get("restart_history")
    assert diskfull.running_connected(diskfull.pid)
    assert healthy.network_refused() == blocked.network_refused() == diskfull.network_refused() == []


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


def test_0_19_gil_held_every_worker_busy_and_a_state_db_leak_side_by_side(tmp_path, real_gateway, daemons) -> None:
    """Three real 0.19.0 gateways. Two with faults run in the gateway's own agent pool (``hermes-gateway``, 10
    threads): in one, a worker holds the GIL in one C call (as a catastrophic regex does, #32079) so the loop
    never runs, its heartbeat goes stale while its stack samples show it in its selector; in another, twelve
    turns wait on a model API that never answers, every worker busy and two queued (#75548). In the third,
    under a soft RLIMIT_NOFILE lowered to 60 above what it holds (``ulimit -n``, set with prlimit), Hermes'
    own ``SessionDB`` is opened and never closed (#83512). Each is named (gil-held with two witnesses,
    workers-saturated, fd-exhaustion with state.db held most), alerted and not killed."""
    gil_gw, busy_gw, leak_gw = real_gateway("0.19.0"), real_gateway("0.19.0"), real_gateway("0.19.0")
    d = daemons(tmp_path / "state", *(a for gw in (gil_gw, busy_gw, leak_gw) for a in ("--hermes-home", str(gw.home))),
                *WATCH, *HEARTBEAT, "--workers-busy-after", "20", "--fd-action", "alert")

    def watching_healthy() -> bool:
        if d.proc.poll() is not None:
            raise AssertionError(f"the daemon exited ({d.proc.returncode}):\n{d.events()}")
        return all(d.gateway_at(gw.home).get("pid") == gw.pid
                   and (d.gateway_at(gw.home).get("verdict") or {}).get("signature") == "healthy"
                   for gw in (gil_gw, busy_gw, leak_gw))

    wait_for(watching_healthy, LONG, what="the daemon to watch the three gateways and find them healthy")
    held = len(os.listdir(f"/proc/{leak_gw.pid}/fd"))
    limit = held + 60
    _soft, hard = resource.prlimit(leak_gw.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(leak_gw.pid, resource.RLIMIT_NOFILE, (limit, hard))  # our own child
    assert leak_gw.inject("leak-state-db")["db"].endswith("state.db")
    ack = busy_gw.inject("saturate-workers")
    assert (ack["pool"], ack["max_workers"]) == ("hermes-gateway", 10), ack
    assert gil_gw.inject("hold-gil")["pool"] == "hermes-gateway"

    def by_signature() -> dict[str, dict]:
        got = {}
        for f in d.incidents():
            inc = read_json(f / "incident.json") or {}
            if inc.get("action"):
                got[inc.get("signature")] = inc
        return got

    want = {"gil-held", "workers-saturated", "fd-exhaustion"}
    got = wait_for(lambda: want <= set(by_signature()) and by_signature(), LONG,
                   what="a gil-held, a workers-saturated and an fd-exhaustion incident")
    gil, busy, fds = got["gil-held"], got["workers-saturated"], got["fd-exhaustion"]
    assert gil["pid"] == gil_gw.pid and busy["pid"] == busy_gw.pid and fds["pid"] == leak_gw.pid
    f = fds["verdict"]["evidence"]
    assert f["soft_limit"] == limit and f["open"] >= 0.8 * limit, f
    assert f["kinds"]["files"] > f["kinds"]["sockets"] and "state.db" in f["top_paths"][0]["path"], f
    v = gil["verdict"]
    assert v["witnesses"] == ["heartbeat", "gil"], v
    g = v["evidence"]["gil"]
    assert g["thread"].startswith("hermes-gateway_") and "injected_gil_holding_call" in g["call"], g
    assert g["loop_wakes_per_second"] is None or g["loop_wakes_per_second"] >= 50, g
    ev = busy["verdict"]["evidence"]
    assert (ev["pool"], ev["threads"], ev["busy"], ev["max_workers"]) == ("hermes-gateway", 10, 10, 10), ev
    assert ev["active_agents"] == 12 and "12 agent turns" in ev["full"], ev
    assert all("injected_model_wait" in c["call"] for c in ev["busy_calls"]), ev
    assert gil["action"]["kind"] == busy["action"]["kind"] == fds["action"]["kind"] == "alert"
    assert " KILL " not in d.events() and " RESTART " not in d.events()
    assert gil_gw.alive(gil_gw.pid) and busy_gw.alive(busy_gw.pid) and leak_gw.alive(leak_gw.pid)
    assert gil_gw.network_refused() == busy_gw.network_refused() == leak_gw.network_refused() == []


def test_0_19_telegram_adapter_holding_a_socket_its_bot_api_closed(tmp_path, real_gateway, daemons) -> None:
    """The real Telegram adapter of 0.19.0 (python-telegram-bot over httpx) polls a loopback fake Bot API through
    its own ``base_url``. Then the server starts closing every keep-alive connection left idle (a proxy or server
    with a short keep-alive, upstream #69314, #82920): the long poll, always busy, goes on, but the adapter's
    send pool keeps the socket the server closed in CLOSE_WAIT, unread, until something sends again (0.19.0's
    own get_me probe, every 90 s). Watched with --half-closed-after 20, under that probe, the gateway is named
    sockets-half-closed with the fake's endpoint and telegram connected, alerted, not killed. At the default
    (300 s, above the probe) the same gateway stays silent: bench/false_positives.py, profile telegram."""
    gw = real_gateway("0.19.0", telegram=True)
    tg = gw.telegram
    assert tg is not None
    d = watch(daemons, tmp_path, gw, "--half-closed-after", "20")
    polls = tg.stats()["methods"].get("getUpdates", 0)
    assert polls >= 1 and tg.stats()["methods"].get("getMe", 0) >= 1, tg.stats()
    tg.drop_idle()

    def half_closed() -> dict | None:
        for f in d.incidents():
            inc = read_json(f / "incident.json") or {}
            if inc.get("action") and inc.get("signature") == "sockets-half-closed":
                return inc
        if d.proc.poll() is not None:
            raise AssertionError(f"the daemon exited ({d.proc.returncode}):\n{d.events()}")
        return None

    inc = wait_for(half_closed, LONG, what="a sockets-half-closed incident")
    assert inc["pid"] == gw.pid
    ev = inc["verdict"]["evidence"]
    assert ev["held_long"] >= 1, ev
    held = [h for h in ev["half_closed"] if h["seconds"] >= 20]
    assert held and all(h["remote"] == f"127.0.0.1:{tg.port}" for h in held), ev
    assert {"telegram", "qqbot"} <= set(ev["platforms_connected"]), ev
    assert inc["action"]["kind"] == "alert" and " KILL " not in d.events() and " RESTART " not in d.events()
    assert tg.stats()["closed_by_server"] >= 1
    # The adapter kept polling all along: deaf only where it would next send.
    wait_for(lambda: tg.stats()["methods"].get("getUpdates", 0) > polls + 2, LONG, what="the long poll going on")
    assert gw.alive(gw.pid) and gw.network_refused() == []
