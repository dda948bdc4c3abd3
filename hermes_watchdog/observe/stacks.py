"""py-spy dump parsing and the hot thread's dumps, picked out. Pure: JSON in, evidence out.

The dumps of the hot thread are evidence for the report, not a verdict of their own: what the stack means
is said once, by the event loop's analysis (judge/loop.py: did the loop thread get back to its selector, and
in which call was it instead?). No rule here knows a function name: an earlier name-based classification
("a platform's listen/read loop") contradicted that analysis in front of the user and is gone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from hermes_watchdog.facts.stacks import Dump, Frame, StackAnalysis, ThreadStack


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
    """The hot thread across several dumps, and the one stack to show: the deepest of those whose innermost
    frame recurs most (a spin is caught at different lines; the call a blocked thread sits in recurs)."""
    picked: list[tuple[ThreadStack, str]] = []
    for d in dumps:
        t, how = _pick_thread(d, hot_tid)
        if t is not None and how is not None:
            picked.append((t, how))
    if not picked:
        return StackAnalysis(captured=True, dumps=len(dumps), reason="py-spy returned no Python threads")
    functions: list[str] = []
    for t, _ in picked:
        for f in t.frames:
            if f.function not in functions:
                functions.append(f.function)
    innermost = Counter(t.frames[0] for t, _ in picked if t.frames)
    top = max(innermost.values(), default=0)
    best = max(picked, key=lambda p: (bool(p[0].frames) and innermost[p[0].frames[0]] == top, len(p[0].frames)))
    chosen_dump = next(d for d in dumps if best[0] in d.threads)
    return StackAnalysis(
        captured=True,
        dumps=len(dumps),
        hot_tid=best[0].os_tid,
        hot_name=best[0].name,
        matched_by=best[1],
        frames=best[0].frames,
        innermost_in=innermost[best[0].frames[0]] if best[0].frames else 0,
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
    lines = [describe(analysis), ""]
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


def describe(analysis: StackAnalysis) -> str:
    """One line on what was taken (never what it means: that is the event loop's analysis)."""
    if not analysis.captured:
        return f"not captured: {analysis.reason}" + (f" (hint: {analysis.hint})" if analysis.hint else "")
    where = f"; innermost frame {analysis.frames[0]} in {analysis.innermost_in} of them" if analysis.frames else ""
    return (f"{analysis.dumps} dump(s) of the hot thread {analysis.hot_tid} ({analysis.matched_by}){where}; "
            "what the loop did is said by the event loop's analysis")
