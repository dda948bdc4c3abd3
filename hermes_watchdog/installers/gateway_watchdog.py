"""``install --gateway-watchdog``: systemd's own loop watchdog on the gateway's unit, for releases that ping it.

Hermes 0.19.0 and later send ``WATCHDOG=1`` from a task on the event loop at half the unit's ``WatchdogSec``
(upstream gateway/systemd_notify.py), but only when the unit sets one (opt-in, #55018). A drop-in
``<unit>.d/hermes-watchdog-loop.conf`` sets it, so a loop that stops turning stops the pings and systemd
itself restarts the gateway: a second, independent loop witness that needs no watchdog process at all.

Refused, with the reason, where the running gateway's recognised release does not ping (0.14-0.18, or a
release not recognised): there ``WatchdogSec`` would kill a healthy gateway every interval. The unit's own
``Restart=`` is kept (Hermes' units say ``always``, which covers a watchdog timeout); only a unit with no
restart at all gets ``Restart=on-watchdog``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from hermes_watchdog.act.managers.base import Target, run_argv
from hermes_watchdog.act.managers.systemd import SYSTEMCTL_TIMEOUT, SystemdManager, user_unit_dir
from hermes_watchdog.errors import UserError
from hermes_watchdog.judge.families import UNKNOWN, Recognised, recognise_clues
from hermes_watchdog.observe import discovery, heartbeat, processes, release

DROPIN = "hermes-watchdog-loop.conf"
WATCHDOG_SEC = 120  # the loop must turn at least this often; Hermes pings every half of it


@dataclass(frozen=True)
class Plan:
    unit: str
    path: Path
    text: str
    recognised: Recognised


def refusal(rec: Recognised) -> str | None:
    """Why this release must not get a WatchdogSec (None: it pings from its loop). Pure."""
    if rec.family is UNKNOWN or not rec.family.systemd_watchdog:
        return (f"the gateway's release ({rec.family.name}, recognised from: {rec.source}) does not send "
                "WATCHDOG=1 from its event loop: a WatchdogSec would kill a healthy gateway; not installed")
    return None


def render(unit: str, restart: str | None, rec: Recognised, seconds: int = WATCHDOG_SEC) -> str:
    lines = [f"# Written by `hermes-watchdog install --gateway-watchdog` for {unit}: the gateway's event loop",
             f"# sends WATCHDOG=1 every half WatchdogSec (release {rec.family.name}); a loop that stops turning",
             "# stops the pings, and systemd restarts the gateway. `uninstall --gateway-watchdog` removes it.",
             "[Service]", "NotifyAccess=main", f"WatchdogSec={seconds}"]
    if restart in (None, "", "no"):
        lines.append("Restart=on-watchdog")
    return "\n".join(lines) + "\n"


def _unit_restart(unit: str) -> str | None:
    code, out = run_argv(["systemctl", "--user", "show", "-p", "Restart", "--value", unit], SYSTEMCTL_TIMEOUT,
                         threading.Event())
    return out.strip() if code == 0 else None


def plan(home: Path) -> Plan:
    """The drop-in for the gateway of ``home``, or UserError saying why not."""
    found = discovery.find_gateway(home)
    if found.ident is None:
        raise UserError(f"no running gateway of {home} to recognise the release of ({found.how}): start it first")
    ident = found.ident
    beat = heartbeat.read(home)
    keys = beat.keys if beat is not None and beat.pid == ident.pid and not beat.problem else None
    rec = recognise_clues(release.read(home, ident, processes.environ(ident.pid), keys))
    why = refusal(rec)
    if why:
        raise UserError(why)
    manager = SystemdManager.for_target(Target(home, discovery.profile_of(home), ident), confirm_pid=True)
    if manager is None:
        raise UserError(f"the gateway PID {ident.pid} does not run under a systemd user unit here "
                        "(hermes-gateway[-<profile>].service whose MainPID it is)")
    path = user_unit_dir() / f"{manager.unit}.d" / DROPIN
    return Plan(manager.unit, path, render(manager.unit, _unit_restart(manager.unit), rec), rec)
