"""Event lines on stderr: start, gateway found or lost, verdict change, alert, restart, verify, give-up,
recovery. Coloured by rich on a terminal; plain, timestamped lines under a service manager."""

from __future__ import annotations

import sys
import threading
from collections import deque
from datetime import UTC, datetime
from typing import TextIO

from rich.console import Console
from rich.text import Text

from hermes_watchdog.record.redact import redact
from hermes_watchdog.record.safetext import one_line

_STYLE = {"ALERT": "bold red", "RESTART": "bold magenta", "KILL": "bold magenta", "VERIFY": "cyan",
          "RECOVERED": "bold green", "GIVE-UP": "bold red", "FOUND": "green", "LOST": "yellow",
          "GONE": "yellow", "VERDICT": "white", "START": "bold", "STOP": "bold", "WARN": "yellow",
          "DRY-RUN": "magenta", "INCIDENT": "white", "RESUME": "cyan", "INFO": "white", "WAIT": "cyan"}


class EventLog:
    def __init__(self, stream: TextIO | None = None, rich: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.rich = self.stream.isatty() if rich is None else rich
        self._console = Console(file=self.stream, highlight=False) if self.rich else None
        self._lock = threading.Lock()
        self.lines: deque[str] = deque(maxlen=500)  # recent events (the demo's summary); bounded for months of running

    def emit(self, kind: str, message: str, where: str | None = None) -> None:
        # Names and paths come from disk: a newline or ESC in them must not forge a line or reach the terminal.
        message = one_line(redact(message))
        now = datetime.now(UTC)
        prefix = f"[{one_line(where)}] " if where else ""
        plain = f"{now.isoformat(timespec='seconds').replace('+00:00', 'Z')} hermes-watchdog {kind} {prefix}{message}"
        with self._lock:
            self.lines.append(f"{kind} {prefix}{message}")
            if self._console is not None:
                text = Text(now.astimezone().strftime("%H:%M:%S "), style="dim")
                text.append(f"{kind:<9}", style=_STYLE.get(kind, "white"))
                text.append(f" {prefix}{message}")
                self._console.print(text)
            else:
                self.stream.write(plain + "\n")
                self.stream.flush()
