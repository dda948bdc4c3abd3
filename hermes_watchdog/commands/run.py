"""``hermes-watchdog run``: build the config, take the lock, run the daemon until SIGTERM/SIGINT."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from hermes_watchdog import config, exitcodes
from hermes_watchdog.daemon.loop import Daemon
from hermes_watchdog.diagnosis import public_text
from hermes_watchdog.errors import UserError
from hermes_watchdog.record.events import EventLog

_HOW = {
    "auto": "with the gateway's service manager (launchd, systemd or s6) when it supervises the gateway, "
            "else SIGTERM and SIGKILL",
    "launchd": "with launchd (launchctl kickstart -k)",
    "systemd": "with systemd (systemctl restart)",
    "s6": "with s6 (s6-svc -r on the service that supervises the gateway)",
    "signal": "by SIGTERM, then SIGKILL: something else (a supervisor) must start the gateway again",
    "none": "never: alerts only",
}


def describe(cfg: config.Config) -> list[str]:
    """What ``run --check`` says it would do, one fact a line."""
    lines = []
    for home in cfg.homes:
        missing = "" if home.expanduser().is_dir() else " (it does not exist yet: the watchdog would wait for it)"
        lines.append(f"would watch {home}" + (" and every profile in it" if cfg.all_profiles else "") + missing)
    how = f"by running {shlex.join(cfg.restart_command)}" if cfg.restart_with == "command" \
        else _HOW[cfg.restart_with]
    lines.append(f"would restart {how}; at most {cfg.max_restarts} per {cfg.restart_window:g} s"
                 + (" (dry run: decide and record, never signal)" if cfg.dry_run else ""))
    lines.append(f"would act when a verdict holds for {cfg.window:g} s, sampling every {cfg.interval:g} s; "
                 f"incidents and state.json in {cfg.resolved_state_dir}")
    if cfg.window < cfg.loop_proof:
        # Issue 24: a short window lets the CPU rule fire before the stack proves the starvation; the restart
        # still gets the short grace once the loop's samples show it off its selector, but say so.
        lines.append(f"note: --window {cfg.window:g} s is shorter than --loop-proof {cfg.loop_proof:g} s: a spin may "
                     "be restarted on CPU and the state file before its stack proves it; the SIGKILL still comes "
                     f"after --starved-grace {cfg.starved_grace:g} s once the loop is seen off its selector")
    return [public_text(line) for line in lines]


def main(config_file: Path | None, flags: dict[str, Any], check: bool = False) -> int:
    for key in ("restart_command", "notify_command"):
        if isinstance(flags.get(key), str):
            # Split like a shell would, but never run through one.
            try:
                flags[key] = shlex.split(flags[key])
            except ValueError as exc:
                raise UserError(f"--{key.replace('_', '-')}: {exc}") from None
    cfg = config.build(config_file, flags)
    if check:
        sys.stdout.write("configuration OK\n" + "".join(f"{line}\n" for line in describe(cfg)))
        return exitcodes.OK
    missing = [h for h in cfg.homes if not h.expanduser().is_dir()]
    if cfg.once and missing:
        # A cron run cannot wait for the home to appear; saying so beats a silent "all fine".
        raise UserError(f"no Hermes home at {missing[0]} (is Hermes installed for this user? "
                        "pass --hermes-home)")
    daemon = Daemon(cfg, EventLog())
    daemon.install_signal_handlers()
    return daemon.run()
