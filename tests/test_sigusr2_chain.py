"""SIGUSR2 is never fatal (issue 19, item 3), with real processes and real signals.

Hermes git releases 0.19.1 to 0.21.3 register SIGUSR2 with ``chain=True`` (upstream #84373; the call is cited
in patches/hook.py): after the dump the signal falls through to its default action and kills the gateway. The
stand-in here is the simulated gateway (healthy, idle) started through a program named ``hermes-gateway`` that
arms the hook from the source tree, as the .pth does at interpreter start, and then registers SIGUSR2 exactly
as those releases do. It must survive ``diagnose`` and ``run`` with every ``--stack-with`` method. A stand-in
whose marker lacks the chain proof gets no SIGUSR2 at all, with the reason said, and the control shows that
SIGUSR2 really would have killed it.
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

from hermes_watchdog.observe import processes
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


@pytest.mark.parametrize("version", ["0.20.0", None], ids=["hermes-0.20-defers", "hook-registered-first"])
def test_a_chain_true_registration_is_turned_and_survives_diagnose_with_every_method(
        tmp_path: Path, standin, version: str | None) -> None:
    s = standin(version=version)
    # Deferred to Hermes (0.20), or registered by the hook first and re-registered by Hermes: either way the
    # marker follows Hermes' file and proves chain=False, saying what was asked.
    assert s.armed.startswith("deferred:" if version else "armed:"), s.armed
    m = s.marker()
    assert m["pid"] == s.pid and m["owner"] == "hermes" and m["file"] == str(s.log), m
    assert m["chain"] is False and m["chain_requested"] is True, m
    status = cli("patch", "status", "--hermes-home", str(s.home))
    assert "chain=False (Hermes asked for chain=True; the hook turned it)" in status.out, status.out + status.err
    runs = [("faulthandler", None, "faulthandler"), ("auto", _no_py_spy(tmp_path), "faulthandler"),
            ("auto", None, "py-spy"), ("py-spy", None, "py-spy"), ("none", None, "none")]
    for method, env, used in runs:
        before = s.dumped()
        r = cli("diagnose", str(s.pid), "--seconds", "1", "--stack-with", method, "--json", env=env)
        assert r.code in {0, 1}, (method, r.err)
        stack = json.loads(r.out)["stack"]
        assert stack["method"] == used, (method, stack)
        assert s.alive(), f"diagnose --stack-with {method} killed the gateway"
        if used == "faulthandler":
            assert stack["captured"] is True and s.dumped() > before, stack  # SIGUSR2s were sent: it dumped
        else:
            assert s.dumped() == before  # no SIGUSR2 from py-spy or none
    # check (auto, short): with py-spy unavailable it takes the stack through the hook, and the gateway lives.
    before = s.dumped()
    r = cli("check", "--hermes-home", str(s.home), "--seconds", "2", "--json", env=_no_py_spy(tmp_path))
    assert r.code in {0, 1, 2}, r.err
    assert s.dumped() > before and s.alive(), r.out


def test_run_with_every_method_leaves_a_chain_true_gateway_alive(tmp_path: Path, standin) -> None:
    s = standin()
    for method, env in [("faulthandler", None), ("auto", _no_py_spy(tmp_path)), ("auto", None), ("py-spy", None),
                        ("none", None)]:
        before = s.dumped()
        name = f"{method}-{'nospy' if env else 'spy'}"
        r = cli("run", "--once", "--hermes-home", str(s.home), "--state-dir", str(tmp_path / f"state-{name}"),
                "--stack-with", method, "--stack-every", "1", *FAST, env=env, timeout=120)
        assert r.code in {0, 1}, (method, r.out, r.err)
        assert s.alive(), f"run --stack-with {method} killed the gateway: {r.err[-2000:]}"
        if method == "faulthandler" or env is not None:
            assert s.dumped() > before, (method, r.err[-2000:])  # the loop bursts signalled it, and it lived


def test_incident_capture_by_the_hook_leaves_a_chain_true_gateway_alive(tmp_path: Path, standin, daemons) -> None:
    """A spinning stand-in: the incident's stack is taken through the hook (SIGUSR2), the dry run restarts
    nothing, and the gateway is still there, still spinning."""
    s = standin(sim_args="--mode spin --spin-after 1")
    d = daemons(tmp_path / "state", "--hermes-home", str(s.home), "--restart-with", "signal", "--dry-run",
                "--stack-with", "faulthandler", *FAST)
    wait_for(lambda: d.incidents() and d.incident().get("result") == "dry-run", timeout=120,
             what="a dry-run incident")
    inc = d.incident()
    assert inc["stack"]["method"] == "faulthandler" and inc["stack"]["captured"] is True, inc["stack"]
    assert "_listen_loop" in (d.incidents()[0] / "stack.txt").read_text()
    assert s.alive() and s.dumped() >= 5


def test_no_sigusr2_without_the_chain_proof_and_the_control_dies_of_it(tmp_path: Path, standin, daemons) -> None:
    """The hook is off (an older fix pack, or none), Hermes registers chain=True, and a marker as an older hook
    wrote it (no ``chain``) names this very process: no method sends SIGUSR2, each says why. The control: the
    SIGUSR2 withheld really kills it after the dump (#84373)."""
    s = standin(HERMES_WATCHDOG_HOOK="0")
    assert s.armed.startswith("off:"), s.armed
    ident = processes.identity(s.pid)
    marker = s.home / "state" / "hermes-watchdog-hook.json"
    marker.parent.mkdir(exist_ok=True)
    marker.write_text(json.dumps({"pid": s.pid, "start_time": ident.start_ticks, "signal": "SIGUSR2",
                                  "file": str(s.log), "owner": "hermes", "main_thread": 1}))
    marker.chmod(0o600)
    for method, env in [("faulthandler", None), ("auto", _no_py_spy(tmp_path))]:
        r = cli("diagnose", str(s.pid), "--seconds", "1", "--stack-with", method, "--json", env=env)
        stack = json.loads(r.out)["stack"]
        assert stack["captured"] is False and "no SIGUSR2 sent" in stack["reason"], stack
        assert "does not say how SIGUSR2 is registered" in stack["reason"], stack
        text = cli("diagnose", str(s.pid), "--seconds", "1", "--stack-with", method, env=env)
        assert "no SIGUSR2 sent" in text.out, text.out
        assert s.alive() and s.dumped() == 0
    check = cli("check", "--hermes-home", str(s.home), "--seconds", "2", "--json", env=_no_py_spy(tmp_path))
    assert any("no SIGUSR2 sent" in why for why in json.loads(check.out)["reasons"]), check.out
    r = cli("run", "--once", "--hermes-home", str(s.home), "--state-dir", str(tmp_path / "state"),
            "--stack-with", "faulthandler", "--stack-every", "1", *FAST, timeout=120)
    assert "no SIGUSR2 sent" in r.err + r.out, r.err[-2000:]
    assert s.alive() and s.dumped() == 0
    # The control: the same signal sent by hand dumps, then falls through to the default action.
    os.kill(s.pid, signal.SIGUSR2)
    assert s.proc.wait(30) == -signal.SIGUSR2
    assert s.dumped() == 1


def test_the_wrapper_turns_chain_true_in_process_and_unregister_takes_the_proof_back(tmp_path: Path) -> None:
    """In one real interpreter: the hook armed, Hermes' chain=True call turned (the process survives its own
    SIGUSR2 and dumped once), and unregistering SIGUSR2 removes the marker (its default action is back)."""
    home = tmp_path / "hermes"
    code = ("import faulthandler, json, os, signal, sys\n"
            "sys.path.insert(0, os.environ['REPO'])\n"
            "from hermes_watchdog.patches import hook\n"
            "print(hook.arm(['python', '/x/bin/hermes-gateway']))\n"
            "home = os.environ['HERMES_HOME']\n"
            "marker = os.path.join(home, 'state', 'hermes-watchdog-hook.json')\n"
            f"log = open(os.path.join(home, 'logs', '{FAULTHANDLER_LOG}'), 'a')\n"
            "faulthandler.register(signal.SIGUSR2, file=log, all_threads=True, chain=True)\n"
            "m = json.load(open(marker))\n"
            "print(m['chain'], m['chain_requested'], m['owner'], hook.status()['chain_requested'])\n"
            "os.kill(os.getpid(), signal.SIGUSR2)\n"
            "print('survived')\n"
            "faulthandler.unregister(signal.SIGUSR2)\n"
            "print(os.path.exists(marker))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "HERMES_HOME": str(home), "REPO": str(REPO), "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("armed:"), lines
    assert lines[1:] == ["False True hermes True", "survived", "False"], r.stdout
    assert (home / "logs" / FAULTHANDLER_LOG).read_text().count("Current thread") == 1
