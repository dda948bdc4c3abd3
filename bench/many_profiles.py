"""Many profiles under one daemon (issue 20 item 4): 200 profile homes at defaults, the daemon's tick time and
CPU printed, and the descriptors it holds.

Each profile home has the files of a gateway that is gone (a pid file naming a dead PID, a state file saying
"running"), so every tick reads each home's files and, finding no live gateway, looks in the process table:
the costly case (a healthy watched gateway is cheaper). One real simulated gateway runs in the default home.
The tick time is read from the metrics textfile (``last_tick_timestamp_seconds`` between scrapes) and the
daemon's CPU from psutil over DURATION seconds after a warm-up.

  python bench/many_profiles.py [--profiles 200] [--duration 60] [--warmup 15]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

import itertools

from _common import emit, start_daemon, start_gateway, stop_group, wait_for


def dead_pid() -> int:
    pid = 4_000_000
    while psutil.pid_exists(pid):
        pid -= 1
    return pid


def make_profiles(root: Path, n: int) -> None:
    gone = dead_pid()
    for i in range(n):
        home = root / "profiles" / f"p{i:04d}"
        home.mkdir(parents=True)
        (home / "gateway.pid").write_text(json.dumps({"pid": gone, "kind": "hermes-gateway", "start_time": 1}))
        (home / "gateway_state.json").write_text(json.dumps({"pid": gone, "gateway_state": "running",
                                                             "platforms": {"qqbot": {"state": "connected"}}}))


def last_tick(textfile: Path) -> float | None:
    try:
        for line in textfile.read_text().splitlines():
            if line.startswith("hermes_watchdog_last_tick_timestamp_seconds "):
                return float(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profiles", type=int, default=200)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=15.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hw-bench-profiles-") as tmp:
        root = Path(tmp) / "hermes"
        root.mkdir()
        make_profiles(root, args.profiles)
        gw = start_gateway(root, "healthy")
        textfile = Path(tmp) / "metrics.prom"
        daemon = start_daemon("--hermes-home", str(root), "--all-profiles", "--state-dir", str(Path(tmp) / "state"),
                              "--metrics-textfile", str(textfile), log=Path(tmp) / "daemon.log")
        try:
            wait_for(lambda: last_tick(textfile) is not None, 120)
            time.sleep(args.warmup)
            proc = psutil.Process(daemon.pid)
            t0 = proc.cpu_times()
            start = time.monotonic()
            ticks: list[float] = []
            while time.monotonic() - start < args.duration:
                t = last_tick(textfile)
                if t is not None and (not ticks or t != ticks[-1]):
                    ticks.append(t)
                time.sleep(0.05)
            t1 = proc.cpu_times()
            fds = proc.num_fds()
            elapsed = time.monotonic() - start
            cpu = (t1.user + t1.system - t0.user - t0.system) / elapsed
            gaps = [b - a for a, b in itertools.pairwise(ticks)]
        finally:
            stop_group(daemon)
            stop_group(gw)
    rows = [[args.profiles + 1, len(ticks), round(max(gaps), 2) if gaps else "-",
             round(sum(gaps) / len(gaps), 2) if gaps else "-", round(cpu, 4), round(cpu / (args.profiles + 1), 6), fds]]
    emit("many_profiles", ["homes", "ticks", "max tick gap s", "mean tick gap s", "daemon cores",
                           "cores per home", "fds held"], rows,
         {"homes": args.profiles + 1, "tick_gaps": gaps, "cores": cpu, "fds": fds})
    return 0


if __name__ == "__main__":
    sys.exit(main())
