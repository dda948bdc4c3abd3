"""Stack capture latency: one ``py-spy dump`` of the spinning simulated gateway, as the daemon runs it
(hermes_watchdog.pyspy.dump_once), timed wall-clock, COUNT times. Target: median <= 100 ms.

  python bench/stack_capture.py [--count 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, sim_events, start_gateway, stop_group, summary, wait_for

from hermes_watchdog.observe import pyspy
from hermes_watchdog.observe.stacks import analyse


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=20)
    a = p.parse_args()
    binary = pyspy.find_py_spy()
    if binary is None:
        print("py-spy not found", file=sys.stderr)
        return 2
    home = Path(tempfile.mkdtemp(prefix="bench-stack-")) / "hermes"
    gw = start_gateway(home, "spin", "--spin-after", "1")
    try:
        if not wait_for(lambda: any(e["event"] == "spin" for e in sim_events(home)), 30):
            print("the simulated gateway did not spin", file=sys.stderr)
            return 1
        times, in_loop = [], 0
        for _ in range(a.count):
            t0 = time.perf_counter()
            dump, reason, _hint = pyspy.dump_once(binary, gw.pid, 5.0)
            times.append((time.perf_counter() - t0) * 1000)
            if dump is None:
                print(f"dump failed: {reason}", file=sys.stderr)
                return 1
            # The bench knows what it spins (the simulated QQ adapter): no rule of the watchdog does.
            in_loop += any(f.function.endswith("_listen_loop") for f in analyse([dump], None).frames)
        s = summary(times)
        emit("stack_capture", ["dumps", "median ms", "max ms", "min ms", "median/100 ms", "in adapter loop"],
             [[s["n"], s["median"], s["max"], s["min"], round(s["median"] / 100, 3), in_loop]],
             {"ms": s, "ratio": round(s["median"] / 100, 3), "adapter_loop_dumps": in_loop})
        return 0 if s["median"] <= 100 else 1
    finally:
        stop_group(gw)


if __name__ == "__main__":
    sys.exit(main())
