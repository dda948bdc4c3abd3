"""What a new user hit (issue 11, items 9 and 12-17): numbers that are not numbers, a restart command that
was ignored, a missing home, the installed units, the patch on the wrong interpreter, diagnose of
non-Python processes, and the help. Mostly through the real CLI; config coercion as pure unit tests."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from hermes_watchdog import config
from hermes_watchdog.errors import UserError
from hermes_watchdog.facts.cpu import CpuSnapshot, ThreadTimes
from hermes_watchdog.installers import Spec, select
from hermes_watchdog.judge.cpu import usage
from hermes_watchdog.judge.signatures import judge
from hermes_watchdog.judge.verdict import CPU_PEGGED, StateSeen, Thresholds
from hermes_watchdog.observe import pyspy
from hermes_watchdog.observe.statefile import parse_state
from tests.helpers import assert_one_line_error, cli, standin_calls, standin_env, wait_for

FAST = ("--interval", "0.5", "--window", "3", "--grace", "1", "--cooldown", "0", "--start-timeout", "30")
DAY = 86400.0
# Every duration in the config and the longest value it takes (longer is a typo or an overflow).
SECONDS_MAX = {"interval": 3600.0, "window": DAY, "grace": 3600.0, "restart_window": 30 * DAY,
               "start_timeout": DAY, "cooldown": DAY, "command_timeout": 3600.0, "notify_timeout": 3600.0,
               "pegged_after": 30 * DAY, "stuck_after": 30 * DAY, "frozen_after": DAY,
               "loop_proof": 3600.0, "starved_grace": 3600.0}
SECONDS_KEYS = sorted(SECONDS_MAX)


# ---------------------------------------------------------------- 9: NaN, infinity, absurd values

@pytest.mark.parametrize("key", SECONDS_KEYS)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), 1e308])
def test_every_duration_refuses_nan_infinity_and_absurd_values(key: str, value: float) -> None:
    with pytest.raises(UserError, match=rf"^--{key} must be .* and at most \d+ seconds"):
        config._coerce(key, value, f"--{key}")


@pytest.mark.parametrize("key", SECONDS_KEYS)
def test_every_duration_takes_its_upper_bound(key: str) -> None:
    assert config._coerce(key, SECONDS_MAX[key], f"--{key}") == SECONDS_MAX[key]
    with pytest.raises(UserError):
        config._coerce(key, SECONDS_MAX[key] * 1.01, f"--{key}")


@pytest.mark.parametrize("key", ["cpu_threshold", "min_confidence"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_bounded_numbers_refuse_nan_and_infinity(key: str, value: float) -> None:
    with pytest.raises(UserError):
        config._coerce(key, value, f"--{key}")


@pytest.mark.parametrize("flag", ["--restart-window", "--grace", "--window", "--interval", "--cooldown"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_run_flags_refuse_nan_and_infinity_with_one_line(tmp_path: Path, flag: str, value: str) -> None:
    r = cli("run", "--hermes-home", str(tmp_path), "--state-dir", str(tmp_path / "s"), flag, value, "--check")
    assert_one_line_error(r)
    assert f"{flag} must be" in r.err and f"not {value}" in r.err
    assert not (tmp_path / "s").exists()


def test_toml_nan_is_refused_with_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "w.toml"
    cfg.write_text("window = nan\n")
    r = cli("run", "--config", str(cfg), "--hermes-home", str(tmp_path), "--check")
    assert_one_line_error(r)
    assert f"config file {cfg}: window must be more than 0 and at most" in r.err


@pytest.mark.parametrize(("flag", "value"), [("--seconds", "inf"), ("--seconds", "nan"), ("--seconds", "601"),
                                             ("--frozen-after", "nan"), ("--frozen-after", "inf")])
def test_diagnose_refuses_endless_or_nan_durations(flag: str, value: str) -> None:
    r = cli("diagnose", str(os.getpid()), flag, value, timeout=60)
    assert_one_line_error(r)
    assert f"{flag} must be more than 0 and at most" in r.err


# ---------------------------------------------------------------- 12: a restart command is used

def test_restart_command_alone_means_restart_with_command() -> None:
    assert config.build(None, {"restart_command": ["relaunch", "gw"]}).restart_with == "command"
    assert config.build(None, {"restart_command": ["relaunch"], "restart_with": "auto"}).restart_with == "command"
    with pytest.raises(UserError, match="--restart-command is only used with --restart-with command"):
        config.build(None, {"restart_command": ["relaunch"], "restart_with": "signal"})


def test_restart_command_with_another_manager_is_one_line(tmp_path: Path) -> None:
    r = cli("run", "--hermes-home", str(tmp_path), "--restart-with", "systemd", "--restart-command", "relaunch gw",
            "--check")
    assert_one_line_error(r)
    assert "not --restart-with systemd" in r.err


def test_daemon_restarts_by_the_command_without_restart_with(tmp_path: Path, supervised, daemons) -> None:
    home = tmp_path / "hermes"
    # The stand-in supervisor: relaunch-gateway (a user's command) signals it, and under s6 `auto` would
    # find s6 (this test is of a gateway with no manager the watchdog knows).
    sup = supervised(home, "--mode", "spin", "--spin-after", "1", "--hook",
                     "--spin-once-marker", str(tmp_path / "spun"), stand_in=True)
    sup.wait_running()
    log = tmp_path / "calls.jsonl"
    # The user's own command restarts the gateway: `auto` would find no service manager to use, and
    # signals alone would leave a gateway without a supervisor down.
    d = daemons(tmp_path / "state", "--hermes-home", str(home),
                "--restart-command", "relaunch-gateway --now", *FAST, env=standin_env(log, sup))
    wait_for(lambda: d.incidents() and d.incident().get("result") == "restarted", what="restart by command")
    assert d.incident()["restart"]["manager"] == "command"
    assert [c["argv"] for c in standin_calls(log)] == [["--now"]]


# ---------------------------------------------------------------- 13: a home that does not exist

def test_once_on_a_missing_home_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "no-such-home"
    r = cli("run", "--hermes-home", str(home), "--once", "--interval", "0.5", "--window", "1")
    assert_one_line_error(r)
    assert f"no Hermes home at {home}" in r.err
    assert not home.exists()


def test_run_waits_for_a_missing_home_without_creating_it(tmp_path: Path) -> None:
    home = tmp_path / "later"
    log = tmp_path / "daemon.log"
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.2)
    got: list[str] = []

    def receive() -> bool:
        with contextlib.suppress(TimeoutError):
            got.append(sock.recv(4096).decode())
        return True

    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "400000"}  # a ping every 0.2 s
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "hermes_watchdog", "run", "--hermes-home", str(home),
                                 "--interval", "0.2", "--window", "1"], stdout=fh, stderr=subprocess.STDOUT,
                                env=env)
    try:
        # Waiting, alive for systemd (READY, then its watchdog pings), and the home still not created.
        wait_for(lambda: receive() and got.count("WATCHDOG=1") >= 3, what="pings while waiting", step=0)
        assert got[0].startswith("READY=1") and proc.poll() is None
        text = log.read_text()
        assert text.count(f"no Hermes home at {home}: waiting for it") == 1 and "START" not in text
        assert not home.exists()
        home.mkdir()
        wait_for(lambda: (home / "watchdog" / "state.json").is_file(), what="state.json once the home exists")
        text = log.read_text()
        assert text.count("no Hermes home at") == 1 and f"START watching {home}" in text
    finally:
        proc.terminate()
        proc.wait(30)
        sock.close()


def test_check_says_what_it_would_watch_and_how_it_would_restart(tmp_path: Path) -> None:
    r = cli("run", "--hermes-home", str(tmp_path), "--restart-with", "signal", "--check")
    assert r.code == 0, r.err
    assert f"would watch {tmp_path}" in r.out and "SIGTERM" in r.out and "at most 3 per 1800 s" in r.out
    r = cli("run", "--hermes-home", str(tmp_path / "missing"), "--restart-command",
            "relaunch --token=abcdef0123456789abcdef", "--check")
    assert r.code == 0, r.err
    assert "does not exist yet" in r.out and "by running relaunch" in r.out
    assert "abcdef0123456789abcdef" not in r.out  # through the redactor like everything else shown
    assert not (tmp_path / "missing").exists()


# ---------------------------------------------------------------- 14: installed units

def unit_lines(text: str, key: str) -> list[str]:
    return [ln.split("=", 1)[1] for ln in text.splitlines() if ln.startswith(f"{key}=")]


def test_system_unit_is_not_ordered_after_the_target_that_wants_it(tmp_path: Path) -> None:
    text = select("systemd", Spec(tmp_path / "h", "", ("run",), system=True, user="root")).render()
    assert unit_lines(text, "WantedBy") == ["multi-user.target"]
    after = " ".join(unit_lines(text, "After")).split()
    assert not {"multi-user.target", "default.target"} & set(after), text
    user = select("systemd", Spec(tmp_path / "h", "", ("run",))).render()
    assert unit_lines(user, "WantedBy") == ["default.target"]
    assert "default.target" not in " ".join(unit_lines(user, "After"))
    if shutil.which("systemd-analyze"):
        unit = tmp_path / "hermes-watchdog.service"
        unit.write_text(text)
        r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the root case needs root")
def test_install_dry_run_as_root_prints_and_changes_nothing(isolated_home: Path) -> None:
    (isolated_home / ".hermes").mkdir()
    r = cli("install", "--manager", "systemd", "--dry-run")
    assert r.code == 0, r.err
    assert "ExecStart=" in r.out and "systemctl --user enable --now hermes-watchdog.service" in r.out
    assert "--system" in r.out  # it says the real install would be refused, and what to do instead
    assert not (isolated_home / ".config").exists()
    assert sorted(p.name for p in isolated_home.iterdir()) == [".hermes"]


# ---------------------------------------------------------------- 15: the patch and its interpreter

def make_venv(where: Path) -> tuple[Path, Path]:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    python = where / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    return python, Path(purelib)


def test_patch_install_refuses_an_interpreter_without_hermes(tmp_path: Path) -> None:
    python, purelib = make_venv(tmp_path / "venv")
    before = sorted(p.name for p in purelib.iterdir())
    r = cli("patch", "install", "--python", str(python))
    assert_one_line_error(r)
    assert "Hermes is not installed in" in r.err
    assert sorted(p.name for p in purelib.iterdir()) == before


def test_patch_uninstall_twice_asks_for_no_restart_the_second_time(tmp_path: Path) -> None:
    python, purelib = make_venv(tmp_path / "venv")
    for package in ("hermes_cli", "gateway"):  # just enough of Hermes to be found, not to be patched
        (purelib / package).mkdir()
        (purelib / package / "__init__.py").write_text("")
    r = cli("patch", "install", "--python", str(python))
    assert r.code == 0, r.err
    assert (purelib / "hermes_watchdog_fixes.pth").is_file()
    r = cli("patch", "uninstall", "--python", str(python))
    assert r.code == 0 and "removed:" in r.out and "must restart" in r.out, r.out + r.err
    r = cli("patch", "uninstall", "--python", str(python))
    assert r.code == 0, r.err
    assert "nothing to remove" in r.out and "restart" not in r.out


# ---------------------------------------------------------------- 16: diagnose and what is not Python

def pid1_is_python() -> bool:
    try:
        p = psutil.Process(1)
        names = [p.name(), *(p.cmdline()[:1])]
    except psutil.Error:
        return True  # cannot tell: skip
    return any(re.match(r"(python|pypy)", Path(n).name) for n in names)


@pytest.mark.skipif(pid1_is_python(), reason="PID 1 is a Python process on this machine")
def test_diagnose_pid_1_is_refused_as_not_python() -> None:
    r = cli("diagnose", "1", "--seconds", "0.5")
    assert_one_line_error(r)
    assert "PID 1 (" in r.err and "is not a Python process" in r.err


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("sleep"),
                    reason="needs root and setpriv to hide another user's executable")
def test_non_python_process_with_a_hidden_executable_is_refused_like_any_other() -> None:
    # Another user's `sleep`, seen without CAP_SYS_PTRACE: its executable cannot be read (as for an
    # unprivileged user on a real machine), its name and command line can.
    target = subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "sleep", "60"])
    try:
        wait_for(lambda: psutil.Process(target.pid).name() == "sleep", what="sleep to start")
        r = cli("diagnose", str(target.pid), "--seconds", "0.5",
                prefix=["setpriv", "--inh-caps=-sys_ptrace", "--bounding-set=-sys_ptrace"])
        assert_one_line_error(r)
        assert f"PID {target.pid} (sleep) is not a Python process" in r.err
    finally:
        target.kill()
        target.wait()


def pegged_usage():  # type: ignore[no-untyped-def]
    snaps = [CpuSnapshot(0.0, 0.0, (ThreadTimes(7, 0.0),)), CpuSnapshot(5.0, 5.0, (ThreadTimes(7, 5.0),))]
    return usage(snaps)


def test_pegged_cpu_without_a_state_file_does_not_claim_connected_platforms() -> None:
    missing = StateSeen(parse_state("/h/gateway_state.json", None), False)
    v = judge(pegged_usage(), [missing, missing], None, Thresholds())
    assert v.signature == CPU_PEGGED
    assert not any("connected platforms" in r for r in v.reasons)
    assert "no usable state file: cannot tell whether platforms are connected" in v.reasons


def test_ptrace_hint_tells_root_something_it_can_do() -> None:
    reason, hint = pyspy._classify_failure("Error: Permission denied (os error 13)")
    assert reason == "permission denied (ptrace)" and hint
    if sys.platform.startswith("linux") and os.geteuid() == 0:
        assert "run as root" not in hint and "CAP_SYS_PTRACE" in hint
    elif sys.platform.startswith("linux"):
        assert "run as root" in hint


# ---------------------------------------------------------------- 17: help and usage errors

COMMANDS = ["diagnose", "run", "status", "demo", "install", "uninstall", "patch"]


def test_help_shows_bracketed_defaults_one_way_and_no_type_tags() -> None:
    run_help = cli("run", "--help")
    assert run_help.code == 0
    assert "[default: auto]" in run_help.out and "[default: alert]" in run_help.out
    assert "[default: 5]" in run_help.out and "[default: 0.9]" in run_help.out
    for command in COMMANDS:
        r = cli(command, "--help")
        assert r.code == 0, r.err
        text = r.out
        assert not re.search(r"<(bool|str|int|float|path|list\[Path\])>", text), (command, text)
        assert "{" not in text and "}" not in text, (command, text)
        assert "(default " not in text and not re.search(r"\[\d+(\.\d+)?\]", text), (command, text)
    r = cli("diagnose", "--help")
    assert "Usage: hermes-watchdog diagnose [OPTIONS] PID" in r.out and "[default: 5]" in r.out


def test_a_mistyped_option_is_named_with_a_suggestion() -> None:
    r = cli("diagnose", "--second", "3", str(os.getpid()))
    assert_one_line_error(r)
    assert "No such option: --second (did you mean --seconds?)" in r.err


def test_no_arguments_prints_the_usage() -> None:
    r = cli()
    assert r.code == 2 and "Traceback" not in r.err
    assert "Usage: hermes-watchdog" in r.err and "diagnose" in r.err


@pytest.mark.skipif(not shutil.which("script"), reason="util-linux `script` is not installed")
def test_progress_on_a_terminal_only(sim, tmp_path: Path) -> None:
    g = sim("healthy").wait_running()
    typescript = tmp_path / "typescript"

    def on_a_terminal(*extra: str) -> str:
        # `script` gives the CLI a real pseudo-terminal, as a user's shell would.
        cmd = f"{sys.executable} -m hermes_watchdog diagnose {g.pid} --seconds 1 {' '.join(extra)}"
        r = subprocess.run(["script", "-qec", cmd, str(typescript)], capture_output=True, text=True, timeout=60,
                           check=False, env={**os.environ, "COLUMNS": "120"})
        assert r.returncode == 0, r.stdout + r.stderr
        return typescript.read_text(errors="replace")

    assert f"sampling PID {g.pid}" in on_a_terminal()
    assert "sampling PID" not in on_a_terminal("--json")
    r = cli("diagnose", str(g.pid), "--seconds", "1")
    assert r.code == 0 and "sampling PID" not in r.out + r.err
    r = cli("diagnose", str(g.pid), "--seconds", "1", "--json")
    assert r.code == 0 and "sampling PID" not in r.err and json.loads(r.out)["pid"] == g.pid


def test_install_dry_run_previews_on_a_new_machine_and_names_the_unit(isolated_home: Path, tmp_path: Path) -> None:
    """Issue 24: no ~/.hermes yet (a new machine) is a note in the preview, not exit 2; the unit name for a home
    outside ~/.hermes (hermes-watchdog-<8 hex>.service) is printed; nothing is written."""
    r = cli("install", "--manager", "systemd", "--dry-run")
    assert r.code == 0, r.err
    assert "# service name: hermes-watchdog.service" in r.out
    assert f"Hermes home {isolated_home / '.hermes'} does not exist yet" in r.out
    other = tmp_path / "elsewhere" / "hermes"
    r = cli("install", "--manager", "systemd", "--dry-run", "--hermes-home", str(other))
    assert r.code == 0, r.err
    name = next(line for line in r.out.splitlines() if line.startswith("# service name: "))
    assert re.fullmatch(r"# service name: hermes-watchdog-[0-9a-f]{8}\.service", name), name
    assert sorted(p.name for p in isolated_home.iterdir()) == [] and not (tmp_path / "elsewhere").exists()
    # The real install still needs the home, and says so in one line.
    r = cli("install", "--manager", "systemd", "--hermes-home", str(other), "--system")
    assert r.code == 2 and "does not exist" in r.err and not other.exists()


def test_status_json_without_state_still_prints_json(tmp_path: Path) -> None:
    """Issue 24: `status --json` with no state printed text on stderr and nothing on stdout."""
    r = cli("status", "--json", "--state-dir", str(tmp_path / "none"))
    assert r.code == 2
    out = json.loads(r.out)
    assert out["gateways"] == [] and out["daemon_running"] is False and "no watchdog state" in out["problem"]
    assert not (tmp_path / "none").exists()


def test_the_simulator_serves_the_home_it_is_given_in_its_own_environment(tmp_path: Path) -> None:
    """Issue 24: started with --hermes-home and no HERMES_HOME in its environment, a healthy simulated gateway
    was "gateway-gone ... the gateway of ~/.hermes". It now carries its home in its environment (same PID)."""
    home = tmp_path / "simhome"
    env = {k: v for k, v in os.environ.items() if k != "HERMES_HOME"}
    proc = subprocess.Popen([sys.executable, "-m", "hermes_watchdog.sim.gateway", "--hermes-home", str(home),
                             "--mode", "healthy"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (home / "gateway.pid").exists(), what="the simulated gateway to start")
        assert json.loads((home / "gateway.pid").read_text())["pid"] == proc.pid  # re-executed in place
        r = cli("diagnose", str(proc.pid), "--seconds", "1", "--json", "--stack-with", "none")
        out = json.loads(r.out)
        assert out["hermes_home"]["path"] == str(home) and "HERMES_HOME" in out["hermes_home"]["source"], out
        assert out["verdict"]["signature"] == "healthy", out["verdict"]
    finally:
        proc.terminate()
        proc.wait(30)
