"""launchd (macOS): ``launchctl kickstart -k gui/<uid>/<label>`` kills and restarts the agent.

Labels follow Hermes: ``ai.hermes.gateway`` for ~/.hermes, ``ai.hermes.gateway-<suffix>`` otherwise
(suffix as in services/naming.py), confirmed by ``~/Library/LaunchAgents/<label>.plist``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from hermes_watchdog.act.managers.base import RestartResult, ServiceManager, Target, run_argv
from hermes_watchdog.act.managers.naming import suffixes

LAUNCHCTL_TIMEOUT = 30.0


def plist_path(label: str) -> Path:
    return Path.home() / "Library" / "LaunchAgents" / f"{label}.plist"


def labels_for(target: Target) -> list[str]:
    return [f"ai.hermes.gateway-{s}" if s else "ai.hermes.gateway" for s in suffixes(target.home)]


def label_for(target: Target) -> str:
    return labels_for(target)[0]


class LaunchdManager(ServiceManager):
    name = "launchd"

    def __init__(self, label: str) -> None:
        self.label = label

    @classmethod
    def for_target(cls, target: Target) -> LaunchdManager | None:
        for label in labels_for(target):
            if plist_path(label).is_file():
                return cls(label)
        return None

    def restart(self, target: Target, stop: threading.Event) -> RestartResult:
        if not plist_path(self.label).is_file():
            return RestartResult(self.name, False, f"no launchd agent: {plist_path(self.label)} does not exist")
        argv = ["launchctl", "kickstart", "-k", f"gui/{os.getuid()}/{self.label}"]
        code, out = run_argv(argv, LAUNCHCTL_TIMEOUT, stop)
        ok = code == 0
        return RestartResult(self.name, ok, f"exit {code}" + (f": {out}" if out else "") if code is not None else out,
                             argv=argv)

    def start(self, target: Target, stop: threading.Event) -> RestartResult:
        """``kickstart`` without ``-k``: starts the agent when it is not running (an exit 75 launchd queued
        inside its ThrottleInterval, upstream #94540), leaves it alone when it is."""
        if not plist_path(self.label).is_file():
            return RestartResult(self.name, False, f"no launchd agent: {plist_path(self.label)} does not exist")
        argv = ["launchctl", "kickstart", f"gui/{os.getuid()}/{self.label}"]
        code, out = run_argv(argv, LAUNCHCTL_TIMEOUT, stop)
        return RestartResult(self.name, code == 0,
                             f"exit {code}" + (f": {out}" if out else "") if code is not None else out, argv=argv)

    def cannot_start(self) -> str:
        return "" if plist_path(self.label).is_file() else f"no launchd agent at {plist_path(self.label)}"

    def describe(self) -> str:
        return f"launchd ({self.label})"
