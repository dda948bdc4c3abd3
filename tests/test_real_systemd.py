"""The real systemd user manager (conftest's systemd_user: one `systemd --user` of an ordinary test user for
the session): a SIGTERM-deaf gateway unit restarted through `systemctl --user`, and the watchdog installed
as a Type=notify unit that systemd accepts and does not kill. As root only (CI runs as root); skipped with
the reason elsewhere. The gateway, the watchdog and the manager all run as that user, as in real life."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hermes_watchdog.installers import Spec, select
from tests.helpers import DaemonProc, read_json, wait_for
from tests.usermode import SYSTEM_PYTHON, UserManager, chown_tree

FAST = ("--interval", "0.5", "--window", "3", "--grace", "1", "--cooldown", "0", "--start-timeout", "30")

# What Hermes' own unit has that matters here: Restart=always, and a stop timeout far beyond the grace, so
# it is the watchdog's SIGKILL that ends the deaf gateway, not systemd's.
GATEWAY_UNIT = """[Unit]
Description=simulated Hermes gateway ({home})

[Service]
ExecStart={python} -m hermes_watchdog.sim.gateway --mode spin --spin-after 1 --spin-once-marker {marker}
Environment=HERMES_HOME={home}
Restart=always
RestartSec=1
KillMode=mixed
TimeoutStopSec=90
"""


@pytest.fixture
def manager(systemd_user: UserManager) -> Iterator[UserManager]:
    """The session's manager, left as it was found: every unit a test adds is stopped and removed."""
    units = systemd_user.home / ".config" / "systemd" / "user"
    before = {p.name for p in units.iterdir()}
    yield systemd_user
    added = [p for p in units.iterdir() if p.name not in before]
    for p in added:
        if p.suffix == ".service":
            systemd_user.systemctl("stop", p.name)
    for p in added:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    systemd_user.systemctl("daemon-reload")
    systemd_user.systemctl("reset-failed")
    shutil.rmtree(systemd_user.home / ".hermes", ignore_errors=True)


def hermes_home(m: UserManager, profile: str | None) -> Path:
    home = m.home / ".hermes" / ("profiles/" + profile if profile else "")
    home.mkdir(parents=True, exist_ok=True)
    chown_tree(m.home / ".hermes")
    return Path(str(home).rstrip("/"))


def start_gateway_unit(m: UserManager, unit: str, home: Path) -> int:
    path = m.home / ".config" / "systemd" / "user" / unit
    path.write_text(GATEWAY_UNIT.format(home=home, python=SYSTEM_PYTHON, marker=home / "spun-once"))
    assert m.systemctl("daemon-reload").returncode == 0
    r = m.systemctl("start", unit)
    assert r.returncode == 0, r.stderr
    return main_pid_running(m, unit, home)


def main_pid_running(m: UserManager, unit: str, home: Path, other_than: int | None = None) -> int:
    """The unit's MainPID once the gateway it runs says running in its state file."""
    def ready() -> int | None:
        pid = int(m.show(unit, "MainPID").get("MainPID") or 0)
        st = read_json(home / "gateway_state.json") or {}
        ok = pid and pid != other_than and st.get("pid") == pid and st.get("gateway_state") == "running"
        return pid if ok else None

    return wait_for(ready, what=f"{unit} to run the gateway")


def daemon_as_user(m: UserManager, state: Path, *args: str) -> DaemonProc:
    state.mkdir(parents=True)
    chown_tree(state)
    log = state.parent / f"{state.name}.log"
    proc = m.popen(SYSTEM_PYTHON, "-m", "hermes_watchdog", "run", "--state-dir", str(state), *args, log=log)
    return DaemonProc(proc, log, state)


@pytest.mark.parametrize(("profile", "unit", "restart_with"), [
    (None, "hermes-gateway.service", "systemd"),
    # auto takes the unit only once `systemctl --user show -p MainPID` names the gateway.
    ("coder", "hermes-gateway-coder.service", "auto"),
])
def test_sigterm_deaf_gateway_unit_is_restarted_through_systemctl(manager: UserManager, profile: str | None,
                                                                   unit: str, restart_with: str) -> None:
    home = hermes_home(manager, profile)
    old = start_gateway_unit(manager, unit, home)
    d = daemon_as_user(manager, manager.home / f"state-{unit}", "--hermes-home", str(home), "--restart-with",
                       restart_with, *FAST)
    try:
        wait_for(lambda: d.incidents() and d.incident().get("result") in {"restarted", "restart-failed"},
                 what="the restart's outcome")
        inc = d.incident()
        assert inc["result"] == "restarted", (inc, d.events())
        assert inc["signature"] == "busy-loop" and inc["pid"] == old
        assert inc["restart"]["manager"] == "systemd"
        assert inc["restart"]["argv"] == ["systemctl", "--user", "restart", "--no-block", unit]
        # systemd's SIGTERM was ignored by the starved loop: the watchdog's SIGKILL ended it after the grace.
        assert inc["verify"]["sigkill_needed"] is True and "SIGKILL" in inc["restart"]["signals"]
        new = main_pid_running(manager, unit, home, other_than=old)
        assert inc["new_pid"] == new != old
        assert manager.show(unit, "ActiveState")["ActiveState"] == "active"
    finally:
        d.terminate()


def _monotonic_usec() -> int:
    return int(time.monotonic() * 1e6)  # CLOCK_MONOTONIC, the clock systemd's *Monotonic properties use


def test_install_runs_as_a_notify_unit_systemd_keeps_and_uninstall_leaves_nothing(manager: UserManager,
                                                                                   tmp_path: Path) -> None:
    hermes_home(manager, None)
    hermes_home(manager, "coder")
    units = manager.home / ".config" / "systemd" / "user"
    before = sorted(p.name for p in units.rglob("*"))
    # No logind without systemd as PID 1: the loginctl stand-in answers the linger question as a default
    # install would (Linger=no), so the warning is shown.
    standins = manager.home.parent / "loginctl-standin"
    standins.mkdir(exist_ok=True)
    shutil.copy(Path(__file__).parent / "standins" / "loginctl", standins / "loginctl")
    (standins / "loginctl").chmod(0o755)
    calls = standins / "calls.jsonl"
    calls.touch()
    calls.chmod(0o666)
    env = {"PATH": f"{standins}:{manager.env['PATH']}", "STANDIN_LOG": str(calls)}

    r = manager.run(SYSTEM_PYTHON, "-m", "hermes_watchdog", "install", "--manager", "systemd", "--", "--interval",
                    "1", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    unit = "hermes-watchdog.service"
    assert "systemctl --user status hermes-watchdog.service" in r.stdout
    assert "lingering is off for nobody" in r.stdout
    # Type=notify: `active` only once systemd has accepted the daemon's READY=1.
    props = manager.show(unit, "ActiveState", "SubState", "Type", "NRestarts", "UnitFileState")
    assert props == {"ActiveState": "active", "SubState": "running", "Type": "notify", "NRestarts": "0",
                     "UnitFileState": "enabled"}, props

    # The installed WatchdogSec is 120 s; a drop-in shortens it so that several periods pass in the test.
    dropin = units / f"{unit}.d"
    dropin.mkdir()
    (dropin / "fast-watchdog.conf").write_text("[Service]\nWatchdogSec=4\n")
    chown_tree(dropin)
    assert manager.systemctl("daemon-reload").returncode == 0
    assert manager.systemctl("restart", unit).returncode == 0
    first = manager.show(unit, "MainPID", "WatchdogUSec", "ActiveEnterTimestampMonotonic")
    assert first["WatchdogUSec"] == "4s"
    entered = int(first["ActiveEnterTimestampMonotonic"])
    # Two and a half watchdog periods by the manager's clock: a daemon that did not ping would be killed twice.
    wait_for(lambda: _monotonic_usec() - entered > 10_000_000, what="10 s of the unit being active", step=0.5)
    later = manager.show(unit, "MainPID", "NRestarts", "ActiveState", "WatchdogTimestampMonotonic")
    assert later["ActiveState"] == "active" and later["NRestarts"] == "0" and later["MainPID"] == first["MainPID"]
    assert int(later["WatchdogTimestampMonotonic"]) > entered  # WATCHDOG=1 pings arrived
    shutil.rmtree(dropin)

    # A profile gets its own unit beside the first.
    r = manager.run(SYSTEM_PYTHON, "-m", "hermes_watchdog", "install", "--manager", "systemd", "--profile", "coder",
                    env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert manager.show("hermes-watchdog-coder.service", "ActiveState")["ActiveState"] == "active"

    for where in ([], ["--profile", "coder"]):
        r = manager.run(SYSTEM_PYTHON, "-m", "hermes_watchdog", "uninstall", "--manager", "systemd", *where, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
    for name in (unit, "hermes-watchdog-coder.service"):
        assert manager.show(name, "LoadState", "ActiveState") == {"LoadState": "not-found", "ActiveState": "inactive"}
    assert sorted(p.name for p in units.rglob("*")) == before  # no unit, no drop-in, no wants/ link
    listed = manager.systemctl("list-units", "--all", "--plain", "--no-legend", "hermes-watchdog*").stdout
    assert listed.strip() == ""
    r = manager.run(SYSTEM_PYTHON, "-m", "hermes_watchdog", "uninstall", "--manager", "systemd", env=env)
    assert r.returncode == 0 and "nothing to do" in r.stdout
    with contextlib.suppress(OSError):
        assert [json.loads(x)["argv"][0] for x in calls.read_text().splitlines()] == ["show-user", "show-user"]


def test_system_unit_has_no_ordering_cycle_and_verifies(tmp_path: Path) -> None:
    """A unit ordered After= the target that wants it is a cycle: systemd drops the start at boot.
    (systemd-analyze verify does not see it, since the cycle needs the enabled wants/ link.)"""
    def ordered_after_its_target(text: str) -> list[str]:
        wanted = {t for line in text.splitlines() if line.startswith("WantedBy=") for t in line[9:].split()}
        after = {t for line in text.splitlines() if line.startswith(("After=", "Before=")) for t in
                 line.split("=", 1)[1].split()}
        return sorted(wanted & after)

    for system in (False, True):
        text = select("systemd", Spec(tmp_path / "h", "", ("run",), system=system, user="root")).render()
        assert ordered_after_its_target(text) == [], text
        if system:
            assert "WantedBy=multi-user.target" in text and "User=root" in text
    # The check can fail: the cycle that was fixed.
    bad = text.replace("After=network.target", "After=network.target multi-user.target")
    assert ordered_after_its_target(bad) == ["multi-user.target"]
    if shutil.which("systemd-analyze"):
        unit = tmp_path / "hermes-watchdog.service"
        unit.write_text(text)
        r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr


def test_auto_leaves_a_unit_whose_main_pid_is_not_the_gateway(manager: UserManager) -> None:
    """hermes-gateway.service exists and runs, but its MainPID is another process: `auto` must not restart
    that unit (it falls back to signals); the dry run says what it would do."""
    home = hermes_home(manager, None)
    unit = "hermes-gateway.service"
    (manager.home / ".config" / "systemd" / "user" / unit).write_text("[Service]\nExecStart=/bin/sleep 600\n")
    assert manager.systemctl("daemon-reload").returncode == 0
    assert manager.systemctl("start", unit).returncode == 0
    gateway = manager.popen(SYSTEM_PYTHON, "-m", "hermes_watchdog.sim.gateway", "--mode", "spin", "--spin-after",
                            "0.5", log=manager.home / "gateway-outside.log", env={"HERMES_HOME": str(home)})
    d = daemon_as_user(manager, manager.home / "state-outside", "--hermes-home", str(home), "--dry-run", *FAST)
    try:
        line = wait_for(lambda: next((ln for ln in d.events().splitlines() if "DRY-RUN" in ln), None),
                        what="the dry-run decision")
        assert f"would restart PID {gateway.pid} with signal" in line, line
        sleeper = int(manager.show(unit, "MainPID")["MainPID"])
        assert sleeper and sleeper != gateway.pid
        assert manager.show(unit, "ActiveState", "NRestarts") == {"ActiveState": "active", "NRestarts": "0"}
    finally:
        d.terminate()
        gateway.kill()
        gateway.wait(10)


PINGING_UNIT = """[Unit]
Description=simulated Hermes {release} gateway ({home})

[Service]
ExecStart={python} -m hermes_watchdog.sim.gateway --release {release} --mode spin-connected --spin-after 12 \
--spin-once-marker {marker}
Environment=HERMES_HOME={home}
Restart=always
RestartSec=1
"""


def test_gateway_watchdog_dropin_lets_systemd_restart_a_wedged_loop_itself(manager: UserManager) -> None:
    """Issue 24 item 11: for a release that pings WATCHDOG=1 from its loop (the 0.20 shape), `install
    --gateway-watchdog` gives its unit a WatchdogSec; when the loop then spins, the pings stop and the real
    systemd kills and restarts the gateway with no watchdog process running. A 0.14-shaped gateway (no pings)
    is refused, with the reason, and its unit is left alone."""
    home = hermes_home(manager, None)
    unit = "hermes-gateway.service"
    path = manager.home / ".config" / "systemd" / "user" / unit
    path.write_text(PINGING_UNIT.format(release="0.14", home=home, python=SYSTEM_PYTHON, marker=home / "spun"))
    assert manager.systemctl("daemon-reload").returncode == 0 and manager.systemctl("start", unit).returncode == 0
    main_pid_running(manager, unit, home)
    r = manager.run(SYSTEM_PYTHON, "-m", "hermes_watchdog", "install", "--gateway-watchdog")
    assert r.returncode == 2 and "does not send WATCHDOG=1 from its event loop" in r.stderr, r.stdout + r.stderr
    assert not (path.parent / f"{unit}.d").exists()
    manager.systemctl("stop", unit)

    path.write_text(PINGING_UNIT.format(release="0.20", home=home, python=SYSTEM_PYTHON, marker=home / "spun"))
    (home / "spun").unlink(missing_ok=True)
    assert manager.systemctl("daemon-reload").returncode == 0 and manager.systemctl("start", unit).returncode == 0
    main_pid_running(manager, unit, home)
    wait_for(lambda: (home / "state" / "gateway.heartbeat").exists(), what="the 0.20 shape's first files")
    r = manager.run(SYSTEM_PYTHON, "-m", "hermes_watchdog", "install", "--gateway-watchdog")
    assert r.returncode == 0, r.stdout + r.stderr
    dropin = path.parent / f"{unit}.d" / "hermes-watchdog-loop.conf"
    assert "WatchdogSec=120" in dropin.read_text() and "Restart=on-watchdog" not in dropin.read_text()
    # The test shortens the interval (the drop-in is the user's file now) and applies it from a fresh start.
    dropin.write_text(dropin.read_text().replace("WatchdogSec=120", "WatchdogSec=4"))
    (home / "spun").unlink(missing_ok=True)
    assert manager.systemctl("daemon-reload").returncode == 0 and manager.systemctl("restart", unit).returncode == 0
    first = main_pid_running(manager, unit, home)
    assert manager.show(unit, "WatchdogUSec")["WatchdogUSec"] in {"4s", "4000000"}
    # Healthy while its loop pings (the spin starts 12 s after start): systemd keeps it (3 intervals).
    wait_for(lambda: (home / "spun").exists(), timeout=120, what="the loop to start spinning")
    assert int(manager.show(unit, "NRestarts")["NRestarts"]) == 0
    # The pings stop; systemd's watchdog fires, kills it and starts it again (the marker: no second spin). A
    # spinning gateway neither exits nor crashes, and no watchdog process runs here: only systemd's watchdog
    # restarts it.
    second = main_pid_running(manager, unit, home, other_than=first)
    assert second != first and int(manager.show(unit, "NRestarts")["NRestarts"]) >= 1
    r = manager.run(SYSTEM_PYTHON, "-m", "hermes_watchdog", "uninstall", "--gateway-watchdog")
    assert r.returncode == 0 and not dropin.exists(), r.stdout + r.stderr


def _readme_block(heading: str) -> list[str]:
    """The command lines of the README's first code block after ``heading`` (comments dropped)."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    after = text[text.index(heading):]
    block = after[after.index("```\n") + 4:]
    block = block[:block.index("```")]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]


def test_the_readmes_linux_quick_start_installs_a_watchdog_that_restarts_the_gateway(manager: UserManager) -> None:
    """Issue 24: the README's block for "Linux, Hermes as a systemd user unit", typed as it stands by the
    gateway's user, under a real `systemd --user`, at the watchdog's defaults: the installed service finds
    the spinning hermes-gateway.service and restarts it through systemctl. ``hermes-watchdog`` is run as
    ``python -m hermes_watchdog`` (the same program: the test user has no console script on its PATH)."""
    lines = _readme_block("**Linux, Hermes as a systemd user unit**")
    # Every line of the block is typed here, or is named with the reason it is not: a new line fails this.
    run = ["hermes-watchdog install --manager systemd -- --restart-with systemd",
           "systemctl --user status hermes-watchdog.service"]
    not_typed = {"journalctl --user -u hermes-watchdog.service -f": "follows the log forever (the test reads "
                                                                    "the watchdog's incidents instead)",
                 "hermes-watchdog install --gateway-watchdog": "optional; test_gateway_watchdog_dropin_... types it"}
    assert lines == [run[0], run[1], *not_typed], lines

    home = hermes_home(manager, None)
    old = start_gateway_unit(manager, "hermes-gateway.service", home)
    standins = manager.home.parent / "loginctl-standin"  # no logind without systemd as PID 1 (see above)
    standins.mkdir(exist_ok=True)
    shutil.copy(Path(__file__).parent / "standins" / "loginctl", standins / "loginctl")
    (standins / "loginctl").chmod(0o755)
    env = {"PATH": f"{standins}:{manager.env['PATH']}", "STANDIN_LOG": str(standins / "calls.jsonl")}
    try:
        argv = run[0].split()
        r = manager.run(SYSTEM_PYTHON, "-m", "hermes_watchdog", *argv[1:], env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        r = manager.run(*run[1].split(), env=env)
        assert r.returncode == 0 and "active (running)" in r.stdout, r.stdout + r.stderr

        incidents = home / "watchdog" / "incidents"  # the installed daemon's default state dir

        def restarted() -> dict | None:
            for f in sorted(incidents.glob("*/incident.json")) if incidents.is_dir() else []:
                rec = read_json(f) or {}
                if rec.get("result") in {"restarted", "restart-failed"}:
                    return rec
            return None

        rec = wait_for(restarted, timeout=300, step=1.0, what="the installed watchdog's restart, at its defaults")
        assert rec["result"] == "restarted" and rec["pid"] == old, rec.get("timeline")
        assert rec["restart"]["manager"] == "systemd" and rec["signature"] == "busy-loop"
        assert main_pid_running(manager, "hermes-gateway.service", home, other_than=old) == rec["new_pid"]
    finally:
        manager.run(SYSTEM_PYTHON, "-m", "hermes_watchdog", "uninstall", "--manager", "systemd", env=env)
