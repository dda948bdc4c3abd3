"""Issue 25 on real processes: sliced loops are never taken for spins, and a true spin is still restarted.

soak: simulated gateways whose loop computes N ms, then ``await asyncio.sleep(0)``, forever (mode
    ``sliced``, every platform connected), for 5, 20 and 50 ms slices, each with and without the fix pack's
    hook (``--hook``: the loop-turn counter), in the 0.14 shape (no heartbeat) and/or the 0.19.0 shape
    (an on-loop heartbeat every 30 s), side by side under one `hermes-watchdog run` at default settings
    for --soak seconds (600). Counted: restarts, busy-loop verdicts and incidents, and the loop's turns a
    second as the counter saw them. Six gateways that each want a core load both cores of this machine.
spin: a loop that never yields (``spin-connected``, every platform connected) with and without the hook, at
    default settings; seconds from spin onset to the daemon's decision and to a healthy relaunched gateway
    (target 30 s), and what proved it (``counter``; without it ``stack+syscalls`` where ptrace is allowed,
    else ``stack``).

  python bench/turns.py [--soak 600] [--shapes 0.14,0.19.0] [--runs 3] [--skip-soak] [--skip-spin] [--load N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    emit,
    read_json,
    running,
    sim_events,
    start_daemon,
    start_managed,
    start_supervised,
    stop_group,
    summary,
    wait_for,
)
from detection import timed_daemon

from hermes_watchdog import config

SHAPES = {"0.14": (), "0.19.0": ("--heartbeat-period", "30")}


def sup_dir(home: Path) -> Path:
    """The supervisor's own folder beside each home (names hold dots: no with_suffix)."""
    return home.parent / f"{home.name}.sup"


def soak(seconds: float, shapes: list[str]) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="bench-turns-"))
    names: dict[str, tuple[str, ...]] = {}
    for shape in shapes:
        for ms in (5, 20, 50):
            for hook in (False, True):
                names[f"{shape}/{ms}ms{'+hook' if hook else ''}"] = (
                    "--slice-ms", str(ms), "--extra-platforms", "telegram", *SHAPES[shape],
                    *(("--hook",) if hook else ()))
    homes = {n: root / n.replace("/", "_").replace("+", "_") for n in names}
    for n in names:
        sup_dir(homes[n]).mkdir(parents=True, exist_ok=True)
    sups = {n: start_supervised(homes[n], sup_dir(homes[n]), "sliced", *args)
            for n, args in names.items()}
    log = root / "daemon.log"
    d = None
    try:
        if not wait_for(lambda: all(running(h) for h in homes.values()), 60):
            return {"error": "not every gateway ran"}
        d = start_daemon("--state-dir", str(root / "wd"), "--restart-with", "signal",
                         *[a for h in homes.values() for a in ("--hermes-home", str(h))], log=log)
        started = time.time()
        rates: dict[str, list[float]] = {n: [] for n in names}
        stacks: dict[str, dict[str, int]] = {n: {"usable_bursts": 0, "most_off_selector_samples": 0} for n in names}
        while time.time() - started < seconds:
            time.sleep(10)
            st = read_json(root / "wd" / "state.json") or {}
            for g in st.get("gateways") or []:
                n = next((k for k, h in homes.items() if str(h) == g.get("home")), None)
                loop = (g.get("verdict") or {}).get("loop") or {}
                counter = loop.get("counter") or {}
                if n and counter.get("turns_per_second") is not None:
                    rates[n].append(float(counter["turns_per_second"]))
                if n:
                    stacks[n]["usable_bursts"] = max(stacks[n]["usable_bursts"], loop.get("usable_bursts") or 0)
                    stacks[n]["most_off_selector_samples"] = max(stacks[n]["most_off_selector_samples"],
                                                                 loop.get("off_selector_samples") or 0)
        text = log.read_text()
        incidents = list((root / "wd" / "incidents").glob("*")) if (root / "wd" / "incidents").is_dir() else []
        rows = []
        for n in names:
            sup = read_json(sup_dir(homes[n]) / "supervisor.json") or {}
            rows.append({"gateway": n, "launches": sup.get("launches"),
                         "busy_loop_verdicts": sum(1 for line in text.splitlines()
                                                   if "-> busy-loop" in line and str(homes[n]) in line),
                         "turns_per_second": summary(rates[n]) if rates[n] else None, **stacks[n]})
        return {"seconds": seconds, "restarts": text.count(" RESTART "), "busy_loop_lines": text.count("busy-loop"),
                "incidents": len(incidents), "gateways": rows}
    finally:
        if d is not None:
            stop_group(d)
        for s in sups.values():
            stop_group(s)


def spin_run(hook: bool, spin_after: float, shape: str = "0.14", limit: float = 300.0) -> dict[str, Any] | None:
    root = Path(tempfile.mkdtemp(prefix="bench-turns-spin-"))
    home = root / "hermes"
    # A real s6 service and the default restart (auto finds s6) where s6 is installed (bench/_common.py).
    sup = start_managed(home, root, "spin-connected", "--spin-after", f"{spin_after:g}", "--extra-platforms",
                        "telegram", "--spin-once-marker", str(root / "spun"), *SHAPES[shape],
                        *(("--hook",) if hook else ()))
    try:
        if not wait_for(lambda: running(home), 30):
            return None
        cfg = config.build(None, {"hermes_home": [str(home)], **sup.config, "state_dir": str(root / "watchdog")})
        stop, marks = threading.Event(), {}
        d = timed_daemon(cfg, marks, stop)
        timer = threading.Timer(limit, stop.set)
        timer.daemon = True
        timer.start()
        d.run()
        timer.cancel()
        spins = [e["at"] for e in sim_events(home) if e["event"] == "spin"]
        if not spins or "recover" not in marks:
            print(f"  run failed: marks={marks}", file=sys.stderr)
            return None
        onset = spins[0]
        inc = next(iter(sorted((root / "watchdog" / "incidents").glob("*/incident.json"))), None)
        proof = (json.loads(inc.read_text()).get("verdict") or {}).get("proof") if inc else None
        return {"detect": round(marks["detect"] - onset, 2), "recover": round(marks["recover"] - onset, 2),
                "signature": marks.get("signature"), "proof": proof, "manager": sup.manager}
    finally:
        sup.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--soak", type=float, default=600.0)
    p.add_argument("--shapes", default="0.14")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--skip-soak", action="store_true")
    p.add_argument("--skip-spin", action="store_true")
    p.add_argument("--load", type=int, default=0, help="busy processes beside the spinning gateway (spin part)")
    a = p.parse_args()
    ok, data, rows = True, {}, []
    if not a.skip_soak:
        s = soak(a.soak, a.shapes.split(","))
        print(json.dumps(s), file=sys.stderr)
        data["soak"] = s
        ok = ok and s.get("restarts") == 0 and s.get("incidents") == 0 and s.get("busy_loop_lines") == 0
        for g in s.get("gateways") or []:
            tps = g["turns_per_second"]
            rows.append(["soak " + g["gateway"], f"{a.soak:.0f} s", g["launches"], g["busy_loop_verdicts"],
                         tps["median"] if tps else "-", "-", "-"])
    if not a.skip_spin:
        data["spin"] = []
        # --load: busy processes beside the gateway for the whole spin part (a machine whose cores are taken).
        load = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(a.load)]
        data["load"] = a.load
        try:
            spins = {(shape, hook): [r for r in (spin_run(hook, 6.0 + 1.3 * i, shape) for i in range(a.runs)) if r]
                     for shape in a.shapes.split(",") for hook in (True, False)}
        finally:
            for proc in load:
                proc.kill()
                proc.wait()
        for (shape, hook), runs in spins.items():
            print(f"  spin {shape} hook={hook}: {runs}", file=sys.stderr)
            data["spin"].append({"shape": shape, "hook": hook, "runs": runs})
            ok = ok and len(runs) == a.runs  # a run that never recovered is a miss
            if runs:
                rec = summary([r["recover"] for r in runs])
                rows.append([f"{shape} spin{' +hook' if hook else ''}", f"{len(runs)} runs", "-", "-", "-",
                             summary([r["detect"] for r in runs])["median"], f"{rec['median']} / {rec['max']}"
                             f" ({', '.join(sorted({str(r['proof']) for r in runs}))})"])
                ok = ok and rec["max"] <= 30.0
    emit("turns", ["gateway", "run", "launches", "busy-loop", "turns/s med", "detect med", "healthy med / max"],
         rows, data)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
