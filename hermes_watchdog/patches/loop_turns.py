"""The loop-turn counter: the gateway's main event loop counts its own turns into a tiny shared file.

Installed beside the stack hook as ``hermes_watchdog_loop_turns.py`` and armed by it (``hook.arm``), only in a
Hermes gateway process. Standard library only; it never imports Hermes and never raises into the gateway.

How it counts. ``BaseEventLoop.run_forever`` is wrapped once, at arm time. When a loop starts running in the
thread that armed the hook (the gateway's main thread, where Hermes runs ``asyncio.run``), that loop instance
gets its own ``_run_once`` (an instance attribute shadowing the class method) that bumps the counter and
stamps ``time.monotonic()`` before each iteration. ``_run_once`` is one Python method on every CPython 3.11+
and the same for the epoll and kqueue selectors, so one wrapper serves every platform. A loop in any other
thread is not touched at all (no cost, and no helper loop can veto a stuck main loop). A loop that sits idle
in its selector with no timer would not turn, so the counted loop also keeps a timer every ``PERIOD``
seconds that stamps ``time.monotonic()``: a healthy loop turns at least once a ``PERIOD``, and since any turn
after a due timer runs it, no new stamp means no turn since stamp + PERIOD (the watchdog's lower bound on
the stall; its own reads of an unchanged count give another).

Cost per turn (bench/turn_cost.py): one extra Python call, an int increment and one store into an ``mmap``'d
page through a memoryview: no syscall, no file write. The clock is read once a second by the timer, not per
turn: on a VM without a vDSO clock (the reference Firecracker VM: 0.5 µs per ``time.monotonic()``) it is a
system call. The only allocation is the new int of the count, which CPython takes from and returns to its
small-object allocator at once.

The file, ``HERMES_HOME/state/hermes-watchdog-loop-turns.bin``, 64 bytes, created 0600 with O_NOFOLLOW (and
O_EXCL, as a temp file renamed into place, so an old reader's descriptor never sees a new gateway's
counts). Little-endian, 8-byte fields:

    0  magic b"HWDTURN1"      8  pid        16 start time (as Hermes records it, -1 unknown)
    24 uid                   32 loop thread (native id, 0 until a loop runs)   40 PERIOD (double)
    48 turns (unsigned)      56 monotonic time of the timer's newest turn (double, once a PERIOD)

The watchdog trusts it as it trusts the hook's marker: a regular file, owned by the gateway's user, 0600,
naming that very process (pid and start time).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import threading
import time
import weakref

FILE = "hermes-watchdog-loop-turns.bin"
MAGIC = b"HWDTURN1"
SIZE = 64
HEADER = struct.Struct("<8sqqqqd")  # magic, pid, start time, uid, loop thread, period
TURNS_AT, STAMP_AT = 48, 56  # byte offsets of the hot fields
PERIOD = 1.0  # seconds: the counted loop turns at least this often, idle or not
ENV_SWITCH = "HERMES_WATCHDOG_TURNS"  # 0/off: no counter (the hook itself stays armed)

_state: dict[str, object] = {}
_loops: weakref.WeakSet[object] = weakref.WeakSet()  # counted loops, forgotten in a forked child


def arm(home: str, start_time: int | None, thread: int) -> str:
    """Create the counter file and wrap ``run_forever``; returns what was done. Never raises."""
    try:
        if "result" in _state:
            return str(_state["result"])
        if os.environ.get(ENV_SWITCH, "1").strip().lower() in {"0", "false", "no", "off"}:
            return _done("off: HERMES_WATCHDOG_TURNS=0")
        import asyncio.base_events as base_events

        mm = _create(home, start_time)
        q, d = memoryview(mm).cast("Q"), memoryview(mm).cast("d")
        _state.update(mm=mm, q=q, d=d, pid=os.getpid(), thread=thread)
        _wrap(base_events.BaseEventLoop)
        with contextlib.suppress(Exception):
            os.register_at_fork(after_in_child=_forget)
        return _done(f"counting the main event loop's turns in {os.path.join(home, 'state', FILE)}")
    except Exception as exc:
        return _done(f"failed: {exc!r}")


def _create(home: str, start_time: int | None) -> mmap.mmap:
    folder = os.path.join(home, "state")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # a leftover of a process with our pid: never written through
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        header = HEADER.pack(MAGIC, os.getpid(), -1 if start_time is None else start_time, os.getuid(), 0, PERIOD)
        os.write(fd, header + bytes(SIZE - len(header)))
        mm = mmap.mmap(fd, SIZE)  # shared: the watchdog's pread sees every store
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return mm


def _wrap(cls: type) -> None:
    original = cls.run_forever  # type: ignore[attr-defined]
    if getattr(original, "_hermes_watchdog_turns", False):
        return

    def run_forever(self):  # type: ignore[no-untyped-def]
        counted = _count(self)
        try:
            return original(self)
        finally:
            if counted is not None:
                _uncount(self, counted)

    run_forever._hermes_watchdog_turns = True  # type: ignore[attr-defined]
    run_forever.__wrapped__ = original  # type: ignore[attr-defined]
    run_forever.__doc__ = original.__doc__
    cls.run_forever = run_forever  # type: ignore[attr-defined]


def _count(loop: object) -> object | None:
    """Give ``loop`` a counting ``_run_once`` if it runs in the armed thread of the armed process."""
    try:
        if threading.get_ident() != _state.get("thread") or os.getpid() != _state.get("pid"):
            return None
        if "_run_once" in vars(loop):
            return None  # already counted (a nested or re-entered run)
        q, d = _state["q"], _state["d"]
        original = loop._run_once  # type: ignore[attr-defined]
        n = q[6]  # type: ignore[index]

        def _run_once() -> None:
            nonlocal n
            n += 1
            q[6] = n  # type: ignore[index]
            original()

        q[4] = threading.get_native_id()  # type: ignore[index]
        d[7] = time.monotonic()  # type: ignore[index]
        loop._run_once = _run_once  # type: ignore[attr-defined]
        _loops.add(loop)
        return _keepalive(loop, d)
    except Exception:
        return None


def _keepalive(loop: object, d: memoryview) -> list[object]:
    """A timer every PERIOD that stamps the time: an idle loop still turns, so a still counter means a loop
    that did not, and the stamp bounds when it last did."""
    holder: list[object] = []
    now = time.monotonic

    def tick() -> None:
        with contextlib.suppress(Exception):
            d[7] = now()
            holder[:] = [loop.call_later(PERIOD, tick)]  # type: ignore[attr-defined]

    holder.append(loop.call_later(PERIOD, tick))  # type: ignore[attr-defined]
    return holder


def _uncount(loop: object, holder: object) -> None:
    with contextlib.suppress(Exception):
        for h in holder:  # type: ignore[attr-defined]
            h.cancel()
    with contextlib.suppress(Exception):
        del loop._run_once  # type: ignore[attr-defined]
    with contextlib.suppress(Exception):
        _loops.discard(loop)


def _forget() -> None:
    """In a forked child: stop counting into the parent's file."""
    _state["pid"] = None
    for loop in list(_loops):
        with contextlib.suppress(Exception):
            del loop._run_once  # type: ignore[attr-defined]
    _loops.clear()


def _done(result: str) -> str:
    _state["result"] = result
    return result


def status() -> dict[str, object]:
    return {k: v for k, v in _state.items() if k == "result"}
