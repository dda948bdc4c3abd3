"""Test-only hooks loaded into the REAL Hermes gateway process (never into Hermes's files) by the
``sitecustomize.py`` that tests/realhermes/gateway_harness.py puts on the gateway's PYTHONPATH.

At start-up, with no action from the test:
- points the QQ adapter's endpoints (``TOKEN_URL``, ``API_BASE``, module globals of
  ``gateway.platforms.qqbot.adapter``) at the loopback fake server on ``HERMES_TEST_QQ_PORT``, by an import
  hook that sets them right after the module is executed;
- remembers the event loop run on the main thread (seen as ``run_forever`` sets it running) and, in the
  gateway process only, starts a daemon thread that polls ``HERMES_HOME/test-inject/`` for trigger files.

Triggers (the test creates an empty file; the hook answers with ``<name>.ack``, JSON):
- ``block``: schedules ``injected_blocking_call`` on the gateway's loop: a synchronous call that holds the
  loop thread with the CPU idle until ``release`` (or 600 s). Its ack is written from the loop thread.
- ``release``: ends the blocking call.
- ``hold-gil``: runs ``injected_gil_holding_call`` in a thread of the gateway's own agent pool
  (``GatewayRunner._get_executor()``: 0.19.0's ``hermes-gateway`` threads): one C call (libc ``sleep`` through
  ``ctypes.PyDLL``, which keeps the GIL) that holds the GIL for ``_GIL_SECONDS``, CPU idle, as a C extension
  or a catastrophic regex does (upstream #32079, #58576); the loop, runnable, never runs meanwhile.
- ``saturate-workers``: 12 session slots claimed on the loop as Hermes claims them before a turn (so
  ``active_agents`` says 12), and 12 ``injected_model_wait`` calls into that same pool (10 threads): each
  waits (released by ``release``, or after 600 s) as an agent turn on a model API that never answers; 10
  run, 2 queue (upstream #75548, #75802).
- ``leak-state-db``: from now on a thread opens Hermes' own ``hermes_state.SessionDB()`` (``state.db`` and its
  WAL files) ten times a second and never closes one, as upstream #83512 (750 ``state.db`` descriptors after
  41.7 h); it stops quietly at EMFILE.
- ``fail-heartbeat``: from now on every heartbeat write of Hermes >= 0.19 (``gateway.shutdown_watchdog``
  writes ``state/gateway.heartbeat`` through its module global ``atomic_json_write``) raises
  ``OSError(ENOSPC)``, as on a full disk, while the loop runs on. ``"patched": false`` where the version has
  no such writer.

Network: an audit hook refuses every connection and name lookup that is not loopback (OSError
ENETUNREACH, as on a machine without a route) and records each refusal in
``HERMES_HOME/test-inject/network-refused.jsonl``, so a test can show the gateway needed nothing else.

Standard library only; every failure here is swallowed so the hooks can never be what breaks the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib.abc
import importlib.machinery
import json
import os
import sys
import threading
import time
from typing import Any, ClassVar

_ADAPTER = "gateway.platforms.qqbot.adapter"
_POLL_SECONDS = 0.1
_BLOCK_LIMIT_SECONDS = 600.0

_loop: list[asyncio.AbstractEventLoop] = []
_release = threading.Event()
_poller_started = threading.Event()


def _inject_dir() -> str | None:
    home = os.environ.get("HERMES_HOME")
    return os.path.join(home, "test-inject") if home else None


def _ack(name: str, **fields: Any) -> None:
    d = _inject_dir()
    if not d:
        return
    body = {"pid": os.getpid(), "thread": threading.current_thread().name,
            "native_id": threading.get_native_id(), "time": time.time(), **fields}
    tmp = os.path.join(d, f".{name}.ack.tmp")
    with open(tmp, "w") as fh:
        json.dump(body, fh)
    os.replace(tmp, os.path.join(d, f"{name}.ack"))


def injected_blocking_call() -> None:
    """Holds the event loop thread in a synchronous call, CPU idle: a stand-in for sync SQLite or a slow
    fsync on the loop. Short sleeps keep this function the innermost Python frame in every stack dump."""
    _ack("block", loop_thread=threading.current_thread() is threading.main_thread())
    deadline = time.monotonic() + _BLOCK_LIMIT_SECONDS
    while not _release.is_set() and time.monotonic() < deadline:
        time.sleep(0.2)


def _failing_atomic_json_write(*args: Any, **kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _fail_heartbeat() -> None:
    mod = sys.modules.get("gateway.shutdown_watchdog")
    patched = mod is not None and hasattr(mod, "atomic_json_write")
    if patched:
        mod.atomic_json_write = _failing_atomic_json_write  # type: ignore[union-attr]
    _ack("fail-heartbeat", patched=patched)


def _block() -> None:
    loop = _loop[-1] if _loop else None
    if loop is None or not loop.is_running():
        _ack("block", error="no running main-thread loop")
        return
    loop.call_soon_threadsafe(injected_blocking_call)


def _release_block() -> None:
    _release.set()
    _ack("release")


_LOOPBACK = {"127.0.0.1", "::1", "localhost", "", None}
_NET_EVENTS = {"socket.connect", "socket.getaddrinfo", "socket.sendto"}


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event not in _NET_EVENTS:
        return
    if event == "socket.getaddrinfo":
        host = args[0]
    else:
        address = args[1] if len(args) > 1 else None
        if not isinstance(address, tuple):
            return  # AF_UNIX and the like: local by nature
        host = address[0]
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if host in _LOOPBACK or (isinstance(host, str) and host.startswith("127.")):
        return
    d = _inject_dir()
    if d:
        with contextlib.suppress(OSError):
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "network-refused.jsonl"), "a") as fh:
                fh.write(json.dumps({"pid": os.getpid(), "event": event, "host": str(host)}) + "\n")
    raise OSError(errno.ENETUNREACH, f"test harness: only 127.0.0.1 may be contacted, not {host}")


_GIL_SECONDS = 240
_WORKER_TURNS = 12


def _runner() -> Any:
    import gc

    return next((o for o in gc.get_objects() if type(o).__name__ == "GatewayRunner"), None)


def injected_gil_holding_call() -> None:
    import ctypes

    ctypes.PyDLL(None).sleep(_GIL_SECONDS)  # PyDLL: the GIL stays held for the whole C call


def injected_model_wait() -> None:
    _release.wait(_BLOCK_LIMIT_SECONDS)


def _pool_submit(name: str, fn: Any, times: int) -> None:
    runner = _runner()
    get = getattr(runner, "_get_executor", None)
    if get is None:
        _ack(name, error="no GatewayRunner with its own executor in this release")
        return
    pool = get()
    _ack(name, pool=getattr(pool, "_thread_name_prefix", None), max_workers=getattr(pool, "_max_workers", None),
         submitted=times)
    for _ in range(times):
        pool.submit(fn)


_leaked: list[Any] = []


def _leak_state_db() -> None:
    import hermes_state  # Hermes' own session store

    def leak() -> None:
        while True:
            try:
                _leaked.append(hermes_state.SessionDB())
            except Exception:  # EMFILE, as a gateway out of descriptors: keep what is open, try again later
                time.sleep(1.0)
                continue
            time.sleep(0.1)

    threading.Thread(target=leak, name="test-inject-leak", daemon=True).start()
    _ack("leak-state-db", db=str(getattr(hermes_state, "DEFAULT_DB_PATH", "")))


def _hold_gil() -> None:
    _pool_submit("hold-gil", injected_gil_holding_call, 1)


def _claim_sessions(runner: Any, n: int) -> None:
    """As Hermes claims a session slot before a turn waits for a worker (gateway/run.py: ``_running_agents``
    then ``_persist_active_agents``): gateway_state.json counts the turns in ``active_agents``."""
    run = sys.modules.get("gateway.run")
    sentinel = getattr(run, "_AGENT_PENDING_SENTINEL", object())
    for i in range(n):
        runner._running_agents[f"test-inject:stuck-turn-{i}"] = sentinel
        runner._running_agents_ts[f"test-inject:stuck-turn-{i}"] = time.time()
    runner._persist_active_agents()


def _saturate_workers() -> None:
    runner, loop = _runner(), _loop[-1] if _loop else None
    if runner is not None and loop is not None and hasattr(runner, "_persist_active_agents"):
        loop.call_soon_threadsafe(_claim_sessions, runner, _WORKER_TURNS)
    _pool_submit("saturate-workers", injected_model_wait, _WORKER_TURNS)


_TRIGGERS = {"block": _block, "release": _release_block, "fail-heartbeat": _fail_heartbeat, "hold-gil": _hold_gil,
             "saturate-workers": _saturate_workers, "leak-state-db": _leak_state_db}


def _poll() -> None:
    d = _inject_dir()
    if not d:
        return
    os.makedirs(d, exist_ok=True)
    while True:
        for name, action in _TRIGGERS.items():
            path = os.path.join(d, name)
            if os.path.exists(path):
                try:
                    os.unlink(path)
                    action()
                except Exception as exc:  # a test hook must never take the gateway down
                    with contextlib.suppress(OSError):
                        _ack(name, error=repr(exc))
        time.sleep(_POLL_SECONDS)


def _is_gateway_process() -> bool:
    argv = sys.argv
    return "gateway" in argv and "run" in argv[argv.index("gateway"):]


_orig_set_running_loop = asyncio.events._set_running_loop


def _set_running_loop(loop: asyncio.AbstractEventLoop | None) -> None:
    # run_forever calls events._set_running_loop(self) on entry: wrapping it (not run_forever) leaves no
    # frame of ours in the loop thread's stack.
    _orig_set_running_loop(loop)
    if loop is not None and threading.current_thread() is threading.main_thread():
        _loop.append(loop)
        del _loop[:-1]
        if _is_gateway_process() and not _poller_started.is_set():
            _poller_started.set()
            threading.Thread(target=_poll, name="test-inject-poller", daemon=True).start()


def _point_at_fake(module: Any) -> None:
    port = os.environ.get("HERMES_TEST_QQ_PORT")
    if port:
        module.TOKEN_URL = f"http://127.0.0.1:{port}/app/getAppAccessToken"
        module.API_BASE = f"http://127.0.0.1:{port}"


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs a function on a module right after it is executed, without touching its file."""

    hooks: ClassVar[dict[str, Any]] = {_ADAPTER: _point_at_fake}
    asking: ClassVar[set[str]] = set()

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        hook = self.hooks.get(name)
        if hook is None or name in self.asking:
            return None  # not ours, or asked back by a finder we are asking (the fix pack's asks every finder)
        # The spec the other finders give, not PathFinder's: installed first (sitecustomize runs after the
        # .pth files), this finder would otherwise hide the fix pack's own finder and the gateway would run
        # unfixed under a fix pack, as no real gateway does.
        spec = None
        self.asking.add(name)
        try:
            for finder in sys.meta_path:
                if finder is not self and hasattr(finder, "find_spec"):
                    spec = finder.find_spec(name, path, target)
                    if spec is not None:
                        break
        finally:
            self.asking.discard(name)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module: Any) -> None:
            original(module)
            hook(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install() -> None:
    sys.addaudithook(_audit)
    asyncio.events._set_running_loop = _set_running_loop
    sys.meta_path.insert(0, _AfterImport())
