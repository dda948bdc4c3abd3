"""Taking a gateway's Python stacks, by whichever method works here: one interface, several methods.

- ``py-spy``: reads the process's memory from outside (ptrace). Needs root on macOS (task_for_pid) and
  CAP_SYS_PTRACE / a permissive ptrace policy on Linux.
- ``hook``: the stack thread the fix pack's hook starts inside the gateway (patches/stack_thread.py) answers
  a request on its socket with every thread's stack, taken with the GIL held. No signal: a faulthandler dump
  on SIGUSR2 runs in a signal handler and can crash a busy gateway (cpython #116008), and on Hermes 0.14-0.19
  an unhandled SIGUSR2 terminates it. Used only when the hook's marker names that very process and the
  process answering on the socket is it (observe/hook_marker.py, observe/hook_stacks.py). ``faulthandler``,
  the name this method had while it used SIGUSR2, is still accepted for it.
- ``none``: no stack, with the reason.

``auto`` tries py-spy, then the hook, then says why neither worked. Every method yields the same ``Dump``s
(innermost frame first) for the same analysis, and the analysis records which method was used.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from hermes_watchdog.facts.identity import Identity
from hermes_watchdog.facts.stacks import Dump, StackAnalysis
from hermes_watchdog.observe import faulthandler_text, hook_stacks, pyspy
from hermes_watchdog.observe.hook_marker import Marker, read_marker
from hermes_watchdog.observe.stacks import analyse, render_text

METHODS = ("auto", "py-spy", "hook", "none")
ALIASES = {"faulthandler": "hook"}  # the hook's method was called so while it used SIGUSR2
ANSWER_WAIT = 3.0  # seconds for the gateway's stack thread to answer one request

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


def hook_marker(ident: Identity, home: Path | None) -> tuple[Marker | None, str]:
    """The hook's marker if it names this very process and gives a stack thread to ask; else why not."""
    marker, why = read_marker(ident, home)
    if marker is None:
        return None, why
    if marker.stacks is None:
        return None, marker.stacks_why
    return marker, why


class HookStacks(StackMethod):
    name = "hook"

    def take_one(self, ident: Identity, home: Path, remaining: float) -> tuple[Dump | None, str | None, str | None]:
        # The marker is proven again before every request (pid and start time: the gateway may have restarted),
        # and the socket's peer must be that pid (hook_stacks.request).
        marker, why = hook_marker(ident, home)
        if marker is None:
            return None, why, None
        text, why = hook_stacks.request(ident, marker, min(ANSWER_WAIT, max(0.2, remaining)))
        if text is None:
            return None, why, None
        main_tid = ident.pid if sys.platform.startswith("linux") else None  # Linux: the main thread's id is the pid
        got = faulthandler_text.parse(text, main_ident=marker.main_thread, main_tid=main_tid)
        if not got:
            return None, "the gateway's stack thread answered with no stack", None
        return got[-1], None, None

    def dumps(self, ident: Identity, home: Path | None, count: int = 5, spread: float = 1.0,
              time_limit: float = 10.0, stop: threading.Event | None = None
              ) -> tuple[list[Dump], str | None, str | None]:
        marker, why = hook_marker(ident, home)
        if marker is None or home is None:
            return [], f"hook: {why}", HOOK_HINT
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
        marker, why = hook_marker(ident, home)
        if marker is None:
            self._used = "none"
            return [], f"py-spy: {spy_reason}; hook: {why}", spy_hint or HOOK_HINT
        left = max(1.0, time_limit - (time.monotonic() - started))
        got, reason, hint = HookStacks().dumps(ident, home, count, spread, left, stop)
        self._used = "hook" if got else "none"
        if got:
            return got, None, None
        return [], f"py-spy: {spy_reason}; {reason}", spy_hint or hint


def choose(method_name: str, ident: Identity | None = None, home: Path | None = None) -> StackMethod:
    """The method ``--stack-with`` names (``auto`` decides per capture, see ``Auto``)."""
    method_name = ALIASES.get(method_name, method_name)
    if method_name == "py-spy":
        return PySpy()
    if method_name == "hook":
        return HookStacks()
    if method_name == "none":
        return NoStack()
    if method_name == "auto":
        return Auto()
    raise ValueError(f"unknown stack method {method_name!r} (one of {', '.join(METHODS)})")


def render(analysis: StackAnalysis) -> str:
    """stack.txt: how the stack was taken, then the analysis."""
    head = f"method: {analysis.method}\n" if analysis.method else ""
    return head + render_text(analysis)
