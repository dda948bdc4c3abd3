"""Cost of one CPU sample (sampler.snapshot) of a 20-thread process: psutil's per-thread CPU times alone
(as before CPU demand) against psutil plus one schedstat read per thread (now). Wall time and the
sampler's own CPU time per sample, median over --count samples; printed, not asserted.

  python bench/sample_cost.py [--threads 20] [--count 500]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import psutil

from hermes_watchdog.facts.cpu import CpuSnapshot, ThreadTimes
from hermes_watchdog.observe import sampler

CHILD = """
import threading, time
for _ in range({n} - 1):
    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
print("ready", flush=True)
time.sleep(3600)
"""


def psutil_only(proc: psutil.Process) -> CpuSnapshot:
    """The sampler as it was before schedstat: per-thread CPU times from psutil only."""
    with proc.oneshot():
        times = proc.cpu_times()
        threads = tuple(ThreadTimes(t.id, t.user_time + t.system_time) for t in proc.threads())
    return CpuSnapshot(time.monotonic(), times.user + times.system, threads, time.time())


def measure(fn: Callable[[psutil.Process], CpuSnapshot], proc: psutil.Process, count: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(count):
        w0, c0 = time.perf_counter(), time.process_time()
        fn(proc)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    # process_time ticks coarsely per call: the mean over many calls is the honest figure for CPU.
    return statistics.median(walls), sum(cpus) / len(cpus)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=20)
    p.add_argument("--count", type=int, default=500)
    a = p.parse_args()
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(n=a.threads)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        proc = psutil.Process(child.pid)
        n = len(proc.threads())
        snap = sampler.snapshot(proc)
        with_data = sum(1 for t in snap.threads if t.run_ns is not None)
        for fn in (psutil_only, sampler.snapshot):  # warm caches and imports once
            measure(fn, proc, 20)
        before = measure(psutil_only, proc, a.count)
        after = measure(sampler.snapshot, proc, a.count)
    finally:
        child.kill()
        child.wait(10)
    print(f"process with {n} threads ({with_data} with schedstat data), {a.count} samples each")
    print(f"{'sampler':<28} {'median wall ms':>15} {'mean CPU ms':>12}")
    print(f"{'psutil only (before)':<28} {before[0] * 1e3:>15.3f} {before[1] * 1e3:>12.3f}")
    print(f"{'psutil + schedstat (now)':<28} {after[0] * 1e3:>15.3f} {after[1] * 1e3:>12.3f}")
    print(f"schedstat adds {1e3 * (after[0] - before[0]):.3f} ms wall, "
          f"{1e6 * (after[0] - before[0]) / max(1, n):.1f} us per thread")
    print(json.dumps({"bench": "sample_cost", "threads": n, "count": a.count, "platform": sys.platform,
                      "date": time.strftime("%Y-%m-%d"), "before_wall_ms": round(before[0] * 1e3, 4),
                      "before_cpu_ms": round(before[1] * 1e3, 4), "after_wall_ms": round(after[0] * 1e3, 4),
                      "after_cpu_ms": round(after[1] * 1e3, 4)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
