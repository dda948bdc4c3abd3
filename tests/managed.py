"""A simulated gateway relaunched by a real service manager: s6 (`s6-svscan` + `s6-supervise`, Debian's
`s6`), as s6-overlay runs Hermes in upstream's Docker image. A gateway that exits, or that the watchdog
kills, is started again by s6-supervise, as launchd's KeepAlive and systemd's Restart=always would.

Where s6 is not installed (macOS, a bare laptop) the tests fall back to the stand-in supervisor
(hermes_watchdog/sim/supervisor.py), which plays the same relaunch; under ``CI=true`` a missing s6 fails the
test instead, naming what to install (tests/capabilities.py). Tests whose restart path itself is a stand-in
(the launchd `launchctl` stand-in, a user's `--restart-command`) ask for the stand-in supervisor by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from hermes_watchdog.act.managers.s6 import supervised_pid
from hermes_watchdog.sim.s6service import count_launches, s6_here, s6_service
from tests.capabilities import CAPABILITIES, ci_strict
from tests.helpers import Supervised, read_json, sim_env, start_supervised, wait_for


@dataclass
class S6Gateway:
    """The same face as tests.helpers.Supervised: ``launches``, ``child``, ``wait_running``, ``stop``."""

    home: Path
    service: Path
    launches_file: Path
    svscan: subprocess.Popen[bytes]

    @property
    def launches(self) -> int:
        return count_launches(self.launches_file)

    @property
    def child(self) -> int | None:
        return supervised_pid(self.service)

    def wait_running(self, launches: int = 1) -> int:
        def ready() -> int | None:
            pid = self.child
            st = read_json(self.home / "gateway_state.json") or {}
            if self.launches >= launches and pid and st.get("pid") == pid and st.get("gateway_state") == "running":
                return pid
            return None

        return wait_for(ready, what=f"launch {launches} of the gateway under s6 to be running")

    def stop(self) -> None:
        # Teardown: once (no relaunch) and SIGKILL (a starved loop ignores SIGTERM), then s6-svscan exits.
        pid = self.child
        subprocess.run(["s6-svc", "-O", "-k", str(self.service)], capture_output=True, check=False)
        if pid:
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).wait(10)
        subprocess.run(["s6-svscanctl", "-t", str(self.service.parent)], capture_output=True, check=False)
        try:
            self.svscan.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.svscan.pid, signal.SIGKILL)
            self.svscan.wait(10)


def start_s6(home: Path, *gateway_args: str, env: dict[str, str] | None = None,
             relaunch_delay: float = 0.0) -> S6Gateway:
    home.mkdir(parents=True, exist_ok=True)
    # systemd's RestartSec: s6 runs ./finish after each exit, before the relaunch; it must be let sleep its
    # whole delay.
    delay = relaunch_delay > 0
    proc, service, launches = s6_service(
        home.parent / f"s6-{home.name}", [sys.executable, "-m", "hermes_watchdog.sim.gateway", *gateway_args],
        env or sim_env(home), finish=f"#!/bin/sh\nexec sleep {relaunch_delay:g}\n" if delay else None,
        finish_timeout=relaunch_delay + 10 if delay else None)
    return S6Gateway(home, service, launches, proc)


def start_managed_check() -> None:
    """Under CI=true a missing s6 fails the test that would relaunch through it."""
    if not s6_here() and ci_strict():
        pytest.fail(f"CI=true: the tests relaunch through the real s6, which is missing ({CAPABILITIES['s6']})")


def start_managed(home: Path, *gateway_args: str, env: dict[str, str] | None = None,
                  relaunch_delay: float = 0.0, stop_timeout: float = 60, stand_in: bool = False
                  ) -> S6Gateway | Supervised:
    """The gateway under s6 where s6 runs; under the stand-in supervisor when ``stand_in`` (the test's restart
    path is itself a stand-in that signals that supervisor) or, outside CI, where s6 is not installed.
    ``stop_timeout``: the stand-in's own wait before it kills on a stop; s6-supervise never kills unasked."""
    if not stand_in:
        start_managed_check()
        if s6_here():
            return start_s6(home, *gateway_args, env=env, relaunch_delay=relaunch_delay)
    return start_supervised(home, *gateway_args, env=env, relaunch_delay=relaunch_delay or 0.3,
                            stop_timeout=stop_timeout)
