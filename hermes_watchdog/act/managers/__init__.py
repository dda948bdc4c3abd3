"""Service managers behind one interface, one module per manager (as psutil keeps one per platform).

``select`` picks the manager for a gateway: an explicit choice, or ``auto``: launchd on macOS where the
plist exists, systemd where the unit exists and its MainPID is the gateway, else plain signals.
"""

from __future__ import annotations

import sys

from hermes_watchdog.act.managers import command, launchd, signals, systemd
from hermes_watchdog.act.managers.base import NoRestart, RestartResult, ServiceManager, Target

__all__ = ["RestartResult", "ServiceManager", "Target", "select"]


def select(restart_with: str, target: Target, restart_command: tuple[str, ...] = (),
           command_timeout: float = 60.0) -> ServiceManager:
    if restart_with == "none":
        return NoRestart()
    if restart_with == "signal":
        return signals.SignalManager()
    if restart_with == "command":
        return command.CommandManager(restart_command, command_timeout)
    if restart_with == "launchd":
        return launchd.LaunchdManager.for_target(target) or launchd.LaunchdManager(launchd.label_for(target))
    if restart_with == "systemd":
        return systemd.SystemdManager.for_target(target, confirm_pid=False) or \
            systemd.SystemdManager(systemd.unit_candidates(target)[0])
    # auto
    if sys.platform == "darwin":
        found = launchd.LaunchdManager.for_target(target)
        if found:
            return found
    found_unit = systemd.SystemdManager.for_target(target, confirm_pid=True)
    if found_unit:
        return found_unit
    return signals.SignalManager()
