"""Service managers behind one interface, one module per manager (as psutil keeps one per platform).

``select`` picks the manager for a gateway: an explicit choice, or ``auto``: launchd on macOS where the
plist exists, systemd where the unit exists and its MainPID is the gateway, s6 where a service in a scan
directory supervises the gateway, else plain signals.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hermes_watchdog.act.managers import command, launchd, s6, signals, systemd
from hermes_watchdog.act.managers.base import NoRestart, RestartResult, ServiceManager, Target

__all__ = ["RestartResult", "ServiceManager", "Target", "select", "select_starter"]


def select(restart_with: str, target: Target, restart_command: tuple[str, ...] = (),
           command_timeout: float = 60.0, s6_scandirs: tuple[Path, ...] = ()) -> ServiceManager:
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
    if restart_with == "s6":
        return s6.S6Manager.for_target(target, s6_scandirs) or s6.S6Manager(None, s6.scandirs(s6_scandirs))
    # auto
    if sys.platform == "darwin":
        found = launchd.LaunchdManager.for_target(target)
        if found:
            return found
    found_unit = systemd.SystemdManager.for_target(target, confirm_pid=True)
    if found_unit:
        return found_unit
    found_s6 = s6.S6Manager.for_target(target, s6_scandirs)
    if found_s6:
        return found_s6
    return signals.SignalManager()


def select_starter(restart_with: str, target: Target, restart_command: tuple[str, ...] = (),
                   command_timeout: float = 60.0, s6_scandirs: tuple[Path, ...] = ()) -> ServiceManager:
    """The manager that would start a gateway that has exited (``target.ident`` is gone, so ``auto`` cannot
    confirm a unit by its MainPID: a unit or agent of this home's name is taken as the one that ran it)."""
    if restart_with != "auto":
        return select(restart_with, target, restart_command, command_timeout, s6_scandirs)
    if sys.platform == "darwin":
        found = launchd.LaunchdManager.for_target(target)
        if found:
            return found
    found_unit = systemd.SystemdManager.for_target(target, confirm_pid=False)
    if found_unit:
        return found_unit
    return s6.S6Manager.for_target(target, s6_scandirs) or signals.SignalManager()
