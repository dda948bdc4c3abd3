"""The simulated gateway's loop behaviours besides the QQ adapter, each a task or thread the mode starts:
Hermes 0.19's heartbeat, a spin with every platform connected, legitimate bursts, blocking calls on the
loop thread, a leak, the loop-tick socket of git releases, and a worker thread's legitimate CPU.

Standard library only, like the rest of the simulated gateway. The function names are what the stack
shows: no rule of the watchdog knows them, on purpose (``_reconcile_presence``, ``_settle_accounts``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

from hermes_watchdog.sim.gateway_files import StateFile, utc_now


async def _heartbeat(home: Path, period: float, fail_after: float | None = None) -> None:
    """Hermes >= 0.19's loop heartbeat: rewritten atomically from a task on the event loop."""
    path = home / "state" / "gateway.heartbeat"
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    while True:
        try:
            if fail_after is not None and time.time() - started >= fail_after:
                raise OSError(28, "No space left on device")  # as a full disk: the loop itself is fine
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".heartbeat.")
            with os.fdopen(fd, "w") as fh:
                json.dump({"pid": os.getpid(), "updated_at": utc_now(),
                           "monotonic": time.monotonic(), "start_time": started}, fh)
            os.replace(tmp, path)
        except OSError as exc:
            logging.getLogger("gateway.shutdown_watchdog").debug("Failed to write gateway loop heartbeat: %s", exc)
        await asyncio.sleep(period)


async def _reconcile_presence(home: Path, after: float, marker: str | None) -> None:
    """A coroutine that never yields once started: the loop never gets back to its selector."""
    await asyncio.sleep(after)
    record_event(home, "spin")
    if marker:
        Path(marker).touch()
    roster: dict[int, int] = {}
    while True:
        for i in range(1000):
            roster[i] = (roster.get(i, 0) * 31 + i) % 1000003


async def _compact_history(busy_for: float, idle_for: float) -> None:
    """Legitimate bursts of work on the loop: busy, then idle in the selector, again and again."""
    while True:
        until = time.monotonic() + busy_for
        x = 0
        while time.monotonic() < until:
            x = (x * 31 + 7) % 1000003
        await asyncio.sleep(idle_for)


async def _render_digest(slice_ms: float) -> None:
    """Legitimate, and the hardest for sampling: compute ``slice_ms`` ms, yield to the loop, again,
    forever. The loop turns every slice and serves everything else between; it visits its selector for
    microseconds per turn, which sparse stack samples can miss for seconds."""
    step = slice_ms / 1000.0
    x = 0
    while True:
        until = time.perf_counter() + step
        while time.perf_counter() < until:
            x = (x * 31 + 7) % 1000003
        await asyncio.sleep(0)


def arm_hook(home: Path) -> str:
    """Arm the fix pack's hook in this process as the ``.pth`` would in a gateway: the stack thread and the
    loop-turn counter. The command line it is given is a gateway's; the home is this sim's."""
    from hermes_watchdog.patches import hook

    os.environ["HERMES_HOME"] = str(home)
    return hook.arm(["python", "-m", "hermes_cli.main", "gateway", "run"])


def _flush_ledger_sync() -> None:
    time.sleep(10**6)  # a synchronous call on the loop thread, off the CPU: nothing else on the loop runs


async def _settle_accounts(home: Path, after: float, marker: str | None) -> None:
    await asyncio.sleep(after)
    record_event(home, "frozen")
    if marker:
        Path(marker).touch()
    _flush_ledger_sync()


async def _leak(mb_per_s: float) -> None:
    kept: list[bytearray] = []
    while True:
        chunk = bytearray(int(mb_per_s * 1024 * 1024 / 4))
        chunk[::4096] = b"x" * len(chunk[::4096])  # touch every page so it counts in RSS
        kept.append(chunk)
        await asyncio.sleep(0.25)


async def _serve_loop_tick(home: Path) -> asyncio.AbstractServer:
    path = home / "state" / f"gateway.loop-tick.{os.getpid()}.sock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"1")
        with contextlib.suppress(OSError):
            await writer.drain()
        writer.close()

    return await asyncio.start_unix_server(answer, sock=bound_unix_socket(path))


def bound_unix_socket(path: Path) -> socket.socket:
    """A listening AF_UNIX socket at ``path``, however long the path: a sun_path holds 108 bytes, and a test's
    temporary home can be longer, so on Linux it is bound through /proc/self/fd of its folder."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if len(os.fsencode(path)) < 100 or not os.path.isdir("/proc/self/fd"):
        sock.bind(str(path))
    else:
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            sock.bind(f"/proc/self/fd/{folder}/{path.name}")
        finally:
            os.close(folder)
    sock.listen(16)
    return sock


async def _freeze_later(home: Path, after: float, marker: str | None) -> None:
    await asyncio.sleep(after)
    record_event(home, "frozen")
    if marker:
        Path(marker).touch()
    time.sleep(10**6)  # a blocking call on the loop thread: nothing else on the loop runs again


def upstream_exit_later(home: Path, state: StateFile, after: float, marker: str | None) -> threading.Thread:
    """Hermes' in-process loop watchdog (git releases 0.19.1+, gateway/shutdown_watchdog.py), as it ends a
    gateway whose loop missed its probes: from its own thread, ``degraded`` + ``exit_reason`` +
    ``restart_requested`` in the state file, the lifecycle ledger stamped ``exited`` with code 75, then exit
    75 at once (no SIGTERM handler, no cleanup: the pid file stays behind) for the manager to relaunch it."""

    def run() -> None:
        time.sleep(after)
        record_event(home, "upstream-exit")
        if marker:
            Path(marker).touch()
        reason = "loop_liveness_watchdog"
        state.record["restart_requested"] = True
        state.write(gateway_state="degraded", exit_reason=reason)
        ledger = home / "state" / "gateway.lifecycle.json"
        ledger.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=ledger.parent, prefix=".lifecycle.")
        with os.fdopen(fd, "w") as fh:
            json.dump({"phase": "exited", "exit_code": 75, "exit_reason": reason, "pid": os.getpid(),
                       "updated_at": utc_now()}, fh)
        os.replace(tmp, ledger)
        logging.getLogger("gateway.shutdown_watchdog").error(
            "event loop missed 3 liveness probes; exiting 75 for the service manager to restart the gateway")
        logging.shutdown()
        os._exit(75)

    t = threading.Thread(target=run, name="loop-liveness-watchdog", daemon=True)
    t.start()
    return t


def record_event(home: Path, event: str) -> None:
    with open(home / "sim-events.jsonl", "a") as fh:
        fh.write(json.dumps({"event": event, "pid": os.getpid(), "at": time.time()}) + "\n")


def _burn(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():
        x = (x * 31 + 7) % 1000003  # legitimate-looking CPU work
