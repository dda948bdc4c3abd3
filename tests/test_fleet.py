"""Issue 7: several gateways (profiles) in one daemon, Prometheus metrics, notifications, heartbeat.

Real processes throughout: simulated gateways (one under the relaunching supervisor that stands in for
launchd KeepAlive / systemd Restart=always), the real `hermes-watchdog run`, a real HTTP scrape of
/metrics on 127.0.0.1 parsed with prometheus_client.parser, a real webhook receiver on 127.0.0.1 and a
real notify command reading its stdin.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hermes_watchdog.sim.gateway import PLANTED_SECRETS
from tests.helpers import DaemonProc, events, read_json, signals_received, wait_for

FAST = ("--interval", "0.5", "--window", "3", "--grace", "1", "--cooldown", "0", "--start-timeout", "30",
        "--restart-with", "signal", "--loop-proof", "3")


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records each POSTed JSON body; hang=True holds every request
    open (no response) until released, as a dead or overloaded endpoint would."""

    def __init__(self, hang: bool = False) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.bodies.append(json.loads(body))
                if hang:
                    outer.release.wait(60)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kinds(self) -> list[str]:
        return [b["event"] for b in self.bodies]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(m: dict, name: str, **labels: str) -> float | None:
    return m.get((name, tuple(sorted(labels.items()))))


def _scrape(d: DaemonProc) -> dict:
    url = wait_for(lambda: (d.status().get("daemon") or {}).get("metrics_url"), what="the metrics URL")
    assert url.startswith("http://127.0.0.1:"), url  # loopback unless --metrics-host says otherwise
    with urllib.request.urlopen(url, timeout=10) as resp:
        return _metrics(resp.read().decode())


def _notify_script(tmp_path: Path) -> tuple[str, Path]:
    out = tmp_path / "notified.jsonl"
    script = tmp_path / "notify.py"
    script.write_text("import json, sys\n"
                      "msg = json.loads(sys.stdin.read())\n"
                      f"open({str(out)!r}, 'a').write(json.dumps(msg) + '\\n')\n")
    return f"{sys.executable} {script}", out


def _lines(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    except OSError:
        return []


def test_profiles_only_the_spinning_one_restarts_and_one_message_each(
        tmp_path, isolated_home, sim, supervised, daemons, receiver):
    base = isolated_home / ".hermes"
    alpha, beta = base / "profiles" / "alpha", base / "profiles" / "beta"
    calm = sim("healthy", "--extra-platforms", "telegram", home=alpha).wait_running()
    spinning = supervised(beta, "--mode", "spin", "--spin-after", "1", "--hook",
                          "--spin-once-marker", str(tmp_path / "spun"))
    first = spinning.wait_running()
    command, notified = _notify_script(tmp_path)
    d = daemons(tmp_path / "state", "--all-profiles", *FAST, "--notify-webhook", receiver.url,
                "--notify-command", command, "--metrics-port", "0")

    spinning.wait_running(launches=2)
    d.wait_event("restart verified")
    wait_for(lambda: "recovery" in receiver.kinds(), what="the recovery message")
    wait_for(lambda: len(_lines(notified)) >= 2, what="the notify command to get two messages")

    gws = {g["profile"]: g for g in d.status()["gateways"]}
    assert gws["beta"]["restart_history"][-1]["result"] == "restarted"
    assert gws["beta"]["restart_history"][-1]["pid"] == first
    assert gws["alpha"]["restart_history"] == [] and gws["alpha"]["pid"] == calm.pid
    assert calm.proc.poll() is None  # the healthy profile's gateway was never signalled

    # Exactly one incident and one recovery message, both about beta, both redacted.
    # A whole window of the new gateway, healthy, in which a duplicate message would have gone out.
    wait_for(lambda: d.settled_healthy(3.0, "beta"), what="beta's new gateway watched healthy for a window")
    assert receiver.kinds() == ["incident", "recovery"], receiver.bodies
    inc, rec = receiver.bodies
    assert inc["profile"] == "beta" and inc["signature"] == "busy-loop" and inc["action"] == "restart"
    assert inc["pid"] == first and rec["result"] == "restarted" and rec["new_pid"] == spinning.child
    assert [m["event"] for m in _lines(notified)] == ["incident", "recovery"]
    assert _lines(notified)[0]["summary"] == inc["summary"]
    raw = json.dumps(receiver.bodies) + notified.read_text()
    assert not [s for s in PLANTED_SECRETS if s in raw]
    assert str(isolated_home) not in raw  # the home directory is shown as ~

    m = _scrape(d)
    assert _value(m, "hermes_watchdog_restarts_total", profile="beta", signature="busy-loop", result="restarted") == 1
    assert _value(m, "hermes_watchdog_restarts_total", profile="alpha", signature="busy-loop",
                  result="restarted") == 0
    assert _value(m, "hermes_watchdog_platform_connected", profile="alpha", platform="telegram") == 1
    assert _value(m, "hermes_watchdog_restart_budget_remaining", profile="beta") == 2
    assert _value(m, "hermes_watchdog_restart_budget_remaining", profile="alpha") == 3

    # A profile created while the daemon runs is picked up.
    gamma = base / "profiles" / "gamma"
    late = sim("healthy", home=gamma).wait_running()
    d.wait_event("now watching")
    wait_for(lambda: any(g["profile"] == "gamma" and g["pid"] == late.pid for g in d.status()["gateways"]),
             what="the new profile's gateway in state.json")
    wait_for(lambda: _value(_scrape(d), "hermes_watchdog_gateway_up", profile="gamma") == 1,
             what="gamma in the metrics")
    # ... and one removed while it runs is dropped.
    late.kill()
    shutil.rmtree(gamma)
    d.wait_event("no longer watched")
    wait_for(lambda: _value(_scrape(d), "hermes_watchdog_gateway_up", profile="gamma") is None,
             what="gamma gone from the metrics")
    assert {g["profile"] for g in d.status()["gateways"]} == {None, "alpha", "beta"}


def test_metrics_scrape_and_textfile_match_the_gateways(tmp_path, isolated_home, sim, daemons):
    base = isolated_home / ".hermes"
    ok = sim("healthy", "--extra-platforms", "telegram,slack", home=base).wait_running()
    bad = sim("spin", "--spin-after", "0.5", home=base / "profiles" / "qq").wait_running().wait_spinning()
    textfile = tmp_path / "prom" / "hermes.prom"
    textfile.parent.mkdir()
    d = daemons(tmp_path / "state", "--all-profiles", "--interval", "0.5", "--window", "2", "--dry-run",
                "--metrics-port", "0", "--metrics-textfile", str(textfile))
    d.wait_event("DRY-RUN")

    def check(m: dict) -> None:
        assert _value(m, "hermes_watchdog_gateway_up", profile="default") == 1
        assert _value(m, "hermes_watchdog_gateway_up", profile="qq") == 1
        for p in ("qqbot", "telegram", "slack"):
            assert _value(m, "hermes_watchdog_platform_connected", profile="default", platform=p) == 1
        assert _value(m, "hermes_watchdog_platform_connected", profile="qq", platform="qqbot") == 0
        assert _value(m, "hermes_watchdog_verdict", profile="qq", signature="busy-loop") == 1
        assert _value(m, "hermes_watchdog_verdict", profile="qq", signature="healthy") == 0
        assert _value(m, "hermes_watchdog_verdict", profile="default", signature="healthy") == 1
        # One spinning core. On a loaded machine it gets less CPU time than it wants; its run-queue demand
        # (Linux) says what it wants either way, and CPU time is there beside it.
        assert _value(m, "hermes_watchdog_gateway_cpu_cores", profile="qq") > 0.05
        assert _value(m, "hermes_watchdog_gateway_hot_thread_cores", profile="qq") > 0.05
        assert _value(m, "hermes_watchdog_gateway_hot_thread_demand_cores", profile="qq") > 0.5
        assert _value(m, "hermes_watchdog_gateway_cpu_demand_cores", profile="qq") > 0.5
        assert _value(m, "hermes_watchdog_gateway_cpu_cores", profile="default") < 0.3
        assert _value(m, "hermes_watchdog_gateway_hot_thread_demand_cores", profile="default") < 0.3
        assert _value(m, "hermes_watchdog_incidents_total", profile="qq", signature="busy-loop") == 1
        assert _value(m, "hermes_watchdog_stack_captures_total", profile="qq", result="captured") == 1
        assert _value(m, "hermes_watchdog_restarts_total", profile="qq", signature="busy-loop",
                      result="restarted") == 0  # dry run: decided, not done
        assert abs(_value(m, "hermes_watchdog_last_tick_timestamp_seconds") - time.time()) < 30

    # The event is logged mid-tick; the metrics are published at the end of that tick.
    wait_for(lambda: _value(_scrape(d), "hermes_watchdog_incidents_total", profile="qq", signature="busy-loop"),
             what="the incident in the metrics")
    check(_scrape(d))
    check(_metrics(textfile.read_text()))
    # node_exporter must never read a half-written file: it reads *.prom, and the writer's temp file is named
    # hermes.prom.<pid>.<thread> while it writes (the daemon keeps writing here), gone once renamed.
    assert [p.name for p in textfile.parent.iterdir() if p.name.endswith(".prom")] == ["hermes.prom"]
    wait_for(lambda: [p.name for p in textfile.parent.iterdir()] == ["hermes.prom"], timeout=30,
             what="no temp file left between two writes")
    assert ok.proc.poll() is None and bad.proc.poll() is None
    # Without a heartbeat file (Hermes < 0.19) nothing is said about heartbeats anywhere.
    assert "heartbeat" not in textfile.read_text()
    assert "heartbeat" not in d.events().lower()


def test_a_hanging_webhook_never_delays_the_tick(tmp_path, sim, supervised, daemons):
    hung = Receiver(hang=True)
    try:
        home = tmp_path / "hermes"
        gw = supervised(home, "--mode", "spin", "--spin-after", "1", "--hook",
                        "--spin-once-marker", str(tmp_path / "spun"))
        gw.wait_running()
        textfile = tmp_path / "m.prom"
        d = daemons(tmp_path / "state", "--hermes-home", str(home), *FAST, "--notify-webhook", hung.url,
                    "--notify-timeout", "50", "--notify-retries", "0", "--metrics-textfile", str(textfile))
        wait_for(lambda: hung.bodies, what="the incident message to reach the hanging receiver")
        # While the receiver holds the request open (until the test releases it), the daemon goes on:
        # it restarts and verifies the gateway, and keeps ticking. An order of events, not a timing.
        d.wait_event("restart verified")
        seen: set[float | None] = set()

        def ticks() -> int:
            seen.add(_value(_metrics(textfile.read_text()), "hermes_watchdog_last_tick_timestamp_seconds"))
            return len(seen - {None})

        wait_for(lambda: ticks() >= 4, what="four more ticks while the webhook is held")
        assert not hung.release.is_set() and hung.kinds() == ["incident"]  # still held: no tick waited on it
        assert "not delivered" not in d.events()
        hung.release.set()  # the channel then goes on with the message queued behind the held one
        wait_for(lambda: hung.kinds() == ["incident", "recovery"], what="the recovery message after the release")
    finally:
        hung.close()


def test_heartbeat_stale_gives_loop_frozen_and_a_fresh_one_is_reported(tmp_path, sim, daemons):
    """Hermes >= 0.19 writes state/gateway.heartbeat from its loop: a frozen loop (CPU idle, platforms
    connected, nothing else amiss) is seen only through it."""
    home = tmp_path / "frozen"
    received = tmp_path / "frozen-signals"
    frozen = sim("frozen", "--spin-after", "1", "--heartbeat-period", "0.5", "--signal-log", str(received),
                 home=home).wait_running()
    fresh_home = tmp_path / "fresh"
    fresh = sim("healthy", "--heartbeat-period", "0.5", home=fresh_home).wait_running()
    wait_for(lambda: any(e["event"] == "frozen" for e in events(home)), what="the loop to freeze")
    d = daemons(tmp_path / "state", "--hermes-home", str(home), "--hermes-home", str(fresh_home),
                "--interval", "0.5", "--window", "2", "--heartbeat-stale", "2", "--restart-with", "signal",
                "--metrics-port", "0")
    d.wait_event("ALERT")
    inc = d.incident()
    assert inc["signature"] == "loop-frozen" and inc["action"]["kind"] == "alert"
    assert any("heartbeat" in r and "not running" in r for r in inc["reasons"])
    # Alert only by default (--frozen-action restart would restart it): no signal reached the gateway.
    assert frozen.proc.poll() is None and signals_received(received) == []
    assert inc["release"]["family"] == "0.19.0-0.20.x (heartbeat on the loop, version not read)", inc["release"]
    assert "| Hermes release family | 0.19.0-0.20.x" in (d.incidents()[0] / "report.md").read_text()
    gws = {Path(g["home"]).name: g for g in d.status()["gateways"]}
    assert gws["frozen"]["heartbeat"]["stale"] is True
    assert gws["fresh"]["heartbeat"]["stale"] is False and gws["fresh"]["verdict"]["signature"] == "healthy"
    # No version to read, a heartbeat without the off-loop flag: the family its writer proves (issue 19).
    on_loop = "0.19.0-0.20.x (heartbeat on the loop, version not read)"
    assert gws["fresh"]["release"] == {**gws["fresh"]["release"], "family": on_loop, "heartbeat_writer": "loop"}
    assert gws["fresh"]["release"]["from"] == "heartbeat payload without the loop_tick_socket flag"
    from tests.helpers import cli

    shown = cli("status", "--state-dir", str(d.state_dir)).out
    assert f"Hermes release family: {on_loop} (recognised from: heartbeat payload without" in shown, shown
    m = _scrape(d)
    ages = {k[1]: v for k, v in m.items() if k[0] == "hermes_watchdog_heartbeat_age_seconds"}
    assert len(ages) == 2 and max(ages.values()) > 2 > min(ages.values())
    assert fresh.proc.poll() is None and signals_received(received) == []
    # The record is live: a SIGTERM to the frozen gateway is written down (and ignored by its frozen loop).
    frozen.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: signals_received(received) == ["SIGTERM"], what="the SIGTERM in the frozen gateway's record")


def test_diagnose_reports_a_stale_heartbeat(tmp_path, sim):
    from tests.helpers import cli

    home = tmp_path / "hermes"
    s = sim("frozen", "--spin-after", "0.5", "--heartbeat-period", "0.3", home=home).wait_running()
    wait_for(lambda: any(e["event"] == "frozen" for e in events(home)), what="the loop to freeze")
    beat = read_json(home / "state" / "gateway.heartbeat")
    assert beat and beat["pid"] == s.pid
    r = cli("diagnose", str(s.pid), "--seconds", "1.5", "--json", "--hermes-home", str(home),
            "--heartbeat-stale", "1")
    assert r.code == 1, r.err  # a failure signature found
    rec = r.json()
    assert rec["heartbeat"]["pid"] == s.pid and rec["heartbeat"]["stale"] is True
    assert rec["heartbeat"]["age_seconds"] > 1
    assert rec["verdict"]["signature"] == "loop-frozen"
    assert any("heartbeat" in x and "not running" in x for x in rec["verdict"]["reasons"])
    # With the default (two missed 30 s beats) the same heartbeat is only reported, not a verdict.
    r = cli("diagnose", str(s.pid), "--seconds", "0.5", "--hermes-home", str(home))
    assert "event-loop heartbeat" in r.out and "loop-frozen" not in r.out


def test_frozen_action_restart_restarts_a_frozen_loop(tmp_path, supervised, daemons):
    """With --frozen-action restart a frozen loop is restarted like a busy loop: SIGTERM is ignored (the
    loop that would handle it is blocked), so SIGKILL after the grace, then the relaunch is verified."""
    home = tmp_path / "hermes"
    sup = supervised(home, "--mode", "frozen", "--spin-after", "1", "--heartbeat-period", "0.5",
                     "--spin-once-marker", str(tmp_path / "froze"))
    old = sup.wait_running()
    wait_for(lambda: any(e["event"] == "frozen" for e in events(home)), what="the loop to freeze")
    d = daemons(tmp_path / "state", "--hermes-home", str(home), *FAST, "--heartbeat-stale", "2",
                "--frozen-action", "restart")
    d.wait_event("restart verified")
    inc = d.incident()
    assert inc["signature"] == "loop-frozen" and inc["restart"]["signals"] == ["SIGTERM", "SIGKILL"]
    assert sup.launches == 2 and sup.child != old
    assert not [e for e in events(home) if e["event"] == "frozen" and e["pid"] == sup.child]  # fixed for good
