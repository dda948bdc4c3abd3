"""Time from spin onset to a verified relaunch, per Hermes release family, at default settings.

For each family shape of the simulated gateway (``--release``, sim/releases.py; the gateway options are
tests/test_families_e2e.py's: the 0.20 and 0.22 shapes write their off-loop heartbeat every 2 s), a gateway
as a real s6 service (the stand-in supervisor where s6 is not installed, or with --stand-in) starts healthy
with every platform connected and, a few seconds later, spins on its loop (mode spin-connected; the onset
is recorded in sim-events.jsonl). A real Daemon, in this
process so the moments are exact (bench/detection.py's timed_daemon), watches it with no tuning flags at
all: its own state dir and, under s6, where the scan directory is (restart: auto, which finds s6; under the
stand-in, --restart-with signal). Measured from spin onset:
  detect  -> the daemon decides to act (an incident opens), with the verdict it gave
  healthy -> the relaunched gateway is verified (running, CPU calm)
A run the daemon never restarts within --limit seconds is reported as a miss, with its verdict. Target: healthy
within 30 s of the onset; the ratio printed is max / 30 s.

  python bench/families.py [--runs 3] [--families 0.14,0.19.0,0.20,0.22] [--target 30] [--limit 120]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, running, sim_events, start_managed, summary, wait_for
from detection import timed_daemon

from hermes_watchdog import config

# The gateway options of each family shape, beside --release (as tests/test_families_e2e.py runs them).
FAMILIES: dict[str, tuple[str, ...]] = {
    "0.14": (),
    "0.19.0": (),
    "0.20": ("--heartbeat-period", "2"),
    "0.22": ("--heartbeat-period", "2"),
}


def one_run(release: str, spin_after: float, limit: float, stand_in: bool = False) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="bench-families-"))
    home = root / "hermes"
    sup = start_managed(home, root, "spin-connected", "--release", release, *FAMILIES[release],
                        "--extra-platforms", "telegram", "--spin-after", f"{spin_after:g}",
                        "--spin-once-marker", str(root / "spun"), stand_in=stand_in)
    try:
        if not wait_for(lambda: running(home), 60):
            return {"miss": "the gateway never ran"}
        cfg = config.build(None, {"hermes_home": [str(home)], **sup.config, "state_dir": str(root / "watchdog")})
        stop, marks = threading.Event(), {}
        d = timed_daemon(cfg, marks, stop)
        timer = threading.Timer(limit, stop.set)
        timer.daemon = True
        timer.start()
        d.run()
        timer.cancel()
        spins = [e["at"] for e in sim_events(home) if e["event"] == "spin"]
        if not spins:
            return {"miss": "the gateway never spun"}
        onset = spins[0]
        out: dict[str, Any] = {k: round(marks[k] - onset, 3) for k in ("detect", "recover") if marks.get(k)}
        # The verdict acted on; else (a miss) the last one the daemon held.
        last = [w.verdict.signature for w in d.watches.values() if w.verdict is not None]
        out["signature"] = marks.get("signature") or (last[0] if last else None)
        out["manager"] = sup.manager
        if "recover" not in marks:
            out["miss"] = f"not restarted {time.time() - onset:.0f} s after the onset"
        return out
    finally:
        sup.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--families", default=",".join(FAMILIES))
    p.add_argument("--target", type=float, default=30.0, help="seconds, spin onset -> verified relaunch")
    p.add_argument("--limit", type=float, default=120.0, help="seconds a run may take before it is a miss")
    p.add_argument("--stand-in", action="store_true",
                   help="relaunch through the stand-in supervisor (--restart-with signal) even where s6 is installed")
    a = p.parse_args()
    rows, results = [], []
    for release in a.families.split(","):
        runs = []
        for i in range(a.runs):
            # The onset moves across the 5 s tick from run to run: the first sample after it comes 0-5 s later.
            r = one_run(release, 8.0 + 1.1 * i, a.limit, a.stand_in)
            print(f"  {release} run {i + 1}: {r}", file=sys.stderr)
            runs.append(r)
        ok = [r for r in runs if "recover" in r]
        sigs = sorted({str(r.get("signature")) for r in runs})
        res: dict[str, Any] = {"family": release, "runs": len(runs), "restarted": len(ok), "signatures": sigs,
                               "target": a.target, "each": runs}
        if ok:
            rec = summary([r["recover"] for r in ok])
            det = summary([r["detect"] for r in ok])
            res.update(detect=det, recover=rec, ratio_median=round(rec["median"] / a.target, 3),
                       ratio_max=round(rec["max"] / a.target, 3))
            rows.append([release, f"{len(ok)}/{len(runs)}", det["median"], rec["median"], rec["max"],
                         res["ratio_max"], ", ".join(sigs)])
        else:
            rows.append([release, f"0/{len(runs)}", "-", "-", "-", "miss", ", ".join(sigs)])
        results.append(res)
    emit("families_time_to_healthy", ["family", "restarted", "detect med", "healthy med", "healthy max",
                                      f"max/{a.target:g} s", "verdict"], rows,
         {"settings": "defaults; " + ", ".join(sorted({r.get("manager", "?") for x in results
                                                       for r in x.get("each", [])})), "results": results})
    good = all(r["restarted"] == r["runs"] and r.get("ratio_max", 2) <= 1 for r in results)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
