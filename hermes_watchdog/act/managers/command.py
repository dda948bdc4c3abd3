"""A restart command from the config: an argv list, run without a shell, with a time limit."""

from __future__ import annotations

import threading

from hermes_watchdog.act.managers.base import RestartResult, ServiceManager, Target, run_argv


class CommandManager(ServiceManager):
    name = "command"

    def __init__(self, argv: tuple[str, ...], timeout: float) -> None:
        self.argv = list(argv)
        self.timeout = timeout

    def restart(self, target: Target, stop: threading.Event) -> RestartResult:
        code, out = run_argv(self.argv, self.timeout, stop)
        ok = code == 0
        detail = f"exit {code}" if code is not None else out
        if out and code is not None:
            detail += f": {out[-300:]}"
        return RestartResult(self.name, ok, detail, argv=self.argv)

    def start(self, target: Target, stop: threading.Event) -> RestartResult:
        # The same command: with no gateway left to stop, a restart command starts one.
        return self.restart(target, stop)

    def cannot_start(self) -> str:
        return "" if self.argv else "no --restart-command is set"

    def describe(self) -> str:
        return f"command {self.argv}"
