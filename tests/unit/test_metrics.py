"""Metric families from plain data, the notification message, and config checks for issue 7."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hermes_watchdog import config
from hermes_watchdog.errors import UserError
from hermes_watchdog.record import metrics, notifications
from hermes_watchdog.record.delivery import WebhookChannel
from hermes_watchdog.sim.gateway import PLANTED_SECRETS


def render(snap: metrics.Snapshot) -> dict:
    class C:
        def collect(self):  # type: ignore[no-untyped-def]
            return metrics.families(snap)

    reg = CollectorRegistry(auto_describe=False)
    reg.register(C())  # type: ignore[arg-type]
    out = {}
    for fam in text_string_to_metric_families(generate_latest(reg).decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_families_carry_the_snapshot() -> None:
    g = metrics.GatewayMetrics("coder", True, 0.98, 0.97, {"qqbot": False, "slack": True}, "busy-loop", None, 1,
                               {("busy-loop", "restarted"): 2}, {"busy-loop": 2}, {"captured": 2, "failed": 1})
    m = render(metrics.Snapshot((g,), 1000.0, 900.0))
    assert m[("hermes_watchdog_gateway_cpu_cores", (("profile", "coder"),))] == 0.98
    assert m[("hermes_watchdog_platform_connected", (("platform", "qqbot"), ("profile", "coder")))] == 0
    assert m[("hermes_watchdog_platform_connected", (("platform", "slack"), ("profile", "coder")))] == 1
    assert m[("hermes_watchdog_verdict", (("profile", "coder"), ("signature", "busy-loop")))] == 1
    assert sum(v for k, v in m.items() if k[0] == "hermes_watchdog_verdict") == 1
    assert m[("hermes_watchdog_restarts_total", (("profile", "coder"), ("result", "restarted"),
                                                 ("signature", "busy-loop")))] == 2
    assert m[("hermes_watchdog_restarts_total", (("profile", "coder"), ("result", "restart-failed"),
                                                 ("signature", "busy-loop")))] == 0
    assert m[("hermes_watchdog_stack_captures_total", (("profile", "coder"), ("result", "failed")))] == 1
    assert m[("hermes_watchdog_restart_budget_remaining", (("profile", "coder"),))] == 1
    assert m[("hermes_watchdog_last_tick_timestamp_seconds", ())] == 1000.0
    assert not [k for k in m if "heartbeat" in k[0]]  # no heartbeat file: no series, no HELP line
    down = metrics.GatewayMetrics("x", False, heartbeat_age=75.0)
    m = render(metrics.Snapshot((down,), 1.0, 1.0))
    assert m[("hermes_watchdog_gateway_up", (("profile", "x"),))] == 0
    assert m[("hermes_watchdog_heartbeat_age_seconds", (("profile", "x"),))] == 75.0
    assert ("hermes_watchdog_gateway_cpu_cores", (("profile", "x"),)) not in m  # unknown is absent, not 0


def test_notification_is_redacted_and_names_the_gateway() -> None:
    rec = {"signature": "busy-loop", "pid": 7, "confidence": 0.95, "result": "restarting",
           "action": {"kind": "restart", "why": "held"},
           "reasons": [f"log says token={PLANTED_SECRETS[1]}", "Authorization: Bearer " + PLANTED_SECRETS[2]]}
    msg = notifications.build("incident", "coder", "/home/u/.hermes/profiles/coder", rec, "/home/u/x", 0.0,
                              "/home/u")
    text = json.dumps(msg)
    assert not [s for s in PLANTED_SECRETS if s in text]
    assert msg["event"] == "incident" and msg["profile"] == "coder" and msg["pid"] == 7
    assert "busy-loop on gateway PID 7 [coder]: restart" in msg["summary"] and "/home/u" not in text


def test_webhook_retries_5xx_with_backoff_then_delivers() -> None:
    codes = [503, 500, 204]
    got: list[dict] = []

    class H(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(codes.pop(0))
            self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    said: list[str] = []
    try:
        ch = WebhookChannel(f"http://127.0.0.1:{srv.server_port}/", 2.0, 3, said.append, backoff=0.05)
        ch.send({"event": "incident"})
        ch.close(10)
        assert len(got) == 3 and ch.sent == 1 and said == []
        codes[:] = [400]
        ch = WebhookChannel(f"http://127.0.0.1:{srv.server_port}/", 2.0, 3, said.append, backoff=0.05)
        ch.send({"event": "recovery"})
        ch.close(10)
        assert len(got) == 4 and ch.failed == 1  # a 4xx is not retried
        assert said and "HTTP 400" in said[0] and "1 attempt" in said[0]
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("flags, message", [
    ({"notify_webhook": "ftp://x"}, "--notify-webhook must be an http:// or https:// URL"),
    ({"metrics_port": 70000}, "--metrics-port must be a port number"),
    ({"frozen_action": "panic"}, "--frozen-action must be one of alert, restart"),
    ({"heartbeat_stale": 0}, "--heartbeat-stale must be more than 0"),
    ({"notify_retries": -1}, "--notify-retries must be a whole number >= 0"),
])
def test_bad_options_are_one_line_errors(flags: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        config.build(None, flags)
