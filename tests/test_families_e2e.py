"""Every release family's shape, judged by the real `hermes-watchdog run` at default settings.

The simulated gateway writes each family's own liveness files (``--release``, sim/releases.py): none on
0.14, an on-loop heartbeat every 30 s on 0.19.0, an off-loop heartbeat flagged ``loop_tick_socket`` (every
2 s here, as in issue 19's trial) plus the loop-tick socket on 0.20 (0.19.1-0.21.3) and 0.22 (0.21.4+). The
real 0.14.0 and 0.19.0 from PyPI stay the anchors (tests/test_real_gateway.py); these are the shapes that
cannot run here.

Per family, one test, two daemons, each watching several supervised homes side by side; only
``--restart-with`` (and ``--frozen-after``, shorter than the default 60 s, for the blocked loops; daemon B
adds ``--frozen-action restart``) is set:
  daemon A: a spin on the loop with every platform connected -> busy-loop, restarted, verified;
            a loop blocked in ``_flush_ledger_sync`` -> loop-frozen naming it, alerted, never killed;
            an idle gateway -> healthy, untouched.
  daemon B (--frozen-action restart): the blocked loop again -> restarted where the family gives a second
            witness (0.19.0's heartbeat, the tick socket of 0.20+), only alerted on 0.14 (the stack alone);
            heartbeat writes failing as on a full disk, and the legitimate bursty loop -> never restarted.
No timed asserts: every wait is a poll with a generous deadline, and the verdicts must hold on a loaded machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import events, read_json, wait_for
from tests.managed import start_managed

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="schedstat demand is Linux-only")

# Per family: the gateway options beside --release, and the daemons' --frozen-after (0.19.0's heartbeat comes
# every 30 s: one and a half periods, as tests/test_real_gateway.py does with the real 0.19.0).
FAMILIES = {
    "0.14": ((), 20),
    "0.19.0": ((), 45),
    "0.20": (("--heartbeat-period", "2"), 20),
    "0.22": (("--heartbeat-period", "2"), 20),
}
SECOND_WITNESS = {"0.14": None, "0.19.0": "heartbeat", "0.20": "loop-tick", "0.22": "loop-tick"}
LONG = 300.0  # only a bound on waiting, never on how fast anything happens


# ---------------------------------------------------------------- the files each shape writes (seconds)

def _start(home: Path, release: str, *extra: str) -> subprocess.Popen[bytes]:
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "hermes_watchdog.sim.gateway", "--release", release, *extra],
                            env={**os.environ, "HERMES_HOME": str(home)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def test_each_release_writes_its_own_liveness_files_and_sigusr2_does_what_it_did(tmp_path: Path) -> None:
    procs = {r: _start(tmp_path / r, r, "--heartbeat-period", "1" if r != "0.14" else "0") for r in FAMILIES}
    try:
        def beat(r: str) -> dict | None:
            return read_json(tmp_path / r / "state" / "gateway.heartbeat")

        def running(r: str) -> bool:
            st = read_json(tmp_path / r / "gateway_state.json") or {}
            return st.get("pid") == procs[r].pid and st.get("gateway_state") == "running"

        wait_for(lambda: all(running(r) for r in FAMILIES) and all(beat(r) for r in FAMILIES if r != "0.14"),
                 what="every shape running, with its heartbeat where it has one")
        state = {r: sorted(p.name for p in (tmp_path / r / "state").glob("*")) if (tmp_path / r / "state").exists()
                 else [] for r in FAMILIES}
        assert state["0.14"] == [] and not (tmp_path / "0.14" / "gateway-starts.log").exists()
        assert set(beat("0.19.0") or {}) == {"pid", "updated_at", "monotonic", "start_time"}
        assert state["0.19.0"] == ["gateway.heartbeat"]
        for r in ("0.20", "0.22"):
            hb = beat(r) or {}
            assert hb["loop_tick_socket"] is True and hb["loop_tick_tcp_port"] is None and "rss_kib" in hb["mem"]
            assert hb["pid"] == procs[r].pid and isinstance(hb["start_time"], float)
            assert f"gateway.loop-tick.{procs[r].pid}.sock" in state[r]
            life = read_json(tmp_path / r / "state" / "gateway.lifecycle.json") or {}
            assert life["phase"] == "running" and life["pid"] == procs[r].pid
        for r in ("0.19.0", "0.20", "0.22"):
            starts = (tmp_path / r / "gateway-starts.log").read_text().split()
            assert len(starts) == 1 and abs(float(starts[0]) - time.time()) < 600
        # SIGUSR2: terminates 0.14 and 0.19.0 (nothing handles it) and 0.20 (dump, then chained to the default
        # action, #84373); 0.22 dumps and lives on (chain=False, #111435).
        for p in procs.values():
            p.send_signal(signal.SIGUSR2)
        for r in ("0.14", "0.19.0", "0.20"):
            assert procs[r].wait(30) == -signal.SIGUSR2, r
        assert "Thread" in (tmp_path / "0.20" / "logs" / "gateway_faulthandler.log").read_text()
        wait_for(lambda: "Thread" in (tmp_path / "0.22" / "logs" / "gateway_faulthandler.log").read_text(),
                 what="0.22's faulthandler dump")
        assert procs["0.22"].poll() is None
        procs["0.22"].send_signal(signal.SIGTERM)
        assert procs["0.22"].wait(30) == 0
        assert (read_json(tmp_path / "0.22" / "state" / "gateway.lifecycle.json") or {})["phase"] == "exited"
        assert not (tmp_path / "0.22" / "state" / f"gateway.loop-tick.{procs['0.22'].pid}.sock").exists()
        # 0.20 again in the home SIGUSR2 killed: the ledger says the last life died uncleanly, the dead PID's
        # tick socket is swept, and the boot is one for the restart-loop breaker (chained boots, #82574).
        dead = procs["0.20"].pid
        procs["again"] = _start(tmp_path / "0.20", "0.20")
        wait_for(lambda: (tmp_path / "0.20" / "state" / f"gateway.loop-tick.{procs['again'].pid}.sock").exists(),
                 what="the relaunched 0.20 to serve its tick socket (the stale ones are swept before)")
        life = read_json(tmp_path / "0.20" / "state" / "gateway.lifecycle.json") or {}
        assert life["phase"] == "running" and life["prior_unclean_exit"] is True, life
        assert not (tmp_path / "0.20" / "state" / f"gateway.loop-tick.{dead}.sock").exists()
        assert len((read_json(tmp_path / "0.20" / "gateway" / "restart_loop.json") or {})["boots"]) == 1
        assert len((tmp_path / "0.20" / "gateway-starts.log").read_text().split()) == 2
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(10)


# ---------------------------------------------------------------- verdicts at default settings, per family

def _incident_of(d, home: Path) -> dict:  # type: ignore[no-untyped-def]
    for folder in d.incidents():
        rec = read_json(folder / "incident.json") or {}
        if (rec.get("hermes_home") or {}).get("path") == str(home):
            return {**rec, "_folder": str(folder), "_report": (folder / "report.md").exists()}
    return {}


def _witnessed(inc: dict) -> set[str]:
    """The witnesses of a loop-frozen incident: those at its opening, and those named when an alert was
    escalated to a restart (a second witness came in later)."""
    notes = [n for n in inc.get("timeline") or [] if "witnessed by" in str(n)]
    return set((inc.get("verdict") or {}).get("witnesses") or []) | {
        w for w in ("stack", "heartbeat", "loop-tick") if any(w in str(n) for n in notes)}


def _loop(d, home: Path) -> dict:  # type: ignore[no-untyped-def]
    return ((d.gateway_at(home).get("verdict") or {}).get("loop")) or {}


@linux_only
@pytest.mark.parametrize("release", list(FAMILIES))
def test_family_verdicts_at_default_settings(release: str, tmp_path: Path, daemons) -> None:  # type: ignore[no-untyped-def]
    extra, frozen_after = FAMILIES[release]
    gw = ("--release", release, *extra)
    specs = {
        "spin": ("--mode", "spin-connected", "--spin-after", "8", "--extra-platforms", "telegram",
                 "--spin-once-marker", str(tmp_path / "spun")),
        "blocked": ("--mode", "blocking", "--spin-after", "2"),
        "idle": ("--mode", "healthy"),
        "blocked2": ("--mode", "blocking", "--spin-after", "2", "--spin-once-marker", str(tmp_path / "blocked2.once")),
        "bursty": ("--mode", "bursty"),
    }
    if release in ("0.14", "0.19.0"):
        # No loop-tick socket in these shapes: without the fix pack's counter, a spin is proven only by 11,510
        # stack samples taken while the loop ran (a 0.001 error bound, judge/proof.py), which a suite loading
        # both cores cannot gather in bounded time; test_loop_verdicts covers that path. Here the counter.
        specs["spin"] = (*specs["spin"], "--hook")
    if release != "0.14":  # 0.14 writes no heartbeat: nothing to fail
        specs["diskfull"] = ("--mode", "healthy", "--heartbeat-fail-after", "3")
    homes = {name: tmp_path / name for name in specs}
    sups = {name: start_managed(homes[name], *gw, *args) for name, args in specs.items()}
    try:
        pids = {name: s.wait_running() for name, s in sups.items()}
        # The loops are blocked before the daemons start, so their first loop burst sees it: at the default
        # --stack-every (120 s) a block that starts just after a burst on 0.14 (no other witness to make it
        # suspect) would wait for the next one.
        for name in ("blocked", "blocked2"):
            wait_for(lambda n=name: any(e["event"] == "frozen" for e in events(homes[n])), what=f"{name} to block")
        a_homes, b_homes = ("spin", "blocked", "idle"), [n for n in ("blocked2", "bursty", "diskfull") if n in specs]
        flags = ("--restart-with", "signal", "--frozen-after", str(frozen_after))
        a = daemons(tmp_path / "wd-a", *[x for n in a_homes for x in ("--hermes-home", str(homes[n]))], *flags)
        b = daemons(tmp_path / "wd-b", *[x for n in b_homes for x in ("--hermes-home", str(homes[n]))], *flags,
                    "--frozen-action", "restart")
        restart_b = SECOND_WITNESS[release] is not None

        def done() -> bool:
            for d in (a, b):
                if d.proc.poll() is not None:
                    raise AssertionError(f"a daemon exited ({d.proc.returncode}):\n{d.events()}")
            for name in ("idle", "blocked", "bursty", *(["diskfull"] if "diskfull" in specs else [])):
                assert sups[name].launches == 1 and psutil.pid_exists(pids[name]), f"{name} was restarted"
            spin, blocked, blocked2 = (_incident_of(a, homes["spin"]), _incident_of(a, homes["blocked"]),
                                       _incident_of(b, homes["blocked2"]))
            # Fail at once, with the verdict, when an incident opens under another name than the one expected.
            for name, inc, want in (("spin", spin, "busy-loop"), ("blocked", blocked, "loop-frozen"),
                                    ("blocked2", blocked2, "loop-frozen")):
                got = (inc.get("verdict") or {}).get("signature")
                assert got in (None, want), f"{release} {name}: {got}, not {want}: {inc.get('verdict')}"
            soaked = _loop(b, homes["bursty"]).get("usable_bursts", 0) >= 6
            if "diskfull" in specs:
                beat = b.gateway_at(homes["diskfull"]).get("heartbeat") or {}
                soaked = soaked and beat.get("stale") is True \
                    and _loop(b, homes["diskfull"]).get("usable_bursts", 0) >= 3
            return (spin.get("result") == "restarted" and blocked.get("_report", False) and soaked
                    and (blocked2.get("result") == "restarted" if restart_b else blocked2.get("_report", False)))

        wait_for(done, LONG, what=f"{release}: the spin restarted, the blocked loops handled, the soak long enough",
                 step=0.5)

        spin = _incident_of(a, homes["spin"])
        v = spin["verdict"]
        # Proven by the counter where the spin runs with the fix pack (0.14, 0.19.0 here), else by the stack
        # with a second witness standing in for the sample count (0.20, 0.22): the silent loop-tick socket
        # ("stack") or a ptrace watch that saw no epoll_wait ("stack+syscalls"), whichever answered first.
        assert v["signature"] == "busy-loop" and (v["proof"] == "counter" if release in ("0.14", "0.19.0")
                                                  else v["proof"] in ("stack", "stack+syscalls")), v
        # The call is named by the loop's samples, or (the counter can prove it before a burst ran) by the
        # incident's stack.
        frames = [f.get("function") for f in ((spin.get("stack") or {}).get("hot_thread") or {}).get("frames") or []]
        assert v["platforms_down"] == [] and ("_reconcile_presence" in (v["blocking_frame"] or "")
                                              or "_reconcile_presence" in frames), (v, frames)
        assert spin["new_pid"] not in (None, pids["spin"]) and sups["spin"].launches >= 2

        blocked = _incident_of(a, homes["blocked"])
        v = blocked["verdict"]
        assert v["signature"] == "loop-frozen" and v["witnesses"], v  # 0.19.0's stale heartbeat may come first
        assert "_flush_ledger_sync" in (v["blocking_frame"] or ""), v
        assert blocked["action"]["kind"] == "alert" and not blocked.get("restart"), blocked["action"]

        blocked2 = _incident_of(b, homes["blocked2"])
        v = blocked2["verdict"]
        assert v["signature"] == "loop-frozen" and "_flush_ledger_sync" in (v["blocking_frame"] or ""), v
        if restart_b:
            assert _witnessed(blocked2) >= {"stack", SECOND_WITNESS[release]}, (v, blocked2.get("timeline"))
            assert blocked2["result"] == "restarted" and sups["blocked2"].launches >= 2
        else:
            assert v["witnesses"] == ["stack"], v  # one witness: alerted, never restarted
            assert blocked2["action"]["kind"] == "alert" and sups["blocked2"].launches == 1

        for name in ("idle", "bursty", *(["diskfull"] if "diskfull" in specs else [])):
            d = a if name in a_homes else b
            assert _incident_of(d, homes[name]) == {}, name
            assert sups[name].launches == 1 and psutil.pid_exists(pids[name]), name
        assert (a.gateway_at(homes["idle"]).get("verdict") or {}).get("signature") == "healthy"
        if "diskfull" in specs:  # the failing heartbeat was seen, and the loop turning vetoed it
            v = b.gateway_at(homes["diskfull"])["verdict"]
            assert v["signature"] == "healthy", v
        assert (b.gateway_at(homes["bursty"]).get("verdict") or {}).get("signature") != "busy-loop"
    finally:
        for s in sups.values():
            s.stop()
