"""The daemon's own cost: CPU (cores) and RSS while it watches healthy simulated gateways.

Each configuration runs the real ``hermes-watchdog run`` in its own process against its own idle healthy
gateways; the configurations run side by side. "defaults" is the daemon with no tuning flags: interval
5 s and the event-loop stack sampling on (a 1 s ``py-spy record`` burst of each gateway every
--stack-every 60 s); "--stack-with none" is the same without stack sampling, so the difference is what the
sampling costs. After a warm-up, the daemon's CPU time is read at the start and end of DURATION seconds:
its own user + system time AND its reaped children's (``cpu_times().children_user/children_system``: the
py-spy processes it spawns and waits for). The daemon's children are polled every 0.5 s to count the
py-spy bursts and to check that every one is reaped (no zombie left behind). RSS is sampled every 5 s
and the maximum kept.
Targets: <= 0.001 core per gateway at interval 5 s, <= 0.005 at 1 s; RSS <= 60 MiB.

  python bench/overhead.py [--duration 300] [--warmup 15] [--metrics] [--only SUBSTRING]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, running, start_daemon, start_gateway, stop_group, wait_for

CONFIGS = [  # (name, gateways, interval, extra flags)
    ("1 gateway, defaults", 1, 5.0, []),
    ("1 gateway, defaults, --stack-with none", 1, 5.0, ["--stack-with", "none"]),
    ("1 gateway, interval 1 s", 1, 1.0, ["--interval", "1"]),
    ("5 profiles, defaults", 5, 5.0, []),
    ("5 profiles, defaults, --stack-with none", 5, 5.0, ["--stack-with", "none"]),
    ("5 profiles, interval 1 s", 5, 1.0, ["--interval", "1"]),
]


def cpu(proc: psutil.Process) -> tuple[float, float]:
    """(own user + system, reaped children's user + system) seconds."""
    t = proc.cpu_times()
    return t.user + t.system, t.children_user + t.children_system


def poll_children(r: dict[str, Any]) -> None:
    try:
        kids = r["proc"].children()
    except psutil.Error:
        return
    for k in kids:
        try:
            key, name, status = (k.pid, k.create_time()), k.name(), k.status()
        except psutil.Error:
            continue
        if "py-spy" in name or "py_spy" in name:
            r["bursts"].add(key)
        if status == psutil.STATUS_ZOMBIE:
            r["zombie_polls"][key] = r["zombie_polls"].get(key, 0) + 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=300.0)
    p.add_argument("--warmup", type=float, default=15.0)
    p.add_argument("--metrics", action="store_true", help="also a run with --metrics-port and --metrics-textfile")
    p.add_argument("--only", help="run only the configurations whose name contains this")
    a = p.parse_args()
    configs = list(CONFIGS)
    root = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    if a.metrics:
        configs.append(("1 gateway, defaults, metrics", 1, 5.0,
                        ["--metrics-port", "0", "--metrics-textfile", str(root / "m5.prom")]))
        configs.append(("1 gateway, interval 1 s, metrics", 1, 1.0,
                        ["--interval", "1", "--metrics-port", "0", "--metrics-textfile", str(root / "m1.prom")]))
    if a.only:
        configs = [c for c in configs if a.only in c[0]]
    procs = []
    runs: list[dict[str, Any]] = []
    try:
        for i, (name, count, interval, extra) in enumerate(configs):
            base = root / f"c{i}" / ".hermes"
            homes = [base] + [base / "profiles" / f"p{n}" for n in range(1, count)]
            for h in homes:
                procs.append(start_gateway(h, "healthy"))
            for h in homes:
                wait_for(lambda h=h: running(h), 60)
            where = ["--all-profiles", "--hermes-home", str(base)] if count > 1 else ["--hermes-home", str(base)]
            d = start_daemon(*where, "--state-dir", str(root / f"c{i}" / "watchdog"), *extra, log=root / f"c{i}.log")
            procs.append(d)
            runs.append({"name": name, "gateways": count, "interval": interval, "proc": psutil.Process(d.pid),
                         "bursts": set(), "zombie_polls": {}})
        time.sleep(a.warmup)  # start-up (imports, first samples, the first burst) is not the steady cost
        for r in runs:
            (r["own0"], r["kids0"]), r["t0"], r["rss"] = cpu(r["proc"]), time.monotonic(), r["proc"].memory_info().rss
            poll_children(r)
            r["bursts_before"] = set(r["bursts"])  # in flight at the start: not counted
        end, next_rss = time.monotonic() + a.duration, 0.0
        while time.monotonic() < end:
            time.sleep(0.5)
            for r in runs:
                poll_children(r)
            if time.monotonic() >= next_rss:
                next_rss = time.monotonic() + 5
                for r in runs:
                    r["rss"] = max(r["rss"], r["proc"].memory_info().rss)
        rows, results = [], []
        for r in runs:
            own, kids = cpu(r["proc"])
            span = time.monotonic() - r["t0"]
            own_cores, kid_cores = (own - r["own0"]) / span, (kids - r["kids0"]) / span
            cores = own_cores + kid_cores
            per_gw = cores / r["gateways"]
            target = 0.001 if r["interval"] >= 5 else 0.005
            bursts = len(r["bursts"] - r["bursts_before"])
            unreaped = sum(1 for n in r["zombie_polls"].values() if n >= 4)  # a zombie for 2 s or more
            res = {"config": r["name"], "gateways": r["gateways"], "interval": r["interval"],
                   "cores": round(cores, 5), "own_cores": round(own_cores, 5), "children_cores": round(kid_cores, 5),
                   "cores_per_gateway": round(per_gw, 5), "target_cores_per_gateway": target,
                   "ratio": round(per_gw / target, 3), "bursts": bursts,
                   "children_cpu_per_burst_ms": round((kids - r["kids0"]) / bursts * 1000, 1) if bursts else None,
                   "unreaped_children": unreaped, "rss_mib": round(r["rss"] / 2**20, 1),
                   "rss_ratio": round(r["rss"] / 2**20 / 60, 3)}
            results.append(res)
            rows.append([r["name"], f"{cores:.5f}", f"{own_cores:.5f}", f"{kid_cores:.5f}", bursts, unreaped,
                         f"{per_gw:.5f}", target, res["ratio"], res["rss_mib"], res["rss_ratio"]])
        emit("overhead", ["config", "cores", "daemon", "py-spy", "bursts", "unreaped", "per gateway", "target",
                          "ratio", "RSS MiB", "RSS/60 MiB"], rows, {"duration": a.duration, "results": results})
        ok = all(r["ratio"] <= 1 and r["rss_ratio"] <= 1 and not r["unreaped_children"] for r in results)
        return 0 if ok else 1
    finally:
        for proc in reversed(procs):
            stop_group(proc)


if __name__ == "__main__":
    sys.exit(main())
