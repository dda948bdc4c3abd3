"""False positives: a soak of DURATION seconds (default 10 minutes) with the real daemon (default window
60 s, interval 5 s, --restart-with signal so a wrong decision would really restart) watching
  - the default home: a gateway doing legitimate CPU work (a worker thread burning one core) with every
    platform connected (qqbot, telegram, slack);
  - profile "idle": a gateway whose QQ socket closed and whose reconnects keep failing, with backoff
    (the fixed adapter with the network down): disconnected but idle.
Counted: restarts (from the daemon's state.json and from the gateways' PIDs), incidents and their kinds.
Target: 0 restarts.

  python bench/false_positives.py [--duration 600]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, read_json, running, start_daemon, start_gateway, stop_group, wait_for


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=600.0)
    a = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    base, idle = root / ".hermes", root / ".hermes" / "profiles" / "idle"
    busy_gw = start_gateway(base, "busy", "--extra-platforms", "telegram,slack")
    idle_gw = start_gateway(idle, "idle-disconnected", "--spin-after", "5", "--backoff-scale", "1")
    procs = [busy_gw, idle_gw]
    try:
        for h in (base, idle):
            wait_for(lambda h=h: running(h), 60)
        state_dir = root / "watchdog"
        daemon = start_daemon("--all-profiles", "--hermes-home", str(base), "--restart-with", "signal",
                              "--state-dir", str(state_dir), log=root / "daemon.log")
        procs.append(daemon)
        time.sleep(a.duration)
        status = read_json(state_dir / "state.json") or {}
        restarts = sum(len(g.get("restart_history", [])) for g in status.get("gateways", []))
        pid_changes = sum(gw.poll() is not None for gw in (busy_gw, idle_gw))
        incidents = []
        for folder in sorted((state_dir / "incidents").glob("*")):
            rec = read_json(folder / "incident.json") or {}
            incidents.append({"signature": rec.get("signature"), "action": (rec.get("action") or {}).get("kind"),
                              "result": rec.get("result")})
        kinds = sorted({f"{i['signature']}:{i['action']}" for i in incidents})
        emit("false_positives", ["minutes", "restarts", "gateways that exited", "incidents", "incident kinds"],
             [[round(a.duration / 60, 1), restarts, pid_changes, len(incidents), ", ".join(kinds) or "-"]],
             {"duration": a.duration, "restarts": restarts, "gateways_exited": pid_changes,
              "incidents": incidents, "verdicts": [g.get("verdict", {}).get("signature")
                                                   for g in status.get("gateways", [])]})
        print(json.dumps({"daemon_log_tail": (root / "daemon.log").read_text().splitlines()[-8:]}), file=sys.stderr)
        return 0 if restarts == 0 and pid_changes == 0 else 1
    finally:
        for proc in reversed(procs):
            stop_group(proc)


if __name__ == "__main__":
    sys.exit(main())
