"""Issue 24 item 5: while a restart is in flight, `status` (table and --json) says where it stands and how long
it has waited, and the log says so every few seconds: the operator sees the gateway is down and in hand."""

from __future__ import annotations

import json

from tests.helpers import cli, wait_for

FAST = ("--interval", "0.5", "--window", "3", "--grace", "1", "--cooldown", "0", "--start-timeout", "60",
        "--loop-proof", "3")


def test_status_and_log_say_a_restart_waits_for_the_relaunch(tmp_path, supervised, daemons) -> None:
    home = tmp_path / "hermes"
    # The supervisor relaunches only 25 s after the old gateway is gone: long enough to be seen waiting.
    sup = supervised(home, "--mode", "spin", "--spin-after", "1", "--hook",
                     "--spin-once-marker", str(tmp_path / "spun"),
                     relaunch_delay=25.0)
    sup.wait_running()
    d = daemons(tmp_path / "state", "--hermes-home", str(home), "--restart-with", "signal", *FAST)
    seen: dict[str, object] = {}

    def waiting() -> bool:
        r = cli("status", "--json", "--state-dir", str(tmp_path / "state"))
        if r.code != 0:
            return False
        gw = (json.loads(r.out).get("gateways") or [{}])[0]
        restart = gw.get("restart") or {}
        if "waiting for" in str(restart.get("progress")) and "relaunch" in str(restart.get("progress")):
            seen.update(restart)
            return True
        return False

    wait_for(waiting, timeout=120, what="status --json to show the restart waiting for the relaunch")
    assert seen["phase"] == "verifying" and float(str(seen["seconds"])) > 0
    text = cli("status", "--state-dir", str(tmp_path / "state"))
    assert "restarting:" in text.out and "left of --start-timeout" in text.out, text.out
    wait_for(lambda: " WAIT " in d.events() and "waiting for" in d.events(), timeout=60,
             what="a WAIT line in the daemon's log while the relaunch is awaited")
    wait_for(lambda: d.incidents() and d.incident().get("result") == "restarted", timeout=120,
             what="the relaunch verified in the end")
    r = cli("status", "--json", "--state-dir", str(tmp_path / "state"))
    assert "restart" not in json.loads(r.out)["gateways"][0]  # in flight no more
