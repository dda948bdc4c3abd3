"""systemd's notify protocol (sd_notify), stdlib only: READY=1 once started, WATCHDOG=1 every half
WatchdogSec, STOPPING=1 on the way out. A no-op when NOTIFY_SOCKET is not set (launchd, a terminal)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping


class Notifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        addr = env.get("NOTIFY_SOCKET", "")
        # An abstract-namespace socket is written with a leading '@'.
        self.addr = ("\0" + addr[1:]) if addr.startswith("@") else addr
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        ours = not pid or pid == str(os.getpid())
        self.period = int(usec) / 1e6 / 2 if usec.isdigit() and int(usec) > 0 and ours else None
        self.next_ping = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.addr)

    def send(self, message: str) -> bool:
        if not self.addr:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self.addr)
                sock.sendall(message.encode())
            return True
        except OSError:
            return False  # systemd gone or socket removed: nothing to tell

    def ready(self, status: str = "") -> None:
        self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))
        self.next_ping = time.monotonic() + (self.period or 0)

    def ping_if_due(self) -> None:
        if self.period is not None and time.monotonic() >= self.next_ping:
            self.send("WATCHDOG=1")
            self.next_ping = time.monotonic() + self.period

    def seconds_to_ping(self) -> float | None:
        return None if self.period is None else max(0.0, self.next_ping - time.monotonic())

    def stopping(self) -> None:
        self.send("STOPPING=1")
