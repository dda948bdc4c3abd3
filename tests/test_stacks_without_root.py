"""Stacks without ptrace: the fix pack's hook and its stack thread (no signal), the marker that must name the
very process asked, SIGABRT for a last stack, all with real processes; the whole real Hermes 0.14.0 gateway
(tests/realhermes/gateway_harness.py) against the loopback fake QQ server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hermes_watchdog.observe import processes, stack_capture
from hermes_watchdog.observe.stack_capture import HookStacks
from tests.helpers import cli, demand, on_failure, wait_for
from tests.realhermes.gateway_harness import Gateway, start_fake_qq, start_gateway
from tests.realhermes.overlay import overlay_venv, purelib
from tests.realhermes.venvs import hermes_venv

REPO = Path(__file__).resolve().parent.parent
FAST = ("--interval", "0.5", "--window", "3", "--grace", "2", "--cooldown", "0", "--start-timeout", "90")
# A stand-in gateway: looks like one by its program name, runs the real hook from the source tree, sleeps.
STANDIN = ("import os, sys, time\n"
           "sys.path.insert(0, os.environ['REPO'])\n"
           "from hermes_watchdog.patches import hook\n"
           "print(hook.arm(), flush=True)\n"
           "while True:\n"
           "    time.sleep(0.05)\n")


def _start_standin(tmp_path: Path, home: Path, **env: str) -> subprocess.Popen[str]:
    program = tmp_path / "bin" / "hermes-gateway"
    program.parent.mkdir(exist_ok=True)
    program.write_text(STANDIN)
    home.mkdir(exist_ok=True)
    proc = subprocess.Popen([sys.executable, str(program)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "HERMES_HOME": str(home), "REPO": str(REPO), **env})
    assert proc.stdout is not None
    proc.stdout.readline()  # armed (or not): the marker, if any, is written
    return proc


@pytest.fixture
def standins() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def test_the_armed_hook_gives_dumps_and_the_gateway_lives_on(tmp_path: Path, standins) -> None:
    home = tmp_path / "hermes"
    p = _start_standin(tmp_path, home)
    standins.append(p)
    ident = processes.identity(p.pid)
    marker = json.loads((home / "state" / "hermes-watchdog-hook.json").read_text())
    assert marker["pid"] == p.pid
    assert marker["stacks"].startswith(f"@hermes-watchdog-stacks.{p.pid}.{ident.start_ticks}.")
    assert marker["sigusr2"] is None and marker["fatal_handler"] is True
    assert (home / "state" / "hermes-watchdog-hook.json").stat().st_mode & 0o777 == 0o600
    assert not (home / "logs").exists()  # no stack file any more: the stacks go over the socket
    got, reason, _ = HookStacks().dumps(ident, home, count=3, spread=0.3)
    assert len(got) == 3, reason
    main = next(t for t in got[0].threads if t.name == "MainThread")
    assert main.frames[0].function == "<module>" and main.frames[0].file.endswith("hermes-gateway")
    assert main.os_tid == p.pid  # the main thread's native id on Linux: matched to the hottest thread
    assert p.poll() is None
    analysis = stack_capture.choose("hook").capture(ident, home, p.pid, count=2, spread=0.2)
    assert analysis.captured and analysis.method == "hook" and analysis.dumps == 2


def _write_marker(home: Path, mode: int = 0o600, **fields: object) -> Path:
    path = home / "state" / "hermes-watchdog-hook.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    path.write_text(json.dumps(fields))
    path.chmod(mode)
    return path


def test_no_stacks_without_a_marker_that_names_that_very_process(tmp_path: Path, standins) -> None:
    """The hook is off in this stand-in, and a stack thread of another process (this test's) listens at the
    address a forged marker names: every forged or stale marker is refused, nothing is asked of anyone but the
    proven process, and the stand-in (which SIGUSR2 would terminate, as it terminates Hermes 0.14-0.19) lives."""
    home = tmp_path / "hermes"
    p = _start_standin(tmp_path, home, HERMES_WATCHDOG_HOOK="0")
    standins.append(p)
    ident = processes.identity(p.pid)
    assert ident.start_ticks is not None
    good = {"pid": p.pid, "start_time": ident.start_ticks, "main_thread": 1,
            "stacks": f"@hermes-watchdog-stacks.{p.pid}.{ident.start_ticks}.{'0' * 16}"}
    me = processes.identity(os.getpid())
    mine = f"@hermes-watchdog-stacks.{me.pid}.{me.start_ticks}.{'0' * 16}"
    cases = [
        ({}, None, "not armed"),
        (good | {"pid": p.pid + 1}, None, "armed in an earlier gateway"),
        (good | {"start_time": ident.start_ticks - 100}, None, "earlier process with the same PID"),
        (good | {"start_time": None}, None, "cannot be compared"),
        (good, 0o644, "open to other users"),
        (good | {"stacks": None}, None, "no stack thread"),  # an older hook's marker
        (good | {"stacks": mine}, None, "is not this gateway's"),  # an address not this process's own
        (good, None, "cannot reach the gateway's stack thread"),  # the right name, nobody listening
    ]
    for fields, mode, why in cases:
        if fields:
            _write_marker(home, mode or 0o600, **fields)
        got, reason, _ = HookStacks().dumps(ident, home, count=1)
        assert got == [] and why in (reason or ""), (fields, reason)
        assert p.poll() is None
    real = _write_marker(tmp_path / "other", **good)
    (home / "state" / "hermes-watchdog-hook.json").unlink()
    (home / "state" / "hermes-watchdog-hook.json").symlink_to(real)
    got, reason, _ = HookStacks().dumps(ident, home, count=1)
    assert got == [] and "not a regular file" in (reason or "") and p.poll() is None
    # auto, with py-spy unable to attach: falls to the hook, refuses it, says both reasons, asks nothing.
    (home / "state" / "hermes-watchdog-hook.json").unlink()
    os.environ[stack_capture.pyspy.ENV_OVERRIDE] = str(tmp_path / "no-py-spy")
    try:
        analysis = stack_capture.choose("auto").capture(ident, home, None, count=1)
    finally:
        del os.environ[stack_capture.pyspy.ENV_OVERRIDE]
    assert not analysis.captured and analysis.method == "none"
    assert "py-spy: py-spy not found" in (analysis.reason or "") and "hook:" in (analysis.reason or "")
    assert p.poll() is None
    # The control: SIGUSR2 without any handler ends the process (what a signal-based method would risk).
    os.kill(p.pid, signal.SIGUSR2)
    assert p.wait(30) == -signal.SIGUSR2


# ----------------------------------------------------------------------------------- the real gateway
@pytest.fixture(scope="module")
def hermes_014() -> Path:
    return hermes_venv("0.14.0")


@pytest.fixture
def gateways(request: pytest.FixtureRequest) -> Iterator[list[Gateway]]:
    started: list[Gateway] = []
    on_failure(request, "gateways: launches and log tails", lambda: "\n".join(
        f"{g.home}: launches {g.launches}\n" + "\n".join(g.log().splitlines()[-30:]) for g in started))
    yield started
    for g in started:
        g.stop()
        g.fake.stop()


def _spin(g: Gateway) -> int:
    pid = g.wait_ready()
    g.fake.close_sockets()
    wait_for(lambda: (g.state().get("platforms") or {}).get("qqbot", {}).get("state") == "disconnected",
             timeout=120, what="qqbot to be disconnected")
    wait_for(lambda: "Reconnect failed" in g.log(), timeout=120, what="the reconnect to fail: the busy loop")
    # The spin starts once a reconnect has left a closed socket behind, which may take a backoff cycle or
    # two after the first failure: wait until the loop thread really wants a core.
    wait_for(lambda: demand(pid, 1.0) > 0.9, timeout=120, what="the loop thread to spin")
    return pid


def test_real_gateway_hook_only_in_the_gateway_and_stacks_in_run_and_diagnose(
        hermes_014: Path, tmp_path: Path, gateways, daemons) -> None:
    python = overlay_venv(hermes_014, tmp_path / "overlay")
    r = cli("patch", "install", "--python", str(python))
    assert r.code == 0, r.err
    # The same venv's Python, not a gateway: no hook, no marker; SIGUSR2 keeps its default action.
    home = tmp_path / "hermes"
    home.mkdir()
    code = ("import os, signal, sys; print(sys.modules['hermes_watchdog_hook'].status()); "
            "os.kill(os.getpid(), signal.SIGUSR2)")
    other = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "HERMES_HOME": str(home)})
    assert "not armed: not a Hermes gateway process" in other.stdout and other.returncode == -signal.SIGUSR2
    assert not (home / "state").exists()
    # The whole gateway with the fixes switched off, so it still spins; the hook armed.
    fake = start_fake_qq(hermes_014)
    g = start_gateway(python, "0.14.0", home, fake, extra_env={"HERMES_WATCHDOG_FIXES": "none"}, supervised=True)
    gateways.append(g)
    pid = _spin(g)
    status = cli("patch", "status", "--python", str(python), "--hermes-home", str(home))
    assert f"stack hook: armed in PID {pid}" in status.out, status.out
    assert "fixes selected: none" in status.out
    by_hook = cli("diagnose", str(pid), "--seconds", "2", "--stack-with", "hook", "--json")
    by_spy = cli("diagnose", str(pid), "--seconds", "2", "--stack-with", "py-spy", "--json")
    hook, spy = json.loads(by_hook.out), json.loads(by_spy.out)
    assert by_hook.code == by_spy.code == 1, by_hook.err + by_spy.err
    assert hook["stack"]["method"] == "hook" and spy["stack"]["method"] == "py-spy"
    # Both methods see the adapter's frame the spin always holds; neither classifies (the loop's samples do).
    assert "_listen_loop" in " ".join(hook["stack"]["functions_seen"]), hook["stack"]
    assert "_listen_loop" in " ".join(spy["stack"]["functions_seen"]), spy["stack"]
    assert "classification" not in hook["stack"] and "classification" not in spy["stack"]
    assert hook["verdict"]["signature"] == spy["verdict"]["signature"] == "busy-loop"
    assert g.alive(pid)  # five stacks from its own thread, and the gateway is still there
    # run --stack-with hook: the incident's stack is the hook's.
    d = daemons(tmp_path / "state", "--hermes-home", str(home), "--restart-with", "signal",
                "--stack-with", "hook", *FAST)
    wait_for(lambda: d.incidents() and d.incident().get("result") in {"restarted", "restart-failed"},
             timeout=240, what="the incident's restart to finish")
    inc = d.incident()
    stack_txt = (d.incidents()[0] / "stack.txt").read_text()
    assert inc["stack"]["method"] == "hook" and "classification" not in inc["stack"]
    assert stack_txt.startswith("method: hook") and "_listen_loop" in stack_txt, stack_txt
    # The adapter's frame, which every sample of the spin holds (a 10 Hz hook may miss the short _read_events).
    assert "_listen_loop" in inc["stack"]["functions_seen"], inc["stack"]
    assert inc["restart"]["signals"][-1] == "SIGKILL"  # a stack was taken: no SIGABRT needed
    assert inc["result"] == "restarted", inc.get("timeline")


def test_real_gateway_with_pythonfaulthandler_leaves_its_last_stack_via_sigabrt(
        hermes_014: Path, tmp_path: Path, gateways, daemons) -> None:
    """No stack can be taken (as on macOS without root, no hook): the gateway runs with PYTHONFAULTHANDLER=1
    and its stderr goes to logs/gateway.error.log as under launchd; the restart ends it with SIGABRT and the
    incident collects the stack it printed."""
    home = tmp_path / "hermes"
    (home / "logs").mkdir(parents=True)
    # The harness writes the gateway's output beside the home; make that launchd's StandardErrorPath.
    (tmp_path / "hermes-gateway.out").symlink_to(home / "logs" / "gateway.error.log")
    fake = start_fake_qq(hermes_014)
    # HERMES_WATCHDOG_PATCHES=0: the cached venv is shared, and a fix pack left in it would stop the spin.
    g = start_gateway(hermes_014, "0.14.0", home, fake, extra_env={"PYTHONFAULTHANDLER": "1",
                                                                   "HERMES_WATCHDOG_PATCHES": "0"}, supervised=True)
    gateways.append(g)
    old = _spin(g)
    d = daemons(tmp_path / "state", "--hermes-home", str(home), "--restart-with", "signal", "--stack-with", "none",
                *FAST)
    wait_for(lambda: d.incidents() and d.incident().get("result") in {"restarted", "restart-failed"},
             timeout=240, what="the incident's restart to finish")
    inc = d.incident()
    assert inc["pid"] == old and inc["restart"]["final_signal"] == "SIGABRT", inc["restart"]
    assert "SIGABRT" in inc["restart"]["signals"] or "SIGABRT" in json.dumps(inc.get("timeline"))
    assert inc["stack"]["method"] == "sigabrt" and inc["stack"]["captured"] is True, inc["stack"]
    assert inc["stack"]["live_capture_failed"].startswith("stacks are off")
    stack_txt = (d.incidents()[0] / "stack.txt").read_text()
    assert stack_txt.startswith("method: sigabrt") and "_listen_loop" in stack_txt, stack_txt
    assert "_listen_loop" in " ".join(inc["stack"]["functions_seen"]), inc["stack"]
    assert inc["result"] == "restarted" and g.launches == 2


def test_git_checkout_of_hermes_is_found_and_reported(tmp_path: Path, isolated_home: Path) -> None:
    """Hermes as upstream's installer lays it out: a git checkout in ~/.hermes/hermes-agent with its own venv/."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = isolated_home / ".hermes" / "hermes-agent"
    (root / "hermes_cli").mkdir(parents=True)
    (root / "gateway").mkdir()
    (root / "hermes_cli" / "__init__.py").write_text('__version__ = "0.21.0"\n__release_date__ = "2026.9.1"\n')
    (root / "hermes_cli" / "main.py").write_text("import time\nwhile True:\n    time.sleep(0.1)\n")
    (root / "gateway" / "__init__.py").write_text("")
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "v0.21.0"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    python = root / "venv" / "bin" / "python"
    (purelib(python) / "hermes-agent.pth").write_text(f"{root}\n")  # as `pip install -e .` leaves it
    r = cli("patch", "status")  # no --python: the default install's venv is found
    assert r.code == 0, r.err
    assert f"gateway Python: {python}" in r.out and f"Hermes: git 0.21.0 ({commit[:12]}) in {root}" in r.out, r.out
    home = isolated_home / ".hermes"
    gw = subprocess.Popen([str(python), "-m", "hermes_cli.main", "gateway", "run"],
                          env={**os.environ, "HERMES_HOME": str(home)})
    try:
        wait_for(lambda: processes.looks_like_gateway(processes.identity(gw.pid).cmdline), what="the gateway")
        d = cli("diagnose", str(gw.pid), "--seconds", "1", "--stack-with", "none", "--json")
        assert d.code in {0, 1}, d.err
        assert json.loads(d.out)["versions"]["hermes"] == f"git 0.21.0 ({commit[:12]})"
    finally:
        gw.kill()
        gw.wait(10)
