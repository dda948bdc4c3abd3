"""The simulated gateway alive but deaf, and its legitimate look-alikes. Standard library only; every
socket is on 127.0.0.1.

  --nofile N                 lower the gateway's own soft RLIMIT_NOFILE to N (as ``ulimit -n N`` would)
  --leak-fds-per-s N         open HERMES_HOME/state.db N times a second and never close it (upstream #83512:
                             750 ``state.db`` descriptors after 41.7 h); stops quietly at EMFILE
  --half-close N             connect N sockets (one a second) to a loopback server that closes at once, and
                             never read or close them: each sits in CLOSE_WAIT (upstream #109521, #70830)
  --hold-connections N       legitimate: N long-lived loopback connections, each pinging its echo server
                             every 10 s
  --connection-bursts N      legitimate: every second N short-lived loopback connections: a ping, an echo,
                             closed by both sides
  --hang-before-files        hang at start before any file is written (upstream #67009: a hang loading the
                             config with HERMES_HOME set, before any heartbeat); SIGTERM ends it
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import socket
import socketserver
import threading
from pathlib import Path

log = logging.getLogger("gateway.platforms.discord")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nofile", type=int, default=0, help="soft RLIMIT_NOFILE of the gateway (0: inherited)")
    p.add_argument("--leak-fds-per-s", type=float, default=0.0, help="open state.db this often, never closed")
    p.add_argument("--half-close", type=int, default=0, help="sockets left in CLOSE_WAIT, one a second")
    p.add_argument("--hold-connections", type=int, default=0, help="healthy long-lived loopback connections")
    p.add_argument("--connection-bursts", type=int, default=0, help="short-lived loopback connections a second")
    p.add_argument("--hang-before-files", action="store_true", help="hang before writing any file")


def apply_limits(args: argparse.Namespace) -> None:
    """Before the gateway writes anything: its descriptor limit, or the hang before any file."""
    if args.nofile:
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, hard))
    if args.hang_before_files:
        threading.Event().wait()  # the main thread blocked for good; SIGTERM's default action ends it


class _Closer(socketserver.BaseRequestHandler):
    def handle(self) -> None:  # the peer that hangs up at once
        self.request.close()


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(OSError):
            while data := self.request.recv(64):
                self.request.sendall(data)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def _serve(handler: type[socketserver.BaseRequestHandler]) -> tuple[str, int]:
    srv = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, name=f"loopback-{handler.__name__.strip('_').lower()}",
                     daemon=True).start()
    return srv.server_address[0], srv.server_address[1]


def start(args: argparse.Namespace, home: Path) -> list[asyncio.Task[None]]:
    tasks = []
    if args.leak_fds_per_s:
        tasks.append(asyncio.create_task(_leak_fds(home, args.leak_fds_per_s)))
    if args.half_close:
        tasks.append(asyncio.create_task(_half_close(_serve(_Closer), args.half_close)))
    if args.hold_connections or args.connection_bursts:
        echo = _serve(_Echo)
        if args.hold_connections:
            tasks.append(asyncio.create_task(_hold(echo, args.hold_connections)))
        if args.connection_bursts:
            tasks.append(asyncio.create_task(_bursts(echo, args.connection_bursts)))
    return tasks


async def _leak_fds(home: Path, per_s: float) -> None:
    kept: list[int] = []
    path = home / "state.db"
    while True:
        try:
            kept.append(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        except OSError as exc:
            log.warning("cannot open %s: %s (%d open)", path.name, exc.strerror, len(kept))
            await asyncio.sleep(1.0)
            continue
        await asyncio.sleep(1.0 / per_s)


async def _half_close(addr: tuple[str, int], n: int) -> None:
    kept: list[socket.socket] = []  # never read, never closed: the adapter that did not notice the peer left
    while len(kept) < n:
        with contextlib.suppress(OSError):
            kept.append(socket.create_connection(addr, timeout=5))
        await asyncio.sleep(1.0)
    await asyncio.Event().wait()


async def _ping(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"ping")
    await writer.drain()
    await reader.readexactly(4)


async def _hold(addr: tuple[str, int], n: int) -> None:
    conns = [await asyncio.open_connection(*addr) for _ in range(n)]
    while True:
        for reader, writer in conns:
            await _ping(reader, writer)
        await asyncio.sleep(10.0)


async def _bursts(addr: tuple[str, int], n: int) -> None:
    async def one() -> None:
        reader, writer = await asyncio.open_connection(*addr)
        try:
            await _ping(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    while True:
        await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
        await asyncio.sleep(1.0)
