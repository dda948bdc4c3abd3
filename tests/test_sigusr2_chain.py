"""SIGUSR2 is never sent, and never fatal (issue 19, item 3), with real processes and real signals.

Hermes git releases 0.19.1 to 0.21.3 register SIGUSR2 with ``chain=True`` (upstream #84373; the call is cited
in patches/hook.py): after the dump the signal falls through to its default action and kills the gateway. And
any faulthandler dump on a signal can crash a busy gateway (cpython #116008: it did, here, about one run in six
of the spinning stand-in below). So the watchdog sends no SIGUSR2 at all: its stacks come from the hook's stack
thread (patches/stack_thread.py), and the hook turns a ``chain=True`` registration into ``chain=False`` for
whoever else sends one. The stand-in is the simulated gateway started through a program named
``hermes-gateway`` that arms the hook from the source tree, as the .pth does at interpreter start, and then
registers SIGUSR2 exactly as those releases do. It must survive ``diagnose``, ``check`` and ``run`` with every
``--stack-with`` method, with nothing dumped on SIGUSR2; the control shows SIGUSR2 really would have killed it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from hermes_watchdog.observe import processes, stack_capture
from hermes_watchdog.observe.pyspy import ENV_OVERRIDE
from tests.helpers import cli, read_json, wait_for

REPO = Path(__file__).resolve().parent.parent
FAULTHANDLER_LOG = "gateway_faulthandler.log"  # Hermes' own SIGUSR2 file (logs/)
# Arm the hook (as the .pth does), register SIGUSR2 as 0.19.1-0.21.3 do, then run the simulated gateway.
STANDIN = ("import faulthandler, os, signal, sys\n"
           "sys.path.insert(0, os.environ['REPO'])\n"
           "from hermes_watchdog.patches import hook\n"
           "print(hook.arm(), flush=True)\n"
           "logs = os.path.join(os.environ['HERMES_HOME'], 'logs')\n"
           "os.makedirs(logs, exist_ok=True)\n"
           f"faulthandler.register(signal.SIGUSR2, file=open(os.path.join(logs, '{FAULTHANDLER_LOG}'), 'a'),\n"
           "                      all_threads=True, chain=True)\n"
           "print('registered', flush=True)\n"
           "from hermes_watchdog.sim.gateway import main\n"
           "sys.exit(main(os.environ['SIM_ARGS'].split()))\n")
FAST = ("--interval", "0.5", "--window", "3", "--cooldown", "0", "--start-timeout", "60")


class Standin:
    def __init__(self, proc: subprocess.Popen[str], home: Path, armed: str) -> None:
        self.proc, self.home, self.armed = proc, home, armed

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def log(self) -> Path:
        return self.home / "logs" / FAULTHANDLER_LOG

    def dumped(self) -> int:
        return self.log.read_text().count("Current thread") if self.log.exists() else 0

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            return False
        try:
            return psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def marker(self) -> dict[str, object]:
        return read_json(self.home / "state" / "hermes-watchdog-hook.json") or {}


@pytest.fixture
def standin(tmp_path: Path) -> Iterator:
    started: list[Standin] = []

    def start(name: str = "hermes", sim_args: str = "--mode healthy", version: str | None = "0.20.0",
              **env: str) -> Standin:
        home = tmp_path / name
        home.mkdir()
        program = tmp_path / f"bin-{name}" / "hermes-gateway"
        program.parent.mkdir()
        program.write_text(STANDIN)
        path = [str(REPO)]
        if version is not None:  # hermes_cli/__init__.py as a 0.20 install has it: the hook defers to Hermes
            pkg = tmp_path / f"hermes-{name}" / "hermes_cli"
            pkg.mkdir(parents=True)
            (pkg / "__init__.py").write_text(f'__version__ = "{version}"\n')
            path.insert(0, str(pkg.parent))
        proc = subprocess.Popen(
            [sys.executable, str(program)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={**os.environ, "HERMES_HOME": str(home), "REPO": str(REPO), "SIM_ARGS": sim_args,
                 "PYTHONPATH": os.pathsep.join(path), **env})
        assert proc.stdout is not None
        armed = proc.stdout.readline().strip()
        assert proc.stdout.readline().strip() == "registered", armed
        s = Standin(proc, home, armed)
        started.append(s)
        wait_for(lambda: (read_json(home / "gateway_state.json") or {}).get("gateway_state") == "running",
                 what="the stand-in gateway to be running")
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait(10)


def _no_py_spy(tmp_path: Path) -> dict[str, str]:
    """py-spy made unfindable, so ``auto`` falls to the hook, as on macOS without root."""
    return {**os.environ, ENV_OVERRIDE: str(tmp_path / "no-py-spy")}


def test_a_chain_true_registration_is_turned_and_no_method_sends_sigusr2(tmp_path: Path, standin) -> None:
    s = standin()
    assert s.armed.startswith("armed:"), s.armed
    m = s.marker()
    assert m["pid"] == s.pid and m["stacks"].startswith(f"@hermes-watchdog-stacks.{s.pid}.{m['start_time']}."), m
    assert m["sigusr2"] == {"file": str(s.log), "chain": False, "chain_requested": True}, m
    status = cli("patch", "status", "--hermes-home", str(s.home))
    assert "chain=False (Hermes asked for chain=True; the hook turned it)" in status.out, status.out + status.err
    assert f"stack thread: {m['stacks']}" in status.out, status.out
    # auto with py-spy at hand is py-spy's run; `faulthandler`, the hook's old name, is the hook's (unit test).
    runs = [("hook", None, "hook"), ("auto", _no_py_spy(tmp_path), "hook"), ("py-spy", None, "py-spy"),
            ("none", None, "none")]
    for method, env, used in runs:
        r = cli("diagnose", str(s.pid), "--seconds", "1", "--stack-with", method, "--json", env=env)
        assert r.code in {0, 1}, (method, r.err)
        stack = json.loads(r.out)["stack"]
        assert stack["method"] == used, (method, stack)
        assert stack["captured"] is (used != "none"), (method, stack)
        assert s.alive(), f"diagnose --stack-with {method} killed the gateway"
        assert s.dumped() == 0, method  # no SIGUSR2, whatever the method
    # check (auto, short): with py-spy unavailable it takes the stack from the hook's thread; the gateway lives.
    r = cli("check", "--hermes-home", str(s.home), "--seconds", "2", "--json", env=_no_py_spy(tmp_path))
    assert r.code in {0, 1, 2}, r.err
    assert s.alive() and s.dumped() == 0, r.out


def test_run_with_every_method_leaves_a_chain_true_gateway_alive(tmp_path: Path, standin) -> None:
    s = standin()
    for method, env in [("hook", None), ("auto", _no_py_spy(tmp_path)), ("py-spy", None), ("none", None)]:
        name = f"{method}-{'nospy' if env else 'spy'}"
        r = cli("run", "--once", "--hermes-home", str(s.home), "--state-dir", str(tmp_path / f"state-{name}"),
                "--stack-with", method, "--stack-every", "1", *FAST, env=env, timeout=120)
        assert r.code in {0, 1}, (method, r.out, r.err)
        assert s.alive(), f"run --stack-with {method} killed the gateway: {r.err[-2000:]}"
        assert s.dumped() == 0, (method, r.err[-2000:])


def test_incident_capture_by_the_hook_leaves_a_chain_true_gateway_alive(tmp_path: Path, standin, daemons) -> None:
    """A spinning stand-in: the incident's stack comes from the hook's thread, the dry run restarts nothing,
    and the gateway is still there, still spinning, with no SIGUSR2 dump."""
    s = standin(sim_args="--mode spin --spin-after 1")
    d = daemons(tmp_path / "state", "--hermes-home", str(s.home), "--restart-with", "signal", "--dry-run",
                "--stack-with", "hook", *FAST)
    wait_for(lambda: d.incidents() and d.incident().get("result") == "dry-run", timeout=120,
             what="a dry-run incident")
    inc = d.incident()
    assert inc["stack"]["method"] == "hook" and inc["stack"]["captured"] is True, inc["stack"]
    assert "_listen_loop" in (d.incidents()[0] / "stack.txt").read_text()
    assert s.alive() and s.dumped() == 0


def test_a_spinning_gateway_survives_hundreds_of_stack_requests(standin) -> None:
    """The harm this replaced: faulthandler dumps on SIGUSR2, five a second, segfaulted this very spinning
    stand-in in about one run in six (cpython #116008). The stack thread answers with the GIL held."""
    s = standin(sim_args="--mode spin --spin-after 0")
    wait_for(lambda: '"spin"' in (s.home / "sim-events.jsonl").read_text()
             if (s.home / "sim-events.jsonl").exists() else False, what="the spin")
    ident = processes.identity(s.pid)
    dumps, reason, _ = stack_capture.HookStacks().dumps(ident, s.home, count=300, spread=3.0, time_limit=120)
    assert len(dumps) == 300, reason
    spinning = sum(any(f.function == "_listen_loop" for t in d.threads for f in t.frames) for d in dumps)
    assert spinning >= 290, spinning  # taken while the loop spun, not between spins
    assert s.alive() and s.dumped() == 0


def test_no_stack_thread_no_signal_and_the_control_dies_of_sigusr2(tmp_path: Path, standin, daemons) -> None:
    """The hook is off (an older fix pack, or none), Hermes registers chain=True, and a marker as an older hook
    wrote it (a signal and a file, no stack thread) names this very process: no method sends anything, each
    says why. The control: a SIGUSR2 really kills it after the dump (#84373)."""
    s = standin(HERMES_WATCHDOG_HOOK="0")
    assert s.armed.startswith("off:"), s.armed
    ident = processes.identity(s.pid)
    marker = s.home / "state" / "hermes-watchdog-hook.json"
    marker.parent.mkdir(exist_ok=True)
    marker.write_text(json.dumps({"pid": s.pid, "start_time": ident.start_ticks, "signal": "SIGUSR2",
                                  "file": str(s.log), "owner": "hermes", "main_thread": 1, "chain": False}))
    marker.chmod(0o600)
    for method, env in [("hook", None), ("auto", _no_py_spy(tmp_path))]:
        r = cli("diagnose", str(s.pid), "--seconds", "1", "--stack-with", method, "--json", env=env)
        stack = json.loads(r.out)["stack"]
        assert stack["captured"] is False and "no stack thread" in stack["reason"], stack
        assert s.alive() and s.dumped() == 0
    text = cli("diagnose", str(s.pid), "--seconds", "1", "--stack-with", "hook")  # the reason, in the report too
    assert "no stack thread" in text.out, text.out
    check = cli("check", "--hermes-home", str(s.home), "--seconds", "2", "--json", env=_no_py_spy(tmp_path))
    assert any("no stack thread" in why for why in json.loads(check.out)["reasons"]), check.out
    r = cli("run", "--once", "--hermes-home", str(s.home), "--state-dir", str(tmp_path / "state"),
            "--stack-with", "hook", "--stack-every", "1", *FAST, timeout=120)
    assert r.code in {0, 1}, r.err[-2000:]
    assert s.alive() and s.dumped() == 0
    # The control: the SIGUSR2 every method withheld ends this gateway after its dump.
    s.proc.send_signal(signal.SIGUSR2)
    assert s.proc.wait(30) == -signal.SIGUSR2
    assert s.dumped() >= 1
