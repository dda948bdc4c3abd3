"""Installing the watchdog as a service: rendered files, the real systemd-analyze, launchd install/uninstall
through the stand-in launchctl (macOS; recording argv), and the sd_notify protocol for real. The real
systemd user manager installs and runs the unit in test_real_systemd.py, the real s6 in test_real_s6.py."""

from __future__ import annotations

import contextlib
import json
import os
import plistlib
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hermes_watchdog.installers import Spec, select
from hermes_watchdog.installers.systemd import quote
from tests.helpers import STANDINS, Result, assert_one_line_error, cli, wait_for

ROOT = Path(__file__).resolve().parent.parent


def spec(home: Path, suffix: str = "", *extra: str) -> Spec:
    return Spec(home, suffix, ("run", "--hermes-home", str(home), *extra))


def test_rendered_plist_parses_with_the_launchd_keys(tmp_path: Path) -> None:
    home = tmp_path / "my hermes"
    text = select("launchd", spec(home, "coder", "--interval", "2")).render()
    plist = plistlib.loads(text.encode())
    assert plist["Label"] == "ai.hermes.watchdog-coder"
    assert plist["KeepAlive"] is True and plist["RunAtLoad"] is True
    assert isinstance(plist["ThrottleInterval"], int) and plist["ProcessType"] == "Background"
    program = Path(plist["ProgramArguments"][0])
    assert program.is_absolute() and program.is_file() and os.access(program, os.X_OK)
    assert plist["ProgramArguments"][-5:] == ["run", "--hermes-home", str(home), "--interval", "2"]
    assert plist["EnvironmentVariables"]["HERMES_HOME"] == str(home)
    assert str(Path(sys.executable).parent) in plist["EnvironmentVariables"]["PATH"].split(":")
    assert plist["StandardOutPath"] == str(home / "logs" / "watchdog.log")
    assert plist["StandardErrorPath"] == str(home / "logs" / "watchdog.error.log")


def unit_values(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


def test_rendered_unit_has_notify_watchdog_and_an_existing_program(tmp_path: Path) -> None:
    home = tmp_path / "hermes 100%"
    text = select("systemd", spec(home, "", "--restart-with", "signal")).render()
    v = unit_values(text)
    argv = shlex.split(v["ExecStart"][0])
    assert Path(argv[0]).is_file() and os.access(argv[0], os.X_OK)
    assert argv[-4:] == ["--hermes-home", str(home).replace("%", "%%"), "--restart-with", "signal"]
    assert v["Restart"] == ["always"] and v["Type"] == ["notify"] and int(v["WatchdogSec"][0]) > 0
    assert v["Environment"][0] == quote(f"HERMES_HOME={home}")
    assert "Nice" in v and "CPUWeight" in v


@pytest.mark.capability("systemd")  # under CI=true this skip fails the run
@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed here")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    good = tmp_path / "hermes-watchdog.service"
    good.write_text(select("systemd", spec(tmp_path / "h")).render())
    r = subprocess.run(["systemd-analyze", "verify", str(good)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    # The check can fail: the same unit with a relative ExecStart is rejected.
    bad = tmp_path / "bad.service"
    bad.write_text(good.read_text().replace("ExecStart=/", "ExecStart=relative/", 1))
    r = subprocess.run(["systemd-analyze", "verify", str(bad)], capture_output=True, text=True, check=False)
    assert r.returncode != 0


def test_exec_start_quoting() -> None:
    assert quote("plain/path-1.0") == "plain/path-1.0"
    assert quote("with space") == '"with space"'
    assert quote('q"uote\\') == '"q\\"uote\\\\"'
    assert quote("100%") == "100%%" and quote("$HOME") == '"$$HOME"'


# ---------------------------------------------------------------- install/uninstall as a normal user

Runner = Callable[..., Result]


@pytest.fixture(scope="session")
def as_user(shared_dir: Path, request: pytest.FixtureRequest) -> Runner:
    """Run the CLI as a non-root user, since `install` rightly refuses root: as root, from the package
    installed where `nobody` can read it (conftest's user_site), under setpriv."""
    if os.geteuid() != 0:
        def direct(*args: str, home: Path, env: dict[str, str]) -> Result:
            return cli(*args, env={**os.environ, **env, "HOME": str(home)})
        return direct
    site = request.getfixturevalue("user_site")
    py = "/usr/bin/python3"
    standins = shared_dir / "standins"
    standins.mkdir()
    for tool in STANDINS.iterdir():
        shutil.copy(tool, standins / tool.name)
        (standins / tool.name).chmod(0o755)

    def run(*args: str, home: Path, env: dict[str, str]) -> Result:
        full = {"PYTHONPATH": str(site), "HOME": str(home), "LANG": "C.UTF-8",
                **{k: v.replace(str(STANDINS), str(standins)) for k, v in env.items()}}
        proc = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", py, "-m",
                               "hermes_watchdog", *args], capture_output=True, text=True, env=full, timeout=120,
                              check=False, cwd=shared_dir)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def user_home(shared_dir: Path, tmp_path: Path) -> Path:
    home = Path(tempfile.mkdtemp(dir=shared_dir, prefix="home-"))
    home.chmod(0o755)
    (home / ".hermes" / "profiles" / "coder").mkdir(parents=True)
    if os.geteuid() == 0:
        for p in [home, *home.rglob("*")]:
            os.chown(p, 65534, 65534)  # nobody
    return home


def calls(log: Path) -> list[list[str]]:
    try:
        return [[d["tool"], *d["argv"]] for d in map(json.loads, log.read_text().splitlines())]
    except OSError:
        return []


def standin_env(log: Path) -> dict[str, str]:
    return {"PATH": f"{STANDINS}:/usr/bin:/bin", "STANDIN_LOG": str(log)}


def prepare_log(home: Path) -> Path:
    log = home.parent / f"calls-{home.name}.jsonl"
    log.touch()
    log.chmod(0o666)
    return log


@pytest.mark.parametrize(("profile", "label"), [(None, "ai.hermes.watchdog"), ("coder", "ai.hermes.watchdog-coder")])
def test_launchd_install_and_uninstall(as_user: Runner, user_home: Path, tmp_path: Path, profile: str | None,
                                       label: str) -> None:
    log = prepare_log(user_home)
    uid = 65534 if os.geteuid() == 0 else os.getuid()
    where = ["--profile", profile] if profile else []
    r = as_user("install", "--manager", "launchd", *where, home=user_home, env=standin_env(log))
    assert r.code == 0, r.out + r.err
    path = user_home / "Library" / "LaunchAgents" / f"{label}.plist"
    assert path.is_file() and stat.S_IMODE(path.stat().st_mode) == 0o644
    assert plistlib.loads(path.read_bytes())["Label"] == label
    assert calls(log) == [["launchctl", "bootout", f"gui/{uid}/{label}"],
                          ["launchctl", "bootstrap", f"gui/{uid}", str(path)]]
    assert f"launchctl print gui/{uid}/{label}" in r.out
    log.write_text("")
    r = as_user("uninstall", "--manager", "launchd", *where, home=user_home, env=standin_env(log))
    assert r.code == 0 and not path.exists()
    assert calls(log) == [["launchctl", "bootout", f"gui/{uid}/{label}"]]
    assert list((user_home / "Library" / "LaunchAgents").iterdir()) == []


def test_dry_run_prints_and_changes_nothing(as_user: Runner, user_home: Path, tmp_path: Path) -> None:
    log = prepare_log(user_home)
    r = as_user("install", "--manager", "systemd", "--dry-run", home=user_home, env=standin_env(log))
    assert r.code == 0, r.err
    assert "ExecStart=" in r.out and "systemctl --user enable --now hermes-watchdog.service" in r.out
    assert not (user_home / ".config").exists() and calls(log) == []


def test_bad_run_flags_are_refused_before_anything_is_written(as_user: Runner, user_home: Path,
                                                               tmp_path: Path) -> None:
    log = prepare_log(user_home)
    r = as_user("install", "--manager", "systemd", "--", "--interval", "0", home=user_home, env=standin_env(log))
    assert_one_line_error(r)
    assert "run flags would not start" in r.err and not (user_home / ".config").exists() and calls(log) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="the root refusal needs root")
def test_install_as_root_is_refused_with_the_reason(isolated_home: Path) -> None:
    (isolated_home / ".hermes").mkdir()
    r = cli("install", "--manager", "systemd")
    assert_one_line_error(r)
    assert "refusing to install as root" in r.err and "--system" in r.err
    r = cli("install", "--manager", "systemd", "--system", "--dry-run")
    assert r.code == 0 and "/etc/systemd/system/hermes-watchdog.service" in r.out and "User=root" in r.out
    assert "systemctl enable --now hermes-watchdog.service" in r.out


# ---------------------------------------------------------------- sd_notify, for real

def test_daemon_sends_ready_then_periodic_watchdog_pings(tmp_path: Path, sim) -> None:
    home = tmp_path / "hermes"
    sim("healthy", home=home).wait_running()
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.2)
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "600000"}  # ping every 0.3 s
    proc = subprocess.Popen([sys.executable, "-m", "hermes_watchdog", "run", "--hermes-home", str(home),
                             "--state-dir", str(tmp_path / "state"), "--interval", "30", "--window", "60"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    got: list[tuple[float, str]] = []

    def receive() -> bool:
        with contextlib.suppress(TimeoutError):
            got.append((time.monotonic(), sock.recv(4096).decode()))
        return sum(m == "WATCHDOG=1" for _, m in got) >= 4

    try:
        wait_for(receive, what="READY=1 and four WATCHDOG=1", step=0)
        assert got[0][1].startswith("READY=1\nSTATUS=watching")
        # Four pings came while the loop sleeps on its 30 s interval (the wait above gives up after 60 s,
        # before a third tick): they come from the loop's own timer, not from ticks.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        # All the daemon sent is queued on the socket now that it has exited: its last word is STOPPING=1.
        with contextlib.suppress(TimeoutError):
            while True:
                got.append((time.monotonic(), sock.recv(4096).decode()))
        sent = [m for _, m in got]
        assert sent[-1] == "STOPPING=1" and sent.count("STOPPING=1") == 1, sent
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
