"""``hermes-watchdog run``: build the config, take the lock, run the daemon until SIGTERM/SIGINT."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from hermes_watchdog import config
from hermes_watchdog.daemon import Daemon
from hermes_watchdog.errors import UserError
from hermes_watchdog.events import EventLog


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
        return 0
    daemon = Daemon(cfg, EventLog())
    daemon.install_signal_handlers()
    return daemon.run()
