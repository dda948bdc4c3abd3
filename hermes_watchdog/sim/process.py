"""The simulated gateway's process, as the watchdog sees it: its home in its own environment (as a real
gateway's), and a record of the signals it receives (so tests prove that none came). Standard library only."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

RECORDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def record_signals(path: Path) -> None:
    """Python-level handlers that write each arrival down. They run on the main thread between bytecodes, so
    also while the loop spins or sleeps frozen; the C handler still wakes the loop through its wakeup fd, so
    SIGTERM and SIGINT keep their loop.add_signal_handler behaviour (ignored while the loop is starved)."""

    def record(signum: int, frame: object) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, f"{signal.Signals(signum).name}\n".encode())
        finally:
            os.close(fd)

    for sig in RECORDED_SIGNALS:
        signal.signal(sig, record)


def serve_home_in_environment(home: Path) -> None:
    """A real gateway finds its home in its own environment, and the watchdog proves a gateway by it: a sim
    given --hermes-home without HERMES_HOME set to it re-executes itself (same PID) with it set, so it is
    proven the way a real one is rather than taken for the gateway of ~/.hermes."""
    wanted = str(home.expanduser().absolute())
    if os.environ.get("HERMES_HOME") == wanted:
        return
    os.execve(sys.executable, [sys.executable, "-m", "hermes_watchdog.sim.gateway", *sys.argv[1:]],
              {**os.environ, "HERMES_HOME": wanted})
