"""`hermes-watchdog check`, the probe for Docker HEALTHCHECK and Kubernetes exec probes: its exit code on a
healthy, a spinning and a missing gateway, against the simulated gateway and the real py-spy."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import assert_one_line_error, cli, sim_env


def check(home: Path, *args: str):
    return cli("check", *args, env=sim_env(home), timeout=60)


def test_healthy_gateway_is_0(tmp_path: Path, sim) -> None:
    home = tmp_path / "hermes"
    g = sim("healthy", home=home).wait_running()
    r = check(home)
    assert r.code == 0, r.out + r.err
    assert r.out.startswith(f"healthy: gateway PID {g.pid} ") and len(r.out.splitlines()) == 1
    data = check(home, "--json").json()
    assert data["status"] == "healthy" and data["exit_code"] == 0 and data["pid"] == g.pid


def test_spinning_gateway_is_1_busy_loop(tmp_path: Path, sim) -> None:
    home = tmp_path / "hermes"
    g = sim("spin", "--spin-after", "0.5", home=home).wait_running().wait_spinning()
    r = check(home, "--json")
    assert r.code == 1, r.out + r.err
    data = r.json()
    assert data["status"] == "failure" and data["signature"] == "busy-loop" and data["pid"] == g.pid
    assert data["confidence"] >= 0.5 and data["reasons"]


def test_missing_gateway_is_1_when_its_files_say_running_and_2_when_nothing_ran(tmp_path: Path, sim) -> None:
    home = tmp_path / "hermes"
    g = sim("healthy", home=home).wait_running()
    g.kill()  # SIGKILL: gateway.pid and gateway_state.json stay behind, saying running
    r = check(home, "--json")
    assert r.code == 1, r.out + r.err
    assert r.json()["signature"] == "gateway-gone" and r.json()["pid"] == g.pid
    empty = tmp_path / "no-gateway-yet"
    empty.mkdir()
    r = check(empty)
    assert r.code == 2 and r.out.startswith("unknown: no gateway") and r.err == ""
    r = check(tmp_path / "no-such-home", "--json")
    assert r.code == 2 and json.loads(r.out)["status"] == "unknown"


def test_bad_seconds_is_one_line(tmp_path: Path) -> None:
    r = cli("check", "--hermes-home", str(tmp_path), "--seconds", "0")
    assert_one_line_error(r)
    assert "--seconds" in r.err


def test_busy_gateway_with_every_platform_connected_is_0(tmp_path: Path, sim) -> None:
    """cpu-pegged is work as far as anyone can tell: `run` never restarts it, and a liveness probe must not."""
    home = tmp_path / "hermes"
    sim("busy", "--extra-platforms", "telegram", home=home).wait_running()
    r = check(home, "--json")
    assert r.code == 0, r.out + r.err
    assert r.json()["signature"] in {"cpu-pegged", "healthy"} and r.json()["status"] in {"ok", "healthy"}
