"""The simulated gateway's agent workers: Hermes 0.19.0 runs each agent turn in its own thread pool
(``ThreadPoolExecutor(max_workers=10, thread_name_prefix="hermes-gateway")``, gateway/run.py) and counts
the sessions with a running agent in ``gateway_state.json``'s ``active_agents``, claimed before the turn
waits for a thread. Standard library only; every socket is on 127.0.0.1.

  --stuck-agents K     K agent turns, each waiting for good on a model API that never answers (a loopback
                       server that accepts and stays silent): with K over the pool's 10 threads, every
                       worker is busy and K - 10 turns queue (upstream #75548, #75802)
  --agent-traffic R    legitimate: R agent turns a second, each 0.2-1.5 s long: the pool never fills
  --hold-gil-after S   after S s a worker thread runs a catastrophic regex that holds the GIL for good
                       (upstream #32079: a regex; #58576: 51 s stalls): the loop, runnable, never runs
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import random
import re
import socket
import threading
import time
from typing import Any

from hermes_watchdog.sim.gateway_files import StateFile

POOL_SIZE = 10  # as Hermes 0.19.0's gateway/run.py
POOL_PREFIX = "hermes-gateway"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stuck-agents", type=int, default=0, help="agent turns that wait for good on the model")
    p.add_argument("--agent-traffic", type=float, default=0.0, help="short agent turns a second (legitimate)")
    p.add_argument("--hold-gil-after", type=float, default=None, help="a worker holds the GIL for good after S s")


class _Agents:
    """The pool and the count Hermes writes: claimed before the turn waits for a thread, released after."""

    def __init__(self, state: StateFile) -> None:
        self.state = state
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix=POOL_PREFIX)
        self.active = 0

    def _persist(self, delta: int) -> None:
        self.active += delta
        self.state.record["active_agents"] = self.active
        self.state.write()

    async def turn(self, fn: Any, *args: Any) -> None:
        self._persist(+1)
        try:
            await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)
        finally:
            self._persist(-1)


def _silent_model() -> tuple[str, int]:
    """A model API that accepts and never answers."""
    srv = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            with contextlib.suppress(OSError):
                held.append(srv.accept()[0])

    threading.Thread(target=accept, name="loopback-silent-model", daemon=True).start()
    host, port = srv.getsockname()[:2]
    return host, port


def _run_conversation(addr: tuple[str, int]) -> None:
    """An agent turn waiting on its model call: blocked in recv, off the CPU, out of the pool's idle wait."""
    with socket.create_connection(addr) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        s.recv(1)


def _short_turn(seconds: float) -> None:
    time.sleep(seconds)


def _match_mentions(text: str) -> bool:
    # Catastrophic backtracking: 2^n steps inside one C call that never lets the GIL go.
    return re.fullmatch(r"(a+)+b", text) is not None


def start(args: argparse.Namespace, state: StateFile) -> list[asyncio.Task[Any]]:
    tasks: list[asyncio.Task[Any]] = []
    if not (args.stuck_agents or args.agent_traffic or args.hold_gil_after is not None):
        return tasks
    agents = _Agents(state)
    if args.stuck_agents:
        model = _silent_model()
        tasks.extend(asyncio.create_task(agents.turn(_run_conversation, model)) for _ in range(args.stuck_agents))
    if args.agent_traffic:
        tasks.append(asyncio.create_task(_traffic(agents, args.agent_traffic)))
    if args.hold_gil_after is not None:
        tasks.append(asyncio.create_task(_gil_later(agents, args.hold_gil_after)))
    return tasks


async def _traffic(agents: _Agents, per_s: float) -> None:
    rng = random.Random(7)
    running: set[asyncio.Task[None]] = set()
    while True:
        t = asyncio.create_task(agents.turn(_short_turn, rng.uniform(0.2, 1.5)))
        running.add(t)
        t.add_done_callback(running.discard)
        await asyncio.sleep(1.0 / per_s)


async def _gil_later(agents: _Agents, after: float) -> None:
    await agents.turn(_short_turn, 0.1)  # a worker thread already there, as in a gateway that has served
    await asyncio.sleep(after)
    await agents.turn(_match_mentions, "a" * 64)
