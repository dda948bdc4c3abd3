"""Issue 20: many profiles must not exhaust the daemon's descriptors. 1,100 profiles under `ulimit -n 1024`
once meant EMFILE on every tick and a spinning gateway never judged. Here 600 profiles under a soft limit
of 512: the daemon watches at most MAX_HOMES homes, says so once, and still restarts the spin in the default
home."""

from __future__ import annotations

import json
import resource

import psutil

from hermes_watchdog.daemon.loop import MAX_HOMES
from tests.helpers import wait_for

FAST = ("--interval", "0.5", "--window", "3", "--grace", "1", "--cooldown", "0", "--start-timeout", "30")
PROFILES = 600
SOFT_LIMIT = 512


def _gone_pid() -> int:
    pid = 4_000_000
    while psutil.pid_exists(pid):
        pid -= 1
    return pid


def test_many_profiles_under_a_low_descriptor_limit_still_restart_a_spin(tmp_path, supervised, daemons) -> None:
    home = tmp_path / "hermes"
    gone = _gone_pid()
    for i in range(PROFILES):
        p = home / "profiles" / f"p{i:04d}"
        p.mkdir(parents=True)
        (p / "gateway.pid").write_text(json.dumps({"pid": gone, "kind": "hermes-gateway", "start_time": 1}))
        (p / "gateway_state.json").write_text(json.dumps({"pid": gone, "gateway_state": "running", "platforms": {}}))
    sup = supervised(home, "--mode", "spin", "--spin-after", "1", "--hook",
                     "--spin-once-marker", str(tmp_path / "spun"))
    old = sup.wait_running()
    assert PROFILES + 1 > SOFT_LIMIT > MAX_HOMES + 64  # one lock per home would not fit; the cap does
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (SOFT_LIMIT, hard))  # inherited by the daemon only
    try:
        d = daemons(tmp_path / "state", "--hermes-home", str(home), "--all-profiles", "--restart-with", "signal",
                    *FAST)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert psutil.Process(d.proc.pid).rlimit(psutil.RLIMIT_NOFILE)[0] == SOFT_LIMIT
    wait_for(lambda: any(i.get("pid") == old and i.get("result") == "restarted"
                         for i in (json.loads((f / "incident.json").read_text()) for f in d.incidents()
                                   if (f / "incident.json").exists())),
             timeout=240, what="the spin in the default home restarted and verified")
    log = d.events()
    assert "EMFILE" not in log and "Too many open files" not in log, log[-3000:]
    assert log.count(f"watching the default home and the first {MAX_HOMES - 1} profiles") == 1, log[-3000:]
    assert psutil.Process(d.proc.pid).num_fds() < SOFT_LIMIT
