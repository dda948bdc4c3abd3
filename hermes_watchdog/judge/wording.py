"""The words of a verdict: durations, sizes, what the CPU figures and the down platforms say. Pure."""

from __future__ import annotations

from hermes_watchdog.facts.readings import GatewayState
from hermes_watchdog.judge.cpu import DEMAND, CpuUsage
from hermes_watchdog.timefmt import parse_iso


def down_text(state: GatewayState, now: float | None) -> tuple[str, float | None]:
    """'qqbot is disconnected (since ..., 12 min)' and the longest known down time in seconds."""
    parts, longest = [], None
    for p in state.not_connected:
        since = parse_iso(p.updated_at)
        text = f"{p.name} is '{p.state}'"
        if p.error_code:
            text += f" ({p.error_code})"
        if since is not None and now is not None:
            age = max(0.0, now - since)
            longest = age if longest is None else max(longest, age)
            text += f" since {p.updated_at} ({duration(age)} ago)"
        parts.append(text)
    return ", ".join(parts), longest


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def cpu_text(usage: CpuUsage, threshold: float) -> str:
    """What the CPU figures say, naming the measure that judged."""
    hot = usage.hot
    if hot is not None and usage.measure == DEMAND:
        return (f"hottest thread {hot.tid} wants {hot.demand:.2f} core (demand: on CPU {hot.on_cpu:.2f} + "
                f"waiting {hot.waiting:.2f}), gets {hot.cores:.2f}; process CPU {usage.cores:.2f} cores over "
                f"{usage.span:.1f} s (threshold {threshold:.2f}, judged by demand)")
    return (f"CPU {usage.cores:.2f} cores over {usage.span:.1f} s (CPU time; no run-queue data on this system; "
            f"threshold {threshold:.2f})" + (f"; hottest thread {hot.tid} at {hot.cores:.2f} cores" if hot else ""))


def size(n: float) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"
