"""Python stacks as taken from a gateway: frames, threads, one dump, and the analysis of a capture
(observe/ takes them; judge/ and record/ read them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Frame:
    function: str
    file: str
    line: int

    def to_dict(self) -> dict[str, Any]:
        return {"function": self.function, "file": self.file, "line": self.line}

    def __str__(self) -> str:
        return f"{self.function} ({self.file}:{self.line})"


@dataclass(frozen=True)
class ThreadStack:
    os_tid: int | None
    name: str | None
    active: bool
    owns_gil: bool
    frames: tuple[Frame, ...]  # innermost first, as py-spy gives them


@dataclass(frozen=True)
class Dump:
    threads: tuple[ThreadStack, ...]


@dataclass(frozen=True)
class StackAnalysis:
    captured: bool
    reason: str | None = None  # why not captured
    hint: str | None = None
    dumps: int = 0
    hot_tid: int | None = None
    hot_name: str | None = None
    matched_by: str | None = None  # how the hot thread was chosen
    frames: tuple[Frame, ...] = ()  # the hot thread's most telling stack, innermost first
    innermost_in: int = 0  # dumps whose hot thread's innermost frame is the shown stack's
    functions_seen: tuple[str, ...] = ()  # every function seen on the hot thread across dumps
    all_threads: tuple[ThreadStack, ...] = field(default_factory=tuple)  # from the chosen dump
    method: str | None = None  # how the stack was taken: py-spy, hook, sigabrt, none

    def to_dict(self) -> dict[str, Any]:
        return {
            "captured": self.captured,
            "method": self.method,
            "reason": self.reason,
            "hint": self.hint,
            "dumps": self.dumps,
            "innermost_in_dumps": self.innermost_in,
            "hot_thread": {
                "tid": self.hot_tid,
                "name": self.hot_name,
                "matched_by": self.matched_by,
                "frames": [f.to_dict() for f in self.frames],
            },
            "functions_seen": list(self.functions_seen),
        }
