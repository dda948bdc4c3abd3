"""The tracer that watches one thread's system calls for a moment: did the event-loop thread enter its
selector (``epoll_wait``)? Run in its own short-lived process (observe/syscalls.py starts it with
``python -I -S -c <this file>``), never imported by the daemon: ptrace binds a tracee to the one thread
that attached it, and waiting for its stops with a deadline needs SIGCHLD blocked in a single-threaded
process (``sigtimedwait``). Standard library only, so it starts in milliseconds without site-packages.

What it does to the gateway, and why that is harmless: ``PTRACE_SEIZE`` of that one thread (no signal is
sent; the other threads are untouched), one ``PTRACE_INTERRUPT`` (a thread blocked in a system call sees
EINTR or a restart, which Python retries: PEP 475), then a stop at each system call the thread makes until
its first selector call or the deadline, and ``PTRACE_DETACH``. A thread that spins in Python makes no
system call and is never stopped. A signal that arrives meanwhile is passed on untouched. If this process
dies, the kernel detaches it. That is less than one blocking ``py-spy dump`` does (it stops every thread).

Argv: PID TID START_TICKS SECONDS RUN_SECONDS WANT COUNT_FOR. Prints one JSON object.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import sys
import time

PTRACE_SYSCALL, PTRACE_DETACH = 24, 17
PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_GET_SYSCALL_INFO = 0x4206, 0x4207, 0x420E
PTRACE_O_TRACESYSGOOD = 1
PTRACE_EVENT_STOP = 128
SYSCALL_INFO_ENTRY = 1
WALL = 0x40000000  # __WALL: wait for a traced thread that is not a process leader
CHECK = 0.1  # seconds between looks at the clock and the thread's CPU time
GROUP_STOPS = {signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU}

# The selector's calls, by the tracee's audit architecture: asyncio's selector on Linux is epoll.
# poll/select are not counted: a blocking socket call with a timeout (inside a callback) makes them too.
SELECTOR_CALLS = {
    0xC000003E: {232: "epoll_wait", 281: "epoll_pwait", 441: "epoll_pwait2"},  # x86_64
    0xC00000B7: {22: "epoll_pwait", 441: "epoll_pwait2"},  # aarch64
}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.restype = ctypes.c_long
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]


class _Info(ctypes.Structure):  # struct ptrace_syscall_info, the part read here
    _fields_ = [("op", ctypes.c_uint8), ("pad", ctypes.c_uint8 * 3), ("arch", ctypes.c_uint32),
                ("ip", ctypes.c_uint64), ("sp", ctypes.c_uint64), ("nr", ctypes.c_uint64),
                ("args", ctypes.c_uint64 * 6), ("rest", ctypes.c_uint64 * 2)]


def ptrace(req: int, tid: int, addr: int = 0, data: int = 0) -> int:
    r = _libc.ptrace(req, tid, ctypes.c_void_p(addr), ctypes.c_void_p(data))
    if r == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def start_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return int(raw[raw.rindex(b")") + 2:].split()[19])  # field 22: start time, in clock ticks


def ran_ns(pid: int, tid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
            return int(f.read().split()[0])  # nanoseconds on a CPU
    except (OSError, ValueError, IndexError):
        return None


def tracer_of(pid: int, tid: int) -> int:
    try:
        with open(f"/proc/{pid}/task/{tid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"TracerPid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def wait(tid: int, until: float, step: float = 0.1) -> int | None:
    """The tracee's next wait status, or None at ``until``. SIGCHLD (blocked) says a stop happened;
    the short step only bounds how late a missed notification is seen."""
    while True:
        got, status = os.waitpid(tid, os.WNOHANG | WALL)
        if got:
            return status
        left = until - time.monotonic()
        if left <= 0:
            return None
        signal.sigtimedwait({signal.SIGCHLD}, min(left, step))


class Trace:
    def __init__(self, pid: int, tid: int, ticks: int) -> None:
        self.pid, self.tid, self.ticks = pid, tid, ticks
        self.selector = self.other = 0
        self.names: dict[str, int] = {}
        self.first_selector: float | None = None
        self.info = _Info()

    def syscall_stop(self, started: float) -> None:
        size = ctypes.sizeof(self.info)
        ptrace(PTRACE_GET_SYSCALL_INFO, self.tid, size, ctypes.addressof(self.info))
        if self.info.op != SYSCALL_INFO_ENTRY:
            return
        name = SELECTOR_CALLS.get(self.info.arch, {}).get(self.info.nr)
        if name is None:
            self.other += 1
            return
        self.selector += 1
        self.names[name] = self.names.get(name, 0) + 1
        if self.first_selector is None:
            self.first_selector = time.monotonic() - started

    def run(self, seconds: float, run_for: float, want: int, count_for: float) -> dict[str, object]:
        """Follow the thread's calls until ``want`` selector calls, ``seconds`` of wall time, ``count_for``
        seconds once one was seen, or ``run_for`` seconds on a CPU without any; then detach."""
        tid = self.tid
        ptrace(PTRACE_SEIZE, tid, 0, PTRACE_O_TRACESYSGOOD)
        if start_ticks(self.pid) != self.ticks:  # reused between the check and the seize: let go at once
            ptrace(PTRACE_INTERRUPT, tid)
            if wait(tid, time.monotonic() + 5.0) is not None:
                ptrace(PTRACE_DETACH, tid)
            return {"ok": False, "why": f"PID {self.pid} is not the process proven (start time changed)"}
        ptrace(PTRACE_INTERRUPT, tid)
        started = time.monotonic()
        ran0 = ran_ns(self.pid, tid)
        until, check = started + seconds, started + CHECK
        while True:
            status = wait(tid, check)
            if status is not None and not os.WIFSTOPPED(status):
                return self.result("exited", started, ran0)  # the thread (or its process) ended
            inject = 0
            if status is not None:
                sig, event = os.WSTOPSIG(status), status >> 16
                if sig == signal.SIGTRAP | 0x80:
                    self.syscall_stop(started)
                    if self.selector >= want:
                        ptrace(PTRACE_DETACH, tid)  # at its entry: the call goes on as if never seen
                        return self.result("selector", started, ran0)
                elif event == PTRACE_EVENT_STOP:
                    if sig in GROUP_STOPS:  # stopped by job control: leave it stopped, as it should be
                        ptrace(PTRACE_DETACH, tid)
                        return self.result("group stop", started, ran0)
                else:
                    inject = sig  # a signal for the gateway: delivered as if nobody watched
            now = time.monotonic()
            if now >= check:
                check = now + CHECK
                ran = ran_ns(self.pid, tid)
                quiet = self.selector == 0 and ran is not None and ran0 is not None  # a run counts only silent
                end = ("ran" if quiet and ran - ran0 >= run_for * 1e9 else
                       "deadline" if now >= until else
                       "counted" if self.selector and now - started >= count_for else None)
                if end is not None:
                    return self.detach(status, inject, end, started, ran0)
            if status is not None:
                ptrace(PTRACE_SYSCALL, tid, 0, inject)

    def detach(self, status: int | None, inject: int, end: str, started: float, ran0: int | None) -> dict[str, object]:
        """Let the thread go: at once if it is in a stop now, else after stopping it (a stop is due at once)."""
        if status is None:
            ptrace(PTRACE_INTERRUPT, self.tid)
            status = wait(self.tid, time.monotonic() + 5.0)
            if status is None:
                return self.result("no stop", started, ran0)  # exiting detaches it (the kernel's rule)
            if not os.WIFSTOPPED(status):
                return self.result("exited", started, ran0)
            sig = os.WSTOPSIG(status)
            if status >> 16 == 0 and sig != signal.SIGTRAP | 0x80:
                inject = sig  # a signal on its way in: passed on by the detach
        ptrace(PTRACE_DETACH, self.tid, 0, inject)
        return self.result(end, started, ran0)

    def result(self, end: str, started: float, ran0: int | None) -> dict[str, object]:
        ran1 = ran_ns(self.pid, self.tid)
        ran = (ran1 - ran0) / 1e9 if ran0 is not None and ran1 is not None else None
        return {"ok": True, "end": end, "selector": self.selector, "other": self.other, "calls": self.names,
                "seconds": round(time.monotonic() - started, 4), "ran": ran,
                "first_selector": self.first_selector}


def main(argv: list[str]) -> dict[str, object]:
    pid, tid, ticks = int(argv[0]), int(argv[1]), int(argv[2])
    seconds, run_for, want = float(argv[3]), float(argv[4]), int(argv[5])
    count_for = float(argv[6]) if len(argv) > 6 else seconds
    if start_ticks(pid) != ticks:
        return {"ok": False, "why": f"PID {pid} is not the process proven (start time changed)"}
    if not os.path.exists(f"/proc/{pid}/task/{tid}"):
        return {"ok": False, "why": f"thread {tid} is not a thread of PID {pid}"}
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    trace = Trace(pid, tid, ticks)
    try:
        return trace.run(seconds, run_for, want, count_for)
    except OSError as exc:
        tracer = tracer_of(pid, tid)
        if exc.errno == errno.EPERM and tracer:  # py-spy taking a blocking dump: busy now, not refused
            return {"ok": False, "why": f"thread {tid} is being traced by PID {tracer} now", "errno": exc.errno}
        why = ("ptrace not permitted" if exc.errno == errno.EPERM else
               "the thread is gone" if exc.errno == errno.ESRCH else f"ptrace: {exc.strerror}")
        return {"ok": False, "why": why, "errno": exc.errno}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])), flush=True)
