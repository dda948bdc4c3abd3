"""py-spy dump parsing and the classification of the hot thread's stack. Pure: JSON in, analysis out."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

ADAPTER_READ_LOOP = "adapter-read-loop"
UNKNOWN = "unknown"

# A listen/read loop of a platform adapter: the QQBot one by name, or any similar loop under
# gateway/platforms/ (WeCom has the same unguarded read-loop shape).
_LISTEN_NAME = re.compile(r"(?:^|\.)_listen_loop$")
_READ_NAME = re.compile(r"(?:^|\.)_read_events$")
_PLATFORM_LOOP = re.compile(r"(?:^|\.)_?(?:listen|read|recv|receive|ws|poll)\w*(?:_loop|_events)$")


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
    classification: str = UNKNOWN
    hot_tid: int | None = None
    hot_name: str | None = None
    matched_by: str | None = None  # how the hot thread was chosen
    frames: tuple[Frame, ...] = ()  # the hot thread's most telling stack, innermost first
    loop_seen: int = 0  # dumps whose hot thread showed a listen/read loop
    functions_seen: tuple[str, ...] = ()  # every function seen on the hot thread across dumps
    all_threads: tuple[ThreadStack, ...] = field(default_factory=tuple)  # from the chosen dump
    method: str | None = None  # how the stack was taken: py-spy, faulthandler, sigabrt, none

    def to_dict(self) -> dict[str, Any]:
        return {
            "captured": self.captured,
            "method": self.method,
            "reason": self.reason,
            "hint": self.hint,
            "dumps": self.dumps,
            "classification": self.classification,
            "loop_seen_in_dumps": self.loop_seen,
            "hot_thread": {
                "tid": self.hot_tid,
                "name": self.hot_name,
                "matched_by": self.matched_by,
                "frames": [f.to_dict() for f in self.frames],
            },
            "functions_seen": list(self.functions_seen),
        }


def parse_dump(data: Any) -> Dump:
    """Parse ``py-spy dump --json`` output (a list of thread objects); unknown shapes yield no threads."""
    threads: list[ThreadStack] = []
    if isinstance(data, list):
        for t in data:
            if not isinstance(t, dict):
                continue
            frames = tuple(
                Frame(str(f.get("name", "?")), str(f.get("filename", "?")), int(f.get("line") or 0))
                for f in t.get("frames") or []
                if isinstance(f, dict)
            )
            tid = t.get("os_thread_id")
            threads.append(
                ThreadStack(
                    os_tid=tid if isinstance(tid, int) else None,
                    name=t.get("thread_name") if isinstance(t.get("thread_name"), str) else None,
                    active=bool(t.get("active")),
                    owns_gil=bool(t.get("owns_gil")),
                    frames=frames,
                )
            )
    return Dump(tuple(threads))


def is_platform_loop(frame: Frame) -> bool:
    if _LISTEN_NAME.search(frame.function) or _READ_NAME.search(frame.function):
        return True
    path = frame.file.replace("\\", "/")
    return "gateway/platforms/" in path and bool(_PLATFORM_LOOP.search(frame.function))


def _pick_thread(dump: Dump, hot_tid: int | None) -> tuple[ThreadStack | None, str | None]:
    if hot_tid is not None:
        for t in dump.threads:
            if t.os_tid == hot_tid:
                return t, "native thread id of the hottest thread (psutil)"
    # No id match (macOS ids differ, or no thread CPU): the thread running Python with the GIL.
    for t in dump.threads:
        if t.active and t.owns_gil:
            return t, "thread holding the GIL"
    for t in dump.threads:
        if t.active:
            return t, "active thread"
    if dump.threads:
        return dump.threads[-1] if dump.threads[-1].name == "MainThread" else dump.threads[0], "first thread"
    return None, None


def analyse(dumps: Sequence[Dump], hot_tid: int | None) -> StackAnalysis:
    """Classify the hot thread across several dumps: a spinning loop is caught at different lines, and
    the inner ``_read_events`` returns so fast that one dump often shows only ``_listen_loop``."""
    picked: list[tuple[ThreadStack, str]] = []
    for d in dumps:
        t, how = _pick_thread(d, hot_tid)
        if t is not None and how is not None:
            picked.append((t, how))
    if not picked:
        return StackAnalysis(captured=True, dumps=len(dumps), reason="py-spy returned no Python threads")
    loop_seen = sum(1 for t, _ in picked if any(is_platform_loop(f) for f in t.frames))
    functions: list[str] = []
    for t, _ in picked:
        for f in t.frames:
            if f.function not in functions:
                functions.append(f.function)
    # "Keeps showing": the loop in at least half of the dumps of the hot thread.
    classification = ADAPTER_READ_LOOP if loop_seen * 2 >= len(picked) and loop_seen > 0 else UNKNOWN
    # Report the most telling stack: one with _read_events above the loop, else one with the loop.
    best = picked[0]
    for t, how in picked:
        if any(_READ_NAME.search(f.function) for f in t.frames):
            best = (t, how)
            break
    else:
        for t, how in picked:
            if any(is_platform_loop(f) for f in t.frames):
                best = (t, how)
                break
    chosen_dump = next(d for d in dumps if best[0] in d.threads)
    return StackAnalysis(
        captured=True,
        dumps=len(dumps),
        classification=classification,
        hot_tid=best[0].os_tid,
        hot_name=best[0].name,
        matched_by=best[1],
        frames=best[0].frames,
        loop_seen=loop_seen,
        functions_seen=tuple(functions),
        all_threads=chosen_dump.threads,
    )


def render_text(analysis: StackAnalysis) -> str:
    """A py-spy-like text dump of every thread of the chosen dump, the hot one marked."""
    if not analysis.captured:
        lines = [f"stack not captured: {analysis.reason}"]
        if analysis.hint:
            lines.append(f"hint: {analysis.hint}")
        return "\n".join(lines) + "\n"
    lines = [
        f"classification: {analysis.classification} "
        f"(listen/read loop on the hot thread in {analysis.loop_seen} of {analysis.dumps} dumps)",
        "",
    ]
    for t in analysis.all_threads:
        state = "active+gil" if t.active and t.owns_gil else "active" if t.active else "idle"
        mark = "  <- hot thread" if t.os_tid == analysis.hot_tid else ""
        lines.append(f'Thread {t.os_tid} ({state}): "{t.name}"{mark}')
        lines.extend(f"    {f}" for f in t.frames)
        lines.append("")
    if analysis.functions_seen:
        lines.append("functions seen on the hot thread across dumps:")
        lines.extend(f"    {fn}" for fn in analysis.functions_seen)
    return "\n".join(lines) + "\n"
