"""What the deaf readings cost the daemon: each read of observe/descriptors.py, observe/sockets.py and the
machine's memory, timed (process CPU time of this script, not wall time) against a simulated gateway holding
CONNECTIONS healthy loopback connections and 3 sockets it leaves in CLOSE_WAIT (the worst case: the
gateway's socket inodes are read too), and the common case (nothing in CLOSE_WAIT: two sock_diag dumps);
the kernel walks its whole TCP hash for each, whatever the host holds. Then projected to cores per gateway
at the daemon's defaults (observe/deaf.py: count every --interval 5 s, limit every 60 s, sockets every 100 s,
memory every 10 s; classification only near the limit). Target: the deaf reads well under 0.001 core per gateway.

  python bench/deaf_cost.py [--connections 50] [--repeat 200]
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, running, start_gateway, stop_group, wait_for

from hermes_watchdog.facts.deaf import DeafThresholds
from hermes_watchdog.observe import descriptors, sockets
from hermes_watchdog.observe.deaf import LIMIT_EVERY, sockets_every


def cpu_per_call(fn, repeat: int) -> float:
    me = psutil.Process()
    t0 = sum(me.cpu_times()[:2])
    for _ in range(repeat):
        fn()
    return (sum(me.cpu_times()[:2]) - t0) / repeat


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--repeat", type=int, default=200)
    a = p.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-deaf-")) / ".hermes"
    gw = start_gateway(home, "healthy", "--hold-connections", str(a.connections), "--half-close", "3")
    try:
        if not wait_for(lambda: running(home), 60):
            print("hermes-watchdog bench: the gateway never ran", file=sys.stderr)
            return 2
        time.sleep(5)  # the half-closed sockets, one a second
        pid = gw.pid
        th, interval = DeafThresholds(), 5.0
        every = {"count": interval, "limit": LIMIT_EVERY, "sockets": sockets_every(th, interval),
                 "sockets, no CLOSE_WAIT in the namespace": sockets_every(th, interval),
                 "memory": th.growth_for / 60}
        calls = {"count": lambda: descriptors.count(pid), "limit": lambda: descriptors.soft_limit(pid),
                 "sockets": lambda: sockets.read(pid),
                 "sockets, no CLOSE_WAIT in the namespace": lambda: [sockets.diag(f, sockets.TCP_CLOSE_WAIT)
                                                                     for f in (socket.AF_INET, socket.AF_INET6)],
                 "memory": psutil.virtual_memory,
                 "classify (near the limit only)": lambda: descriptors.classify(pid)}
        rows, data = [], {}
        total = 0.0
        for name, fn in calls.items():
            cost = cpu_per_call(fn, a.repeat)
            per = every.get(name)
            cores = cost / per if per else None
            total += (cores or 0.0) if not name.startswith("sockets, no") else 0.0  # the worst case is counted
            rows.append([name, round(cost * 1e6), per or "-", f"{cores:.2e}" if cores is not None else "-"])
            data[name] = {"cpu_us_per_call": round(cost * 1e6, 1), "every_s": per, "cores": cores}
        rows.append(["total at defaults", "", "", f"{total:.2e}"])
        n_fds = descriptors.count(pid)
        tcp = sockets.read(pid)
        emit("deaf_cost", ["read", "CPU us per call", "every s", "cores per gateway"], rows,
             {"connections": a.connections, "fds": n_fds, "host_tcp_sockets": len(psutil.net_connections("tcp")),
              "close_wait": len(tcp.close_wait) if tcp else None, "reads": data, "total_cores": total})
        return 0
    finally:
        stop_group(gw)


if __name__ == "__main__":
    sys.exit(main())
