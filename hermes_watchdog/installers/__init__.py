"""Installing the watchdog itself as a service, one module per manager: launchd agents on macOS,
systemd user units on Linux, s6 services in containers. Each renders a template shipped in
hermes_watchdog/templates/ (s6: a run script written out in installers/s6.py)."""

from __future__ import annotations

import shutil
import sys

from hermes_watchdog.act.managers.s6 import SCANDIRS, scandir_is_live
from hermes_watchdog.errors import UserError
from hermes_watchdog.installers.base import Installer, Spec
from hermes_watchdog.installers.launchd import LaunchdInstaller
from hermes_watchdog.installers.s6 import S6Installer
from hermes_watchdog.installers.systemd import SystemdInstaller

__all__ = ["Installer", "Spec", "select"]


def select(manager: str, spec: Spec) -> Installer:
    if manager == "auto":
        if sys.platform == "darwin":
            manager = "launchd"
        elif spec.s6_scandir is not None or any(scandir_is_live(d) for d in SCANDIRS):
            manager = "s6"  # a container under s6-overlay (it may still ship a systemctl)
        elif shutil.which("systemctl"):
            manager = "systemd"
        else:
            raise UserError("no supported service manager found (launchd on macOS, systemd on Linux); "
                            "use --manager, or run `hermes-watchdog run` under your own supervisor")
    if manager == "launchd":
        return LaunchdInstaller(spec)
    if manager == "systemd":
        return SystemdInstaller(spec)
    if manager == "s6":
        return S6Installer(spec)
    raise UserError(f"--manager must be auto, launchd, systemd or s6, not {manager!r}")
