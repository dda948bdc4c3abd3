"""The daemon's own cost: CPU (cores) and RSS while it watches healthy simulated gateways.

Each configuration runs the real ``hermes-watchdog run`` in its own process against its own gateways;
the configurations run side by side (the gateways are idle, so they do not compete). After a warm-up,
the daemon's CPU time (user + system, from /proc via psutil) is read at the start and end of DURATION
seconds; RSS is sampled every 5 s and the maximum kept.
Targets: <= 0.001 core at interval 5 s, <= 0.005 core at 1 s, RSS <= 60 MiB.

  python bench/overhead.py [--duration 300] [--warmup 15] [--metrics]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, running, start_daemon, start_gateway, stop_group, wait_for

CONFIGS = [  # (name, gateways, interval, extra flags)
    ("1 gateway, interval 1 s", 1, 1.0, []),
    ("1 gateway, interval 5 s", 1, 5.0, []),
    ("5 profiles, interval 1 s", 5, 1.0, []),
    ("5 profiles, interval 5 s", 5, 5.0, []),
]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=300.0)
    p.add_argument("--warmup", type=float, default=15.0)
    p.add_argument("--metrics", action="store_true", help="also a run with --metrics-port and --metrics-textfile")
    a = p.parse_args()
    configs = list(CONFIGS)
    root = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    if a.metrics:
        configs.append(("1 gateway, interval 5 s, metrics", 1, 5.0,
                        ["--metrics-port", "0", "--metrics-textfile", str(root / "m5.prom")]))
        configs.append(("1 gateway, interval 1 s, metrics", 1, 1.0,
                        ["--metrics-port", "0", "--metrics-textfile", str(root / "m1.prom")]))
    procs = []
    runs = []
    try:
        for i, (name, count, interval, extra) in enumerate(configs):
            base = root / f"c{i}" / ".hermes"
            homes = [base] + [base / "profiles" / f"p{n}" for n in range(1, count)]
            for h in homes:
                procs.append(start_gateway(h, "healthy"))
            for h in homes:
                wait_for(lambda h=h: running(h), 60)
            where = ["--all-profiles", "--hermes-home", str(base)] if count > 1 else ["--hermes-home", str(base)]
            d = start_daemon(*where, "--interval", str(interval), "--window", "60", "--state-dir",
                             str(root / f"c{i}" / "watchdog"), *extra, log=root / f"c{i}.log")
            procs.append(d)
            runs.append({"name": name, "gateways": count, "interval": interval, "proc": psutil.Process(d.pid)})
        time.sleep(a.warmup)  # start-up (imports, first samples) is not the steady cost
        for r in runs:
            t = r["proc"].cpu_times()
            r["cpu0"], r["t0"], r["rss"] = t.user + t.system, time.monotonic(), r["proc"].memory_info().rss
        end = time.monotonic() + a.duration
        while time.monotonic() < end:
            time.sleep(5)
            for r in runs:
                r["rss"] = max(r["rss"], r["proc"].memory_info().rss)
        rows, results = [], []
        for r in runs:
            t = r["proc"].cpu_times()
            cores = (t.user + t.system - r["cpu0"]) / (time.monotonic() - r["t0"])
            target = 0.001 if r["interval"] >= 5 else 0.005
            res = {"config": r["name"], "gateways": r["gateways"], "interval": r["interval"],
                   "cores": round(cores, 5), "target_cores": target, "ratio": round(cores / target, 3),
                   "rss_mib": round(r["rss"] / 2**20, 1), "rss_ratio": round(r["rss"] / 2**20 / 60, 3)}
            results.append(res)
            rows.append([r["name"], f"{cores:.5f}", target, res["ratio"], res["rss_mib"], res["rss_ratio"]])
        emit("overhead", ["config", "cores", "target", "ratio", "RSS MiB", "RSS/60 MiB"], rows,
             {"duration": a.duration, "results": results})
        return 0 if all(r["ratio"] <= 1 and r["rss_ratio"] <= 1 for r in results) else 1
    finally:
        for proc in reversed(procs):
            stop_group(proc)


if __name__ == "__main__":
    sys.exit(main())
