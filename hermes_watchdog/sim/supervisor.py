"""A small relaunching supervisor for the simulated gateway, standing in for launchd KeepAlive /
systemd Restart=always. Standard library only.

  python -m hermes_watchdog.sim.supervisor --state FILE [--stop-timeout S] -- <gateway args>

It relaunches the gateway whenever it exits. SIGHUP asks for a restart the way ``systemctl restart`` and
``launchctl kickstart -k`` do one: SIGTERM, SIGKILL after --stop-timeout, start again. SIGTERM stops
the gateway the same way and exits. FILE holds {"pid", "child", "launches"}, rewritten atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class Supervisor:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.child: subprocess.Popen[bytes] | None = None
        self.launches = 0
        self.stopping = False
        self.restart_requested = False

    def write_state(self) -> None:
        path = Path(self.args.state)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".sup.", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump({"pid": os.getpid(), "child": self.child.pid if self.child else None,
                       "launches": self.launches}, fh)
        os.replace(tmp, path)

    def launch(self) -> None:
        argv = [sys.executable, "-m", "hermes_watchdog.sim.gateway", *self.args.gateway_args]
        self.child = subprocess.Popen(argv)
        self.launches += 1
        self.write_state()

    def stop_child(self) -> None:
        if self.child is None or self.child.poll() is not None:
            return
        self.child.send_signal(signal.SIGTERM)
        try:
            self.child.wait(self.args.stop_timeout)
        except subprocess.TimeoutExpired:
            self.child.kill()  # the starved gateway ignored SIGTERM, as the real one does
            self.child.wait()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, self._on_hup)
        self.launch()
        while True:
            if self.stopping:
                self.stop_child()
                return 0
            if self.restart_requested:
                self.restart_requested = False
                self.stop_child()
            assert self.child is not None
            if self.child.poll() is not None:
                time.sleep(self.args.relaunch_delay)
                if self.stopping:
                    return 0
                self.launch()
            time.sleep(0.05)

    def _on_term(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _on_hup(self, signum: int, frame: object) -> None:
        self.restart_requested = True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hermes_watchdog.sim.supervisor")
    p.add_argument("--state", required=True)
    p.add_argument("--stop-timeout", type=float, default=90.0, help="SIGTERM -> SIGKILL (TimeoutStopSec)")
    p.add_argument("--relaunch-delay", type=float, default=0.3, help="RestartSec / launchd throttle")
    p.add_argument("gateway_args", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    if args.gateway_args[:1] == ["--"]:
        args.gateway_args = args.gateway_args[1:]
    return Supervisor(args).run()


if __name__ == "__main__":
    sys.exit(main())
