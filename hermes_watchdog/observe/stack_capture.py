"""Taking a gateway's Python stacks, by whichever method works here: one interface, several methods.

- ``py-spy``: reads the process's memory from outside (ptrace). Needs root on macOS (task_for_pid) and
  CAP_SYS_PTRACE / a permissive ptrace policy on Linux.
- ``faulthandler``: the hook the fix pack arms inside the gateway (patches/hook.py) dumps every thread when
  it gets SIGUSR2. Used only when its marker proves a non-chaining handler armed in that very process (pid,
  start time, ``"chain": false``: observe/hook_marker.py), since on Hermes 0.14-0.19 an unhandled SIGUSR2
  terminates the gateway and on 0.19.1-0.21.3 Hermes' own chaining handler does: no proof, no signal.
- ``none``: no stack, with the reason.

``auto`` tries py-spy, then the hook, then says why neither worked. Every method yields the same ``Dump``s
(innermost frame first) for the same analysis, and the analysis records which method was used.
"""

from __future__ import annotations

import os
import stat
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from hermes_watchdog import safepath
from hermes_watchdog.observe import faulthandler_text, pyspy
from hermes_watchdog.observe.hook_marker import signal_marker
from hermes_watchdog.observe.processes import Identity
from hermes_watchdog.observe.signals import guarded_signal
from hermes_watchdog.observe.stacks import Dump, StackAnalysis, analyse, render_text
from hermes_watchdog.observe.statefile import open_regular, read_fd

METHODS = ("auto", "py-spy", "faulthandler", "none")
MAX_DUMP_BYTES = 1024 * 1024
TRUNCATE_OVER = 4 * 1024 * 1024  # our own stacks file is emptied before a capture once it grows past this
WRITE_WAIT = 3.0  # seconds for the gateway to write its dump after the signal

Take = Callable[[float], tuple[Dump | None, str | None, str | None]]


def sample(take: Take, count: int, spread: float, time_limit: float,
           stop: threading.Event | None) -> tuple[list[Dump], str | None, str | None]:
    """``count`` dumps spread over about ``spread`` seconds, all within ``time_limit``; a failure before
    the first dump ends it (permission, a gone process and the like do not change on retry)."""
    deadline = time.monotonic() + time_limit
    got: list[Dump] = []
    reason, hint = None, None
    gap = spread / max(1, count - 1)
    for i in range(count):
        remaining = deadline - time.monotonic()
        if remaining <= 0.2 or (stop is not None and stop.is_set()):
            break
        dump, why, how = take(remaining)
        if dump is not None:
            got.append(dump)
        else:
            reason, hint = why, how
            if not got:
                break
        if i < count - 1:
            pause = min(gap, max(0.0, deadline - time.monotonic()))
            if stop is not None:
                stop.wait(pause)
            else:
                time.sleep(pause)
    if not got:
        return [], reason or "no dump within the time limit", hint
    return got, None, None


class StackMethod(ABC):
    name: str

    @abstractmethod
    def dumps(self, ident: Identity, home: Path | None, count: int = 5, spread: float = 1.0,
              time_limit: float = 10.0, stop: threading.Event | None = None
              ) -> tuple[list[Dump], str | None, str | None]:
        """Raw samples: (dumps, why none, hint). For incidents, diagnose and the loop sampler."""

    def used(self) -> str:
        return self.name

    def capture(self, ident: Identity, home: Path | None, hot_tid: int | None, *, count: int = 5,
                spread: float = 1.0, time_limit: float = 10.0,
                stop: threading.Event | None = None) -> StackAnalysis:
        got, reason, hint = self.dumps(ident, home, count, spread, time_limit, stop)
        if not got:
            return StackAnalysis(captured=False, reason=reason, hint=hint, method=self.used())
        return replace(analyse(got, hot_tid), method=self.used())


class NoStack(StackMethod):
    name = "none"

    def __init__(self, reason: str = "stacks are off (--stack-with none)") -> None:
        self.reason = reason

    def dumps(self, ident: Identity, home: Path | None, count: int = 5, spread: float = 1.0,
              time_limit: float = 10.0, stop: threading.Event | None = None
              ) -> tuple[list[Dump], str | None, str | None]:
        return [], self.reason, None


class PySpy(StackMethod):
    name = "py-spy"

    def dumps(self, ident: Identity, home: Path | None, count: int = 5, spread: float = 1.0,
              time_limit: float = 10.0, stop: threading.Event | None = None
              ) -> tuple[list[Dump], str | None, str | None]:
        binary = pyspy.find_py_spy()
        if binary is None:
            where = os.environ.get(pyspy.ENV_OVERRIDE) or "beside the Python interpreter or on PATH"
            return [], f"py-spy not found ({where})", "pip install py-spy (it is a dependency of hermes-watchdog)"
        return sample(lambda remaining: pyspy.dump_once(binary, ident.pid, remaining), count, spread,
                      time_limit, stop)


def _size(path: Path) -> int | None:
    try:
        st = safepath.lstat(path)
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _truncate_ours(path: Path, uid: int | None) -> None:
    """Empty our own stacks file (the gateway appends with O_APPEND, so its next dump starts at 0). Opened
    through safepath (a folder on the way swapped for the user's link cannot redirect it), and truncated
    only when the descriptor itself is a regular file of the gateway's user with one name: never a file of
    root's the user linked or hard-linked into the way."""
    try:
        fd = safepath.open_file(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and (uid is None or st.st_uid == uid):
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)


class FaultHandlerHook(StackMethod):
    name = "faulthandler"

    def take_one(self, ident: Identity, home: Path, remaining: float) -> tuple[Dump | None, str | None, str | None]:
        # The marker is proven again before every signal: the gateway may have restarted (or unregistered) since.
        marker, why = signal_marker(ident, home)
        if marker is None:
            return None, why, None
        before = _size(marker.file)
        if before is None:
            return None, f"{marker.file} disappeared", None
        sent, text = guarded_signal(ident, marker.signal, home)
        if not sent:
            return None, text, None
        end = time.monotonic() + min(WRITE_WAIT, max(0.2, remaining))
        last, stable = before, 0
        while time.monotonic() < end:
            time.sleep(0.02)
            now = _size(marker.file)
            if now is None:
                return None, f"{marker.file} disappeared", None
            if now > before and now == last:
                stable += 1
                if stable >= 2:  # the handler writes it all at once: two quiet polls and it is done
                    break
            else:
                stable = 0
            last = now
        if last <= before:
            return None, (f"the gateway wrote no stack to {marker.file} within {WRITE_WAIT:g} s of "
                          f"{marker.signal.name}"), None
        try:
            fd = open_regular(marker.file)
            try:
                text_read = read_fd(fd, MAX_DUMP_BYTES, before).decode(errors="replace")
            finally:
                os.close(fd)
        except OSError as exc:
            return None, f"cannot read {marker.file}: {exc.strerror or exc}", None
        main_tid = ident.pid if sys.platform.startswith("linux") else None  # Linux: the main thread's id is the pid
        got = faulthandler_text.parse(text_read, main_ident=marker.main_thread, main_tid=main_tid)
        if not got:
            return None, f"{marker.file} grew but holds no faulthandler dump", None
        return got[-1], None, None

    def dumps(self, ident: Identity, home: Path | None, count: int = 5, spread: float = 1.0,
              time_limit: float = 10.0, stop: threading.Event | None = None
              ) -> tuple[list[Dump], str | None, str | None]:
        marker, why = signal_marker(ident, home)
        if marker is None or home is None:
            return [], f"faulthandler hook: {why}", HOOK_HINT
        if marker.owner == "hermes-watchdog" and (_size(marker.file) or 0) > TRUNCATE_OVER:
            _truncate_ours(marker.file, ident.uid if ident.uid is not None else os.getuid())
        return sample(lambda remaining: self.take_one(ident, home, remaining), count, spread, time_limit, stop)


HOOK_HINT = ("`hermes-watchdog patch install` puts the stack hook into the gateway's Python; restart the gateway "
             "so it loads")


class Auto(StackMethod):
    """py-spy where it can attach, else the hook where it is armed in that very process, else none."""

    name = "auto"

    def __init__(self) -> None:
        self._used = "none"

    def used(self) -> str:
        return self._used

    def dumps(self, ident: Identity, home: Path | None, count: int = 5, spread: float = 1.0,
              time_limit: float = 10.0, stop: threading.Event | None = None
              ) -> tuple[list[Dump], str | None, str | None]:
        started = time.monotonic()
        got, spy_reason, spy_hint = PySpy().dumps(ident, home, count, spread, time_limit, stop)
        if got:
            self._used = "py-spy"
            return got, None, None
        if "exited" in (spy_reason or ""):
            self._used = "none"
            return [], spy_reason, None
        marker, why = signal_marker(ident, home)
        if marker is None:
            self._used = "none"
            return [], f"py-spy: {spy_reason}; faulthandler hook: {why}", spy_hint or HOOK_HINT
        left = max(1.0, time_limit - (time.monotonic() - started))
        got, reason, hint = FaultHandlerHook().dumps(ident, home, count, spread, left, stop)
        self._used = "faulthandler" if got else "none"
        if got:
            return got, None, None
        return [], f"py-spy: {spy_reason}; faulthandler hook: {reason}", spy_hint or hint


def choose(method_name: str, ident: Identity | None = None, home: Path | None = None) -> StackMethod:
    """The method ``--stack-with`` names (``auto`` decides per capture, see ``Auto``)."""
    if method_name == "py-spy":
        return PySpy()
    if method_name == "faulthandler":
        return FaultHandlerHook()
    if method_name == "none":
        return NoStack()
    if method_name == "auto":
        return Auto()
    raise ValueError(f"unknown stack method {method_name!r} (one of {', '.join(METHODS)})")


def render(analysis: StackAnalysis) -> str:
    """stack.txt: how the stack was taken, then the analysis."""
    head = f"method: {analysis.method}\n" if analysis.method else ""
    return head + render_text(analysis)
