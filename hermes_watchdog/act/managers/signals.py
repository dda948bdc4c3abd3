"""Plain signals: SIGTERM now, SIGKILL after the grace (done by the daemon's escalation). The relaunch
is left to whatever supervises the gateway (launchd KeepAlive, systemd Restart=always)."""

from __future__ import annotations

import signal
import threading

from hermes_watchdog.act.managers.base import RestartResult, ServiceManager, Target
from hermes_watchdog.observe.signals import guarded_signal


class SignalManager(ServiceManager):
    name = "signal"

    def restart(self, target: Target, stop: threading.Event) -> RestartResult:
        ok, detail = guarded_signal(target.ident, signal.SIGTERM, target.home)
        return RestartResult(self.name, ok, detail, signals=["SIGTERM"] if ok else [])

    def cannot_start(self) -> str:
        return ("--restart-with signal can stop a gateway but not start one (--restart-with command, launchd, "
                "systemd or s6 can)")

    def describe(self) -> str:
        return "signal (SIGTERM, then SIGKILL after the grace; the relaunch is left to the supervisor)"
