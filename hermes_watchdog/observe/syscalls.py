"""Syscall evidence for the event loop, where ptrace is allowed (Linux): watch the loop thread's system
calls for a moment and say whether it entered its selector. Exact where the stack samples are statistics:
a loop that turns every 50 ms makes a selector call every 50 ms, however short the visit; a thread that
ran half a second on a CPU with no selector call did not turn in that half second.

The watching is done by observe/syscall_tracer.py in its own process (why, and what it does to the
gateway, is said there). This side proves the process first, as before any signal, and reads its answer.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from importlib import resources

from hermes_watchdog.facts.identity import Identity
from hermes_watchdog.facts.readings import SYSCALL_RUN_FOR, SyscallProbe
from hermes_watchdog.observe import processes

SECONDS = 5.0  # wall time one watch lasts at most (a thread given a small share of a busy machine)
NOT_PERMITTED = "ptrace not permitted"  # the tracer's word for EPERM
_SOURCE: str | None = None


def _source() -> str:
    global _SOURCE
    if _SOURCE is None:
        tracer = resources.files("hermes_watchdog.observe").joinpath("syscall_tracer.py")
        _SOURCE = tracer.read_text()  # safe: this package's own file, not a user's
    return _SOURCE


def lasting(why: str) -> bool:
    """A reason no watch could be made that asking again soon will not change."""
    return why.startswith(NOT_PERMITTED) or why == available()


def available() -> str | None:
    """None if this platform can watch system calls; else why not."""
    return None if sys.platform.startswith("linux") else "syscall evidence needs Linux's ptrace"


def probe(ident: Identity, tid: int, seconds: float = SECONDS, run_for: float = SYSCALL_RUN_FOR,
          want: int = 1, count_for: float | None = None) -> tuple[SyscallProbe | None, str]:
    """Watch thread ``tid`` of the gateway ``ident`` until it enters its selector ``want`` times, runs
    ``run_for`` seconds on a CPU without it, ``count_for`` seconds pass after its first selector call, or
    ``seconds`` pass. (None, why) when it cannot be watched."""
    why = available()
    if why:
        return None, why
    same, why = processes.same_process(ident)
    if not same:
        return None, why
    if ident.start_ticks is None:
        return None, f"PID {ident.pid}'s start time is unknown: not proven"
    argv = [sys.executable, "-I", "-S", "-c", _source(), str(ident.pid), str(tid), str(ident.start_ticks),
            str(seconds), str(run_for), str(want), str(seconds if count_for is None else count_for)]
    try:
        # The tracer ends within ``seconds`` and a CHECK; killed past that, the kernel detaches the thread.
        out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 10.0, env={},
                             check=False)
    except subprocess.TimeoutExpired:
        return None, "the syscall tracer did not answer in time"
    except OSError as exc:
        return None, f"cannot start the syscall tracer: {exc.strerror or exc}"
    try:
        got = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None, f"the syscall tracer failed: {(out.stderr.strip().splitlines() or ['no output'])[-1][:200]}"
    if not got.get("ok"):
        return None, str(got.get("why", "the syscall tracer failed"))
    return SyscallProbe(time.monotonic(), tid, float(got["seconds"]),
                        None if got.get("ran") is None else float(got["ran"]), int(got["selector"]),
                        int(got["other"]), got.get("first_selector")), str(got.get("end", ""))
