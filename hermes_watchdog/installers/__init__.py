"""Installing the watchdog itself as a service, one module per manager: launchd agents on macOS,
systemd user units on Linux. Each renders a template shipped in hermes_watchdog/templates/."""

from __future__ import annotations

import shutil
import sys

from hermes_watchdog.errors import UserError
from hermes_watchdog.installers.base import Installer, Spec
from hermes_watchdog.installers.launchd import LaunchdInstaller
from hermes_watchdog.installers.systemd import SystemdInstaller

__all__ = ["Installer", "Spec", "select"]


def select(manager: str, spec: Spec) -> Installer:
    if manager == "auto":
        if sys.platform == "darwin":
            manager = "launchd"
        elif shutil.which("systemctl"):
            manager = "systemd"
        else:
            raise UserError("no supported service manager found (launchd on macOS, systemd on Linux); "
                            "use --manager, or run `hermes-watchdog run` under your own supervisor")
    if manager == "launchd":
        return LaunchdInstaller(spec)
    if manager == "systemd":
        return SystemdInstaller(spec)
    raise UserError(f"--manager must be auto, launchd or systemd, not {manager!r}")
