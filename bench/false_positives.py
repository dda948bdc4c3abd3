"""False positives: a soak of DURATION seconds (default 10 minutes) of legitimate gateways on a loaded
machine, watched by the real daemon at its default settings plus ``--restart-with signal`` and
``--frozen-action restart``, so that any wrong decision would really restart (no supervisor relaunches
these gateways: a restart shows as a gateway that exited). Watched with --all-profiles:
  - the default home, "busy": a worker thread burns one core (legitimate work); qqbot, telegram and
    slack all connected;
  - profile "bursty": a coroutine keeps the event loop busy 4 s, then lets it idle in its selector 0.5 s,
    again and again (legitimate work on the loop);
  - profile "idle": the QQ socket closed and every reconnect fails, with backoff (the fixed adapter with
    the network down): disconnected, idle;
  - profile "heartbeat": healthy, Hermes 0.19's heartbeat every 30 s, whose writes fail after 5 s (as on
    a full disk): the heartbeat goes stale while the loop turns.
  - profile "connections": healthy, 100 long-lived loopback connections pinged every 10 s (a gateway with
    many live adapters and API clients): many sockets, none half-closed;
  - profile "bursts": healthy, 20 short-lived loopback connections a second, each closed by both sides
    (webhooks, HTTP polling), under macOS' descriptor limit (256): sockets pass through CLOSE_WAIT for an
    instant, descriptors come and go.
  - profile "agents": healthy, 9 agent turns a second of 0.2-1.5 s each in Hermes 0.19.0's pool of 10
    workers: about 8 at once, seldom all 10 and never for long (``active_agents`` high enough that the
    workers' dumps run).
  - profile "telegram" (unless --no-real-hermes): the REAL Hermes 0.19.0 gateway (the cached test venv of
    tests/realhermes, built on first use) with its real Telegram adapter polling a loopback fake Bot API that
    closes every keep-alive connection left idle: the adapter's send pool holds the closed socket in CLOSE_WAIT
    until its own get_me probe (every 90 s) replaces it, while the long poll goes on (healthy: not deaf).
The alive-but-deaf signatures (fd-exhaustion, sockets-half-closed, memory-growth, workers-saturated) and
gil-held must not open an incident either (the "busy" worker holds the GIL most of the time, in Python).
--daemon-arg passes a flag to the daemon, e.g. --daemon-arg=--half-closed-after=30 for a short soak.
Contention: HOGS extra processes (``python -c "while True: pass"``, default 3) load every core for the
whole soak, so the gateways and py-spy get a fraction of a CPU.
Counted: restarts (the daemon's state.json and the gateways that exited), incidents by signature, the
verdicts seen. Target: 0 restarts and no deaf incident; exits 1 otherwise, with the daemon's lines around it.

  python bench/false_positives.py [--duration 600] [--hogs 3] [--no-real-hermes] [--daemon-arg=--flag=value ...]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.realhermes: the real gateway

from _common import emit, read_json, running, start_daemon, start_gateway, stop_group, wait_for

GATEWAYS = [  # (profile, mode, extra args)
    (None, "busy", ["--extra-platforms", "telegram,slack"]),
    ("bursty", "bursty", []),
    ("idle", "idle-disconnected", ["--spin-after", "5", "--backoff-scale", "1"]),
    ("heartbeat", "healthy", ["--heartbeat-period", "30", "--heartbeat-fail-after", "5"]),
    ("connections", "healthy", ["--hold-connections", "100"]),
    ("bursts", "healthy", ["--connection-bursts", "20", "--nofile", "256"]),
    ("agents", "healthy", ["--agent-traffic", "9"]),
]
DEAF = {"fd-exhaustion", "sockets-half-closed", "memory-growth", "workers-saturated", "gil-held"}
_VERDICT = re.compile(r" VERDICT (?:\[(?P<where>[^\]]+)\] )?\S+ -> (?P<to>\S+)")
_ACTS = (" ALERT ", " RESTART ", " KILL ", " VERIFY ", " GIVE-UP ")


def start_hog() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=600.0)
    p.add_argument("--hogs", type=int, default=3, help="busy processes loading the cores")
    p.add_argument("--daemon-arg", action="append", default=[], help="a flag for the daemon (repeatable)")
    p.add_argument("--no-real-hermes", action="store_true", help="no real 0.19.0 gateway with Telegram")
    a = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    base = root / ".hermes"
    procs: list[subprocess.Popen[bytes]] = [start_hog() for _ in range(a.hogs)]
    gateways: dict[str, subprocess.Popen[bytes]] = {}
    seen: list[dict] = []  # type: ignore[type-arg]
    real = None
    try:
        for profile, mode, extra in GATEWAYS:
            home = base if profile is None else base / "profiles" / profile
            gw = start_gateway(home, mode, *extra)
            gateways[profile or "default"] = gw
            procs.append(gw)
            if not wait_for(lambda h=home: running(h), 120):
                print(f"hermes-watchdog bench: gateway {profile or 'default'} never ran", file=sys.stderr)
                return 2
        real = None if a.no_real_hermes else start_real_telegram(base / "profiles" / "telegram")
        if real is not None:
            gateways["telegram"] = real[0].proc
        state_dir = root / "watchdog"
        log = root / "daemon.log"
        daemon = start_daemon("--all-profiles", "--hermes-home", str(base), "--restart-with", "signal",
                              "--frozen-action", "restart", "--state-dir", str(state_dir), *a.daemon_arg, log=log)
        procs.append(daemon)
        started = time.monotonic()
        while (left := a.duration - (time.monotonic() - started)) > 0:
            time.sleep(min(60.0, left))
            if real is not None:  # what the daemon reads of the real Telegram gateway's half-closed sockets
                seen.append(next((g.get("deaf") or {} for g in (read_json(state_dir / "state.json") or {})
                                  .get("gateways", []) if g.get("profile") == "telegram"), {}))
            acts = [x for x in log.read_text().splitlines() if any(k in x for k in _ACTS)]
            exited = [n for n, g in gateways.items() if g.poll() is not None]
            print(f"  {time.monotonic() - started:.0f} s: {len(acts)} alert/restart lines, exited: {exited or '-'}",
                  file=sys.stderr)
        status = read_json(state_dir / "state.json") or {}
        lines = log.read_text().splitlines()
        restarts = sum(len(g.get("restart_history", [])) for g in status.get("gateways", []))
        exited = sorted(n for n, g in gateways.items() if g.poll() is not None)
        incidents = []
        for folder in sorted((state_dir / "incidents").glob("*")):
            rec = read_json(folder / "incident.json") or {}
            incidents.append({"folder": folder.name, "signature": rec.get("signature"),
                              "action": (rec.get("action") or {}).get("kind"), "result": rec.get("result")})
        by_sig = Counter(str(i["signature"]) for i in incidents)
        verdicts: dict[str, Counter[str]] = {}
        for x in lines:
            m = _VERDICT.search(x)
            if m:
                verdicts.setdefault(m["where"] or "default", Counter())[m["to"]] += 1
        final = {str(g.get("profile") or "default"): (g.get("verdict") or {}).get("signature")
                 for g in status.get("gateways", [])}
        emit("false_positives", ["minutes", "hogs", "gateways", "restarts", "gateways that exited", "incidents",
                                 "incidents by signature"],
             [[round(a.duration / 60, 1), a.hogs, len(gateways), restarts, len(exited), len(incidents),
               ", ".join(f"{k}: {v}" for k, v in sorted(by_sig.items())) or "-"]],
             {"duration": a.duration, "hogs": a.hogs, "settings": "defaults + --restart-with signal "
              "--frozen-action restart" + "".join(f" {x}" for x in a.daemon_arg),
              "restarts": restarts, "gateways_exited": exited, "incidents": incidents,
              "incidents_by_signature": dict(by_sig),
              "verdict_changes": {k: dict(v) for k, v in verdicts.items()}, "final_verdicts": final})
        bad = restarts > 0 or bool(exited) or bool(DEAF & set(by_sig))
        for i, x in enumerate(lines):
            if any(k in x for k in _ACTS):
                print("\n".join(["--- daemon log around:", *lines[max(0, i - 12):i + 6]]), file=sys.stderr)
        if real is not None:
            tg = real[2].stats()
            print(json.dumps({"real_telegram": {"bot_api_requests": tg["methods"],
                                                "connections_closed_by_server": tg["closed_by_server"],
                                                "daemon_close_wait_each_minute": [x.get("close_wait") for x in seen],
                                                "daemon_oldest_seconds_max": max(
                                                    (x.get("close_wait_oldest_seconds") or 0 for x in seen),
                                                    default=None),
                                                "network_refused": real[0].network_refused()}}), file=sys.stderr)
        print(json.dumps({"daemon_log_tail": lines[-8:], "root": str(root)}), file=sys.stderr)
        return 1 if bad else 0
    finally:
        for proc in reversed(procs):
            stop_group(proc)
        for part in real or ():  # the gateway, then its fake servers
            part.stop()


def start_real_telegram(home: Path):  # type: ignore[no-untyped-def]
    """The real 0.19.0 gateway with QQ and Telegram against loopback fakes, ready, its Bot API now closing idle
    keep-alive connections: (gateway, fake QQ, fake Telegram)."""
    from tests.realhermes.gateway_harness import start_fake_qq, start_fake_telegram, start_gateway
    from tests.realhermes.venvs import hermes_venv

    python = hermes_venv("0.19.0", telegram=True)
    qq, tg = start_fake_qq(python), start_fake_telegram(python)
    gw = start_gateway(python, "0.19.0", home, qq, extra_env={"HERMES_WATCHDOG_PATCHES": "0"}, telegram=tg)
    gw.wait_ready()
    tg.drop_idle()
    return gw, qq, tg


if __name__ == "__main__":
    sys.exit(main())
