"""systemd user units: ``systemctl --user restart --no-block <unit>``.

``--no-block`` because a starved gateway ignores SIGTERM, and a blocking restart would wait out the
unit's TimeoutStopSec (90 s or more); the daemon's own escalation SIGKILLs the old process after the
grace, which ends systemd's stop job early, and systemd then starts the unit again.
Units follow Hermes: hermes-gateway[-<suffix>].service, or the legacy hermes.service; a unit is taken
as the gateway's only when ``systemctl --user show -p MainPID --value <unit>`` names the gateway's PID.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from hermes_watchdog.act.managers.base import RestartResult, ServiceManager, Target, run_argv
from hermes_watchdog.act.managers.naming import suffixes

SYSTEMCTL_TIMEOUT = 30.0


def user_unit_dir() -> Path:
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg else Path.home() / ".config") / "systemd" / "user"


def unit_candidates(target: Target) -> list[str]:
    return unit_names(target.home)


def unit_names(home: Path) -> list[str]:
    """The units a gateway of ``home`` may run as, most likely first."""
    names = [f"hermes-gateway-{s}.service" if s else "hermes-gateway.service" for s in suffixes(home)]
    return [*names, "hermes.service"]


def main_pid(unit: str, stop: threading.Event | None = None) -> int | None:
    code, out = run_argv(["systemctl", "--user", "show", "-p", "MainPID", "--value", unit], SYSTEMCTL_TIMEOUT,
                         stop or threading.Event())
    if code != 0:
        return None
    try:
        return int(out.strip().splitlines()[-1]) or None
    except (ValueError, IndexError):
        return None


class SystemdManager(ServiceManager):
    name = "systemd"

    def __init__(self, unit: str) -> None:
        self.unit = unit

    @classmethod
    def for_target(cls, target: Target, confirm_pid: bool) -> SystemdManager | None:
        for unit in unit_candidates(target):
            if not (user_unit_dir() / unit).is_file():
                continue
            if not confirm_pid or main_pid(unit) == target.ident.pid:
                return cls(unit)
        return None

    def restart(self, target: Target, stop: threading.Event) -> RestartResult:
        pid = main_pid(self.unit, stop)
        if pid != target.ident.pid:
            return RestartResult(self.name, False, f"{self.unit} MainPID is {pid}, not the gateway's "
                                                   f"{target.ident.pid}: not restarting that unit",
                                 argv=["systemctl", "--user", "show", "-p", "MainPID", "--value", self.unit])
        argv = ["systemctl", "--user", "restart", "--no-block", self.unit]
        code, out = run_argv(argv, SYSTEMCTL_TIMEOUT, stop)
        return RestartResult(self.name, code == 0,
                             f"exit {code}" + (f": {out}" if out else "") if code is not None else out, argv=argv)

    def start(self, target: Target, stop: threading.Event) -> RestartResult:
        """``start`` of a unit whose gateway has exited: a no-op if systemd already started it again."""
        argv = ["systemctl", "--user", "start", "--no-block", self.unit]
        code, out = run_argv(argv, SYSTEMCTL_TIMEOUT, stop)
        return RestartResult(self.name, code == 0,
                             f"exit {code}" + (f": {out}" if out else "") if code is not None else out, argv=argv)

    def cannot_start(self) -> str:
        return "" if (user_unit_dir() / self.unit).is_file() else f"no unit {user_unit_dir() / self.unit}"

    def describe(self) -> str:
        return f"systemd ({self.unit})"
