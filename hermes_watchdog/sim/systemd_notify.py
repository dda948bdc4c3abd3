"""``WATCHDOG=1`` to systemd from the event loop, as Hermes 0.19.0 and later do when their unit sets
``WatchdogSec`` (upstream gateway/systemd_notify.py: a task on the loop pings at half the interval, so a loop
that stops turning stops pinging and systemd restarts the gateway). Standard library only."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket


def _send(message: bytes) -> None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(message, address)


async def watchdog_pings() -> None:
    """Ping every half WatchdogSec from the loop; nothing when the unit sets no watchdog for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    owner = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (owner and owner != str(os.getpid())):
        return
    half = int(usec) / 2e6
    while True:
        with contextlib.suppress(OSError):  # a manager gone away: nothing to tell
            _send(b"WATCHDOG=1")
        await asyncio.sleep(half)
