"""The fix pack against real released Hermes adapters and loopback fakes: each shipped fix reproduces its bug
unpatched and makes it go away patched. (QQBot #17703 on 0.14.0 / not needed on 0.17.0: test_real_hermes.py.)

WeCom (#49918, #55487) on hermes-agent 0.19.0, the last PyPI release, where it is still open: the fake server
drops the long connection, the reconnect is accepted and closed during authentication, the closed socket stays
in ``_ws`` and the real ``_listen_loop`` spins. Patches go into a private overlay venv (tests/realhermes/overlay.py),
never into the shared cached one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from hermes_watchdog.judge.cpu import usage
from hermes_watchdog.observe import sampler
from tests.helpers import cli, wait_for
from tests.realhermes.overlay import overlay_venv
from tests.realhermes.venvs import hermes_venv

HERE = Path(__file__).resolve().parent / "realhermes"
WECOM_FIX = "fix wecom (WeCom closed-socket, #49918, #55487; still open upstream in 0.19.0)"
QQ_FIX = "fix qqbot (QQBot busy-loop, #17703; fixed upstream in 0.17.0)"


def cores(pid: int, seconds: float = 2.0) -> float:
    """What the process wants, as the watchdog judges it (run-queue demand where the kernel gives it)."""
    p = psutil.Process(pid)
    first = sampler.snapshot(p)
    time.sleep(seconds)  # a measurement interval, not a wait for a condition
    got = usage([first, sampler.snapshot(p)])
    assert got is not None
    return got.pegged_value


@pytest.fixture
def wecom(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    """wecom(python) -> (adapter process, its gateway.log path): the real WeComAdapter against a fresh fake."""
    started: list[subprocess.Popen] = []  # type: ignore[type-arg]
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}

    def start(python: Path) -> tuple[subprocess.Popen, Path]:  # type: ignore[type-arg]
        server = subprocess.Popen([str(python), str(HERE / "fake_wecom_server.py")], stdout=subprocess.PIPE,
                                  text=True, env=env)
        started.append(server)
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("PORT "), line
        home = tmp_path / f"hermes-{len(started)}"
        home.mkdir()
        program = tmp_path / f"bin-{len(started)}" / "hermes-gateway"  # a gateway by its name, as in the tests
        program.parent.mkdir()
        program.symlink_to(HERE / "wecom_harness.py")
        adapter = subprocess.Popen([str(python), str(program), line.split()[1]], env={**env, "HERMES_HOME": str(home)},
                                   stderr=subprocess.DEVNULL)
        started.append(adapter)
        return adapter, home / "logs" / "gateway.log"

    yield start
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def _log(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def test_wecom_closed_socket_spins_on_0_19_and_the_fix_makes_it_back_off(tmp_path: Path, wecom) -> None:
    python = overlay_venv(hermes_venv("0.19.0"), tmp_path / "overlay")
    r = cli("patch", "status", "--python", str(python))
    assert f"{WECOM_FIX}: NEEDED" in r.out and f"{QQ_FIX}: not needed" in r.out, r.out
    # Unpatched: reproduced.
    adapter, log = wecom(python)
    wait_for(lambda: "Reconnect failed: WeCom websocket closed during authentication" in _log(log),
             what="the reconnect to fail during authentication")
    assert cores(adapter.pid) >= 0.9, _log(log)[-2000:]
    adapter.send_signal(signal.SIGTERM)
    with pytest.raises(subprocess.TimeoutExpired):
        adapter.wait(3)  # the starved loop never runs its SIGTERM handler
    adapter.kill()
    # Patched: the same trigger, the listener backs off, SIGTERM works.
    r = cli("patch", "install", "--python", str(python))
    assert r.code == 0, r.err
    adapter, log = wecom(python)
    wait_for(lambda: _log(log).count("Reconnect failed") >= 2, what="a second, backed-off reconnect")
    assert "hermes-watchdog WeCom closed-socket fix applied" in _log(log)
    assert "WeComAdapter patch marker: hermes-watchdog-wecom-busy-loop/1" in _log(log)
    assert cores(adapter.pid) < 0.2
    adapter.send_signal(signal.SIGTERM)
    assert adapter.wait(30) == 0 and "SIGTERM handled" in _log(log)
    # Selected away, it is not applied (HERMES_WATCHDOG_FIXES); everything off with HERMES_WATCHDOG_PATCHES=0.
    code = ("import plugins.platforms.wecom.adapter as a; print(getattr(a.WeComAdapter, "
            "'_hermes_watchdog_patched', None))")
    env = {**os.environ, "HERMES_HOME": str(tmp_path / "h")}
    for extra, expect in (({}, "hermes-watchdog-wecom-busy-loop/1"), ({"HERMES_WATCHDOG_FIXES": "qqbot"}, "None"),
                          ({"HERMES_WATCHDOG_PATCHES": "0"}, "None")):
        out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True, timeout=120,
                             env={**env, **extra})
        assert out.stdout.strip().splitlines()[-1] == expect, (extra, out.stdout, out.stderr)
