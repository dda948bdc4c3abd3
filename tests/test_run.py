"""`hermes-watchdog run` with real processes: a simulated gateway that really spins under a relaunching
supervisor, the real py-spy, real signals. launchd is a stand-in (tests/standins/: macOS only); the real
systemd and s6 are in test_real_systemd.py and test_real_s6.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
from pathlib import Path

import psutil

from hermes_watchdog.observe.processes import identity
from hermes_watchdog.sim.gateway import PLANTED_SECRETS
from tests.helpers import (
    all_files,
    assert_one_line_error,
    cli,
    demand,
    epoch,
    read_json,
    standin_calls,
    standin_env,
    wait_for,
)

FAST = ("--interval", "0.5", "--window", "3", "--grace", "1", "--cooldown", "0", "--start-timeout", "30",
        "--loop-proof", "3")  # the proof's default length is tested at defaults (test_loop_verdicts, families)


def spin_args(marker: Path | None = None, hook: bool = True) -> list[str]:
    """A gateway that spins 1 s after start. With the fix pack's hook (the default here) its loop-turn counter
    proves the spin in seconds; the first test below keeps the stack-only proof."""
    args = ["--mode", "spin", "--spin-after", "1", *(["--hook"] if hook else [])]
    return args + (["--spin-once-marker", str(marker)] if marker else [])


def test_spinning_gateway_is_restarted_once_with_sigkill_and_verified(tmp_path, supervised, daemons) -> None:
    home = tmp_path / "hermes"
    sup = supervised(home, *spin_args(tmp_path / "spun", hook=False))  # no counter: the stack samples prove it
    old = sup.wait_running()
    d = daemons(tmp_path / "state", "--hermes-home", str(home), "--restart-with", "signal", *FAST)
    wait_for(lambda: d.incidents() and d.incident().get("result") == "restarted", what="a verified restart")
    inc = d.incident()
    assert inc["signature"] == "busy-loop" and inc["pid"] == old
    assert inc["restart"]["signals"] == ["SIGTERM", "SIGKILL"]  # SIGTERM is ignored by the spinning loop
    assert inc["verify"]["ok"] is True and inc["verify"]["sigkill_needed"] is True
    assert not psutil.pid_exists(old) or psutil.Process(old).status() == psutil.STATUS_ZOMBIE
    assert inc["new_pid"] == sup.child and sup.launches == 2
    assert inc["identity"]["pid"] == old and inc["identity"]["cmdline"]
    assert len(inc["window_samples"]) >= 6 and inc["thresholds"]["window"] == 3
    # A whole further window of the new gateway, healthy: still exactly one restart.
    wait_for(lambda: d.settled_healthy(3.0), what="the new gateway to be watched healthy for a window")
    assert len(d.incidents()) == 1 and sup.launches == 2
    assert len(d.gateway()["restart_history"]) == 1 and d.gateway()["pid"] == sup.child
    folder = d.incidents()[0]
    assert {p.name for p in all_files(folder)} == {"incident.json", "stack.txt", "state.json", "logs-tail.txt",
                                                   "report.md"}
    assert "QQAdapter._listen_loop" in (folder / "stack.txt").read_text()
    # The known upstream issue, matched from the captured stack (the sim reports no Hermes version: "may").
    known = read_json(folder / "incident.json")["known_issues"]
    assert [k["id"] for k in known] == ["qqbot-closed-socket"] and known[0]["text"].startswith("may match"), known
    assert "hermes-agent #17703" in (folder / "report.md").read_text()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for p in [*all_files(tmp_path / "state")]:
        text = p.read_text()
        assert not any(s in text for s in PLANTED_SECRETS), p
        if p.name != "watchdog.lock":
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    events = d.events()
    assert events.count(" ALERT ") == 1 and events.count(" RECOVERED ") == 1
    d.terminate()
    assert d.proc.returncode == 0


def test_restart_storm_stops_at_the_budget(tmp_path, supervised, daemons) -> None:
    home = tmp_path / "hermes"
    # Spins again 2 s after every relaunch: each restart verifies, then the next window fails again.
    sup = supervised(home, "--mode", "spin", "--spin-after", "2", "--hook")  # the counter proves each spin fast
    sup.wait_running()
    d = daemons(tmp_path / "state", "--hermes-home", str(home), "--restart-with", "signal", "--max-restarts", "2",
                *FAST)
    d.wait_event(" GIVE-UP ")
    # Two more windows after the give-up, by the daemon's clock: still no third restart, said once.
    wait_for(lambda: d.incidents() and d.incident().get("result") == "gave-up", what="the give-up incident")
    gave_up_at = epoch(d.incident()["opened_at"])
    wait_for(lambda: (epoch(d.status().get("updated_at")) or 0) - gave_up_at >= 6, what="two more windows")
    assert sup.launches == 3
    history = d.gateway()["restart_history"]
    assert len(history) == 2
    assert d.gateway()["budget"] == {"used": 2, "max": 2, "remaining": 0, "window_seconds": 1800.0,
                                     "exhausted": True}
    assert d.events().count(" GIVE-UP ") == 1
    assert [d.incident(i)["result"] for i in range(len(d.incidents()))] == ["restarted", "restarted", "gave-up"]
    assert demand(sup.child) > 0.9  # still spinning (wanting a core, however busy the machine): we do not act


def test_legitimate_cpu_with_connected_platforms_is_never_restarted(tmp_path, supervised, daemons) -> None:
    home = tmp_path / "hermes"
    sup = supervised(home, "--mode", "busy", "--extra-platforms", "telegram")
    pid = sup.wait_running()
    d = daemons(tmp_path / "state", "--hermes-home", str(home), "--restart-with", "signal", *FAST)
    wait_for(lambda: d.verdict_held("cpu-pegged", 9), what="cpu-pegged held for three windows")
    assert (d.gateway().get("verdict") or {}).get("signature") == "cpu-pegged"
    assert sup.launches == 1 and sup.child == pid and d.incidents() == []
    assert " RESTART " not in d.events()


def test_sustained_legitimate_cpu_is_an_alert_after_pegged_after_never_a_restart(tmp_path, supervised, daemons) -> None:
    home = tmp_path / "hermes"
    sup = supervised(home, "--mode", "busy", "--extra-platforms", "telegram")
    pid = sup.wait_running()
    cfg = tmp_path / "watchdog.toml"
    cfg.write_text("pegged_after = 4\n")  # 10 min by default
    d = daemons(tmp_path / "state", "--config", str(cfg), "--hermes-home", str(home), "--restart-with", "signal",
                *FAST)
    d.wait_event(" ALERT ")
    inc = d.incident()
    assert inc["signature"] == "cpu-pegged" and inc["action"]["kind"] == "alert"
    assert sup.launches == 1 and sup.child == pid and " RESTART " not in d.events()


def test_idle_disconnected_gateway_is_not_restarted_as_busy_loop(tmp_path, supervised, daemons) -> None:
    home = tmp_path / "hermes"
    sup = supervised(home, "--mode", "idle-disconnected", "--spin-after", "0.5")
    pid = sup.wait_running()
    d = daemons(tmp_path / "state", "--hermes-home", str(home), "--restart-with", "signal", *FAST)
    wait_for(lambda: d.verdict_held("stuck-disconnected", 6), what="stuck-disconnected held for two windows")
    assert sup.launches == 1 and sup.child == pid and " RESTART " not in d.events()


def test_dry_run_records_the_incident_and_sends_nothing(tmp_path, supervised, daemons) -> None:
    home = tmp_path / "hermes"
    sup = supervised(home, *spin_args())
    pid = sup.wait_running()
    d = daemons(tmp_path / "state", "--hermes-home", str(home), "--restart-with", "signal", "--dry-run", *FAST)
    wait_for(lambda: d.incidents() and d.incident().get("result") == "dry-run", what="a dry-run incident")
    assert d.incident()["action"]["kind"] == "dry-run"
    wait_for(lambda: "DRY-RUN" in d.events())
    # The gateway ignores SIGTERM, so its being alive proves nothing by itself: what counts is that nothing
    # was sent (no restart record, no RESTART/KILL line) for three more windows, well past the 1 s grace
    # after which a real restart would have SIGKILLed it.
    wait_for(lambda: d.verdict_held("busy-loop", 3 * 3), what="three more windows of the dry run")
    inc = d.incident()
    assert inc["restart"] is None and inc["result"] == "dry-run" and len(d.incidents()) == 1
    assert " RESTART " not in d.events() and " KILL " not in d.events()
    assert psutil.pid_exists(pid) and sup.launches == 1 and sup.child == pid
    assert psutil.Process(pid).status() != psutil.STATUS_ZOMBIE


def test_recycled_pid_gets_no_signal(tmp_path) -> None:
    """The identity taken at discovery no longer matches: nothing is sent, whatever the manager."""
    from hermes_watchdog.act.managers import Target, select
    from hermes_watchdog.facts.identity import Identity
    from hermes_watchdog.observe.signals import guarded_signal

    victim = subprocess.Popen(["sleep", "60"])  # dies on SIGTERM: any signal would show
    try:
        # Until the child has exec'd, its command line is not yet `sleep 60`.
        real = wait_for(lambda: (i := identity(victim.pid)).cmdline == ("sleep", "60") and i, what="sleep to exec")
        recycled = Identity(real.pid, real.create_time - 100, real.cmdline, real.start_ticks)
        other_cmd = Identity(real.pid, real.create_time, ("python", "-m", "hermes_cli.main", "gateway", "run"),
                             real.start_ticks)
        for ident in (recycled, other_cmd):
            ok, why = guarded_signal(ident, signal.SIGKILL, tmp_path)
            assert not ok and ("reused" in why or "another command" in why)
            result = select("signal", Target(tmp_path, None, ident)).restart(Target(tmp_path, None, ident),
                                                                              __import__("threading").Event())
            assert result.ok is False and result.signals == []
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_launchd_restart_uses_kickstart_with_the_profile_label(tmp_path, supervised, daemons, isolated_home) -> None:
    for profile, label in ((None, "ai.hermes.gateway"), ("coder", "ai.hermes.gateway-coder")):
        root = isolated_home / ".hermes"
        home = root / "profiles" / profile if profile else root
        agents = isolated_home / "Library" / "LaunchAgents"
        agents.mkdir(parents=True, exist_ok=True)
        (agents / f"{label}.plist").write_text("<plist/>")
        log = tmp_path / f"calls-{label}.jsonl"
        sup = supervised(home, *spin_args(tmp_path / f"spun-{label}"), stand_in=True)  # launchctl's stand-in signals it
        sup.wait_running()
        d = daemons(tmp_path / f"state-{label}", "--hermes-home", str(home), "--restart-with", "launchd", *FAST,
                    env=standin_env(log, sup))
        wait_for(lambda d=d: d.incidents() and d.incident().get("result") == "restarted", what="restart via launchd")
        assert [c["argv"] for c in standin_calls(log)] == [["kickstart", "-k", f"gui/{os.getuid()}/{label}"]]
        assert d.incident()["restart"]["manager"] == "launchd" and sup.launches == 2
        d.terminate()
        sup.stop()


def test_restart_command_runs_argv_without_a_shell(tmp_path, supervised, daemons) -> None:
    home = tmp_path / "hermes"
    sup = supervised(home, *spin_args(tmp_path / "spun"), stand_in=True)  # relaunch-gateway signals the stand-in
    sup.wait_running()
    log = tmp_path / "calls.jsonl"
    # A command that asks the supervisor to restart: `;` must reach it as text.
    d = daemons(tmp_path / "state", "--hermes-home", str(home), "--restart-with", "command",
                "--restart-command", "relaunch-gateway --unit 'hermes-gateway.service' ;rm", *FAST,
                env=standin_env(log, sup))
    wait_for(lambda: d.incidents() and d.incident().get("result") == "restarted", what="restart by command")
    assert [c["argv"] for c in standin_calls(log)] == [["--unit", "hermes-gateway.service", ";rm"]]
    assert d.incident()["restart"]["manager"] == "command" and d.incident()["restart"]["ok"] is True


def test_state_file_trouble_and_a_vanishing_gateway_keep_the_daemon_running(tmp_path, sim, daemons) -> None:
    home = tmp_path / "hermes"
    g = sim("healthy", home=home).wait_running()
    d = daemons(tmp_path / "state", "--hermes-home", str(home), "--restart-with", "signal", *FAST)
    d.wait_event(f"gateway PID {g.pid}")
    state = home / "gateway_state.json"
    good = state.read_text()
    for bad, word in ((None, "missing"), (good[:30], "truncated"), ("garbage{", "garbage")):
        if bad is None:
            state.unlink()
        else:
            state.write_text(bad)
        d.wait_event(f"state file not usable: {state}: {word}")
        state.write_text(good)
        d.wait_event("state file readable again")
    # Rewritten by another process's record: stale, said so.
    other = json.loads(good)
    other["pid"] = os.getpid()
    state.write_text(json.dumps(other))
    d.wait_event(f"names PID {os.getpid()}, not {g.pid}")
    state.write_text(good)
    # The gateway vanishes (SIGKILL leaves its files behind) and a new one comes.
    g.kill()
    d.wait_event(f"gateway PID {g.pid} lost")
    g2 = sim("healthy", home=home).wait_running()
    # Found by its pid file, or by the process table when the daemon looks before the file is written.
    d.wait_event(f"FOUND [default] gateway PID {g2.pid} (")
    assert d.proc.poll() is None and d.incidents() == []


def test_stale_state_after_sigkill_is_gateway_gone_not_an_error(tmp_path, sim, daemons) -> None:
    home = tmp_path / "hermes"
    g = sim("healthy", home=home).wait_running()
    g.kill()  # gateway.pid and gateway_state.json stay behind, saying running
    d = daemons(tmp_path / "state", "--hermes-home", str(home), *FAST)
    d.wait_event("gateway-gone")
    assert d.proc.poll() is None and f"PID {g.pid} is not running" in d.events()


def test_unwritable_state_dir_is_reported_and_watching_goes_on(tmp_path, supervised, daemons) -> None:
    home = tmp_path / "hermes"
    sup = supervised(home, *spin_args(tmp_path / "spun"))
    old = sup.wait_running()
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state dir's parent should be (mkdir fails even for root)")
    d = daemons(blocker / "state", "--hermes-home", str(home), "--restart-with", "signal", *FAST)
    d.wait_event("not writable")
    d.wait_event("restart verified")  # no evidence could be written, but the gateway still got restarted
    assert "cannot" in d.events() and d.proc.poll() is None
    assert sup.launches == 2 and sup.child != old


def test_sigterm_mid_incident_stops_before_the_grace_is_out_and_leaves_whole_files(tmp_path, supervised,
                                                                                    daemons) -> None:
    home = tmp_path / "hermes"
    sup = supervised(home, *spin_args(tmp_path / "spun"))
    old = sup.wait_running()
    d = daemons(tmp_path / "state", "--hermes-home", str(home), "--restart-with", "signal", "--interval", "0.5",
                "--window", "3", "--grace", "60")
    d.wait_event(" RESTART ")  # SIGTERM sent and ignored; SIGKILL is 60 s away
    d.terminate()
    # The order of events, not a stopwatch: the daemon is gone while the gateway it would SIGKILL at the end
    # of the grace still spins, never relaunched. A daemon that waited the grace out would have killed it.
    assert d.proc.returncode == 0 and " STOP " in d.events() and " KILL " not in d.events()
    assert psutil.pid_exists(old) and psutil.Process(old).status() != psutil.STATUS_ZOMBIE, "gateway killed"
    assert sup.child == old and sup.launches == 1
    assert d.events().index(" RESTART ") < d.events().index(" STOP ")
    for p in all_files(tmp_path / "state"):
        assert not p.name.endswith(".tmp"), p
        if p.suffix == ".json":
            json.loads(p.read_text())


def test_one_daemon_per_state_dir(tmp_path, sim, daemons) -> None:
    home = tmp_path / "hermes"
    sim("healthy", home=home).wait_running()
    d = daemons(tmp_path / "state", "--hermes-home", str(home), *FAST)
    d.wait_event("FOUND")
    r = cli("run", "--state-dir", str(tmp_path / "state"), "--hermes-home", str(home), *FAST)
    assert_one_line_error(r)
    assert "already running" in r.err and str(d.proc.pid) in r.err


def test_status_reads_state_json_with_or_without_the_daemon(tmp_path, sim, daemons) -> None:
    home = tmp_path / "hermes"
    g = sim("healthy", "--extra-platforms", "telegram", home=home).wait_running()
    d = daemons(tmp_path / "state", "--hermes-home", str(home), *FAST)
    wait_for(lambda: d.gateway().get("cpu_now") is not None, what="a status with CPU")
    r = cli("status", "--json", "--state-dir", str(tmp_path / "state"))
    assert r.code == 0, r.err
    data = r.json()
    assert data["daemon_running"] is True
    gw = data["gateways"][0]
    assert gw["pid"] == g.pid and gw["platforms"] == {"qqbot": "connected", "telegram": "connected"}
    assert gw["budget"]["max"] == 3 and gw["budget"]["used"] == 0
    d.terminate()
    r = cli("status", "--state-dir", str(tmp_path / "state"))
    assert r.code == 0 and "NOT running" in r.out and str(g.pid) in r.out
    assert_one_line_error(cli("status", "--state-dir", str(tmp_path / "nowhere")))


def test_once_watches_one_window_and_exits(tmp_path, sim) -> None:
    home = tmp_path / "hermes"
    sim("healthy", home=home).wait_running()
    r = cli("run", "--once", "--state-dir", str(tmp_path / "state"), "--hermes-home", str(home), *FAST)
    assert r.code == 0, r.out + r.err
    assert "FOUND" in r.err and "STOP" in r.err
    # It watched one whole window (by its own samples) before it exited.
    verdict = (read_json(tmp_path / "state" / "state.json") or {})["gateways"][0]["verdict"]
    assert verdict["signature"] == "healthy" and verdict["span_seconds"] >= 3 - 0.25 * 0.5


def test_once_exits_1_after_an_incident(tmp_path, supervised) -> None:
    home = tmp_path / "hermes"
    sup = supervised(home, *spin_args())
    pid = sup.wait_running()
    wait_for(lambda: demand(pid, 0.2) > 0.9, what="the gateway to spin")
    r = cli("run", "--once", "--dry-run", "--state-dir", str(tmp_path / "state"), "--hermes-home", str(home), *FAST)
    assert r.code == 1, r.out + r.err
    assert " ALERT " in r.err and "DRY-RUN" in r.err
    assert sup.child == pid and sup.launches == 1  # a dry run: nothing was sent


def test_bad_config_stops_the_start_with_one_line(tmp_path) -> None:
    cfg = tmp_path / "w.toml"
    cases = [
        ("intervall = 5\n", "unknown key 'intervall'"),
        ("interval = -1\n", "interval must be more than 0"),
        ('restart_with = "reboot"\n', "restart_with must be one of"),
        ('restart_command = "rm -rf /"\n', "restart_command must be an argv list"),
        ("interval = [\n", "not valid TOML"),
    ]
    for text, message in cases:
        cfg.write_text(text)
        r = cli("run", "--config", str(cfg), "--state-dir", str(tmp_path / "s"))
        assert_one_line_error(r)
        assert message in r.err, r.err
    for args, message in ((["--interval", "0"], "--interval must be more than 0"),
                          (["--restart-with", "command"], "needs --restart-command"),
                          (["--window", "2", "--interval", "5"], "must not be longer than --window"),
                          (["--config", str(tmp_path / "missing.toml")], "does not exist")):
        r = cli("run", "--state-dir", str(tmp_path / "s"), *args)
        assert_one_line_error(r)
        assert message in r.err, r.err


def test_demo_runs_the_whole_story_and_leaves_no_process(tmp_path) -> None:
    before = {p.pid for p in psutil.process_iter()}
    # The demo keeps its folder for the user to read: here it is made inside the test's own temp dir.
    r = cli("demo", timeout=90, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert r.code == 0, r.out + r.err
    assert "demo passed" in r.out and "busy-loop" in r.out and "_listen_loop" in r.out
    assert "Incident folder" in r.out and "0 of 10 planted secrets left" in r.out
    demo_dir = Path(r.out.split(" in ", 1)[1].split()[0])

    def the_demos(p: psutil.Process) -> bool:  # other tests may run simulated gateways of their own
        try:
            return str(demo_dir) in (p.environ().get("HERMES_HOME") or "")
        except psutil.Error:
            return False

    leftovers = [p for p in psutil.process_iter(["pid", "cmdline"]) if p.info["pid"] not in before
                 and "hermes_watchdog.sim" in " ".join(p.info["cmdline"] or []) and the_demos(p)]
    assert leftovers == []
    shutil.rmtree(demo_dir, ignore_errors=True)
