"""Detection and recovery latency, measured on a real spinning simulated gateway.

For each window (8, 30, 60 s) and interval (1, 5 s), RUNS times: a simulated gateway under a relaunching
supervisor starts healthy and, a few seconds later, loses its socket and spins one core (the sim records
that moment in sim-events.jsonl). A real Daemon (in this process, so the moments are exact) watches it
with --restart-with signal and --grace GRACE. Measured from spin onset:
  detect   -> the daemon decides to act (verdict held for the window)
  evidence -> the incident is written (py-spy stacks, log tail)
  recover  -> the relaunched gateway is verified (running, CPU calm)
Targets: detect <= window + interval; recover <= window + grace + 10 s.

  python bench/detection.py [--runs 5] [--windows 8,30,60] [--intervals 1,5] [--grace 5]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, running, sim_events, start_supervised, stop_group, summary, wait_for

from hermes_watchdog import config
from hermes_watchdog.daemon.loop import Daemon
from hermes_watchdog.record.events import EventLog


class TimedDaemon(Daemon):
    """The real daemon, with the moments of decision, evidence and verification noted."""

    marks: dict[str, float]

    def _open(self, w, verdict, action):  # type: ignore[no-untyped-def]
        self.marks.setdefault("detect", time.time())
        super()._open(w, verdict, action)
        self.marks.setdefault("evidence", time.time())

    def _finish(self, w, ok, why):  # type: ignore[no-untyped-def]
        super()._finish(w, ok, why)
        self.marks["recover" if ok else "failed"] = time.time()


def one_run(window: float, interval: float, grace: float) -> dict[str, float] | None:
    root = Path(tempfile.mkdtemp(prefix="bench-detect-"))
    home = root / "hermes"
    spin_after = max(3.0, 2 * interval)
    sup = start_supervised(home, root, "spin", "--spin-after", str(spin_after), "--spin-once-marker",
                           str(root / "spun"))
    try:
        if not wait_for(lambda: running(home), 30):
            return None
        cfg = config.build(None, {"hermes_home": [str(home)], "interval": interval, "window": window,
                                  "grace": grace, "restart_with": "signal", "cooldown": 0.0,
                                  "start_timeout": 60.0, "state_dir": str(root / "watchdog")})
        stop = threading.Event()
        d = TimedDaemon(cfg, EventLog(io.StringIO(), rich=False), stop=stop,
                        until=lambda d: "recover" in d.marks or "failed" in d.marks)
        d.marks = {}
        timer = threading.Timer(window * 3 + 120, stop.set)
        timer.daemon = True
        timer.start()
        d.run()
        timer.cancel()
        spins = [e["at"] for e in sim_events(home) if e["event"] == "spin"]
        if not spins or "recover" not in d.marks:
            print(f"  run failed: marks={d.marks} spins={spins}", file=sys.stderr)
            return None
        onset = spins[0]
        return {k: d.marks[k] - onset for k in ("detect", "evidence", "recover")}
    finally:
        stop_group(sup)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--windows", default="8,30,60")
    p.add_argument("--intervals", default="1,5")
    p.add_argument("--grace", type=float, default=5.0)
    a = p.parse_args()
    rows, results = [], []
    for window in [float(x) for x in a.windows.split(",")]:
        for interval in [float(x) for x in a.intervals.split(",")]:
            runs = [r for r in (one_run(window, interval, a.grace) for _ in range(a.runs)) if r]
            if not runs:
                rows.append([f"{window:g}", f"{interval:g}", 0, "-", "-", "-", "-", "-", "-", "-"])
                continue
            det = summary([r["detect"] for r in runs])
            ev = summary([r["evidence"] - r["detect"] for r in runs])
            rec = summary([r["recover"] for r in runs])
            det_target, rec_target = window + interval, window + a.grace + 10
            res = {"window": window, "interval": interval, "runs": len(runs), "detect": det,
                   "detect_target": det_target, "detect_ratio_max": round(det["max"] / det_target, 3),
                   "evidence": ev, "recover": rec, "recover_target": rec_target,
                   "recover_ratio_max": round(rec["max"] / rec_target, 3)}
            results.append(res)
            rows.append([f"{window:g}", f"{interval:g}", len(runs), det["median"], det["max"],
                         res["detect_ratio_max"], ev["median"], rec["median"], rec["max"], res["recover_ratio_max"]])
            print(f"  window {window:g} interval {interval:g}: {res}", file=sys.stderr)
    emit("detection", ["window", "interval", "runs", "detect med", "detect max", "max/(W+I)", "evidence med",
                       "recover med", "recover max", "max/(W+G+10)"], rows,
         {"grace": a.grace, "results": results})
    ok = all(r["detect_ratio_max"] <= 1 and r["recover_ratio_max"] <= 1 for r in results) and results
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
