"""memory-growth: RSS rising fast for a long stretch, with or without --memory-limit. Pure.

Upstream: 60 GB every 2 h (#81625), 6.4 GB in 15 min (#78993), 8 GB in 50 h (#19251), hidden by daily
restarts (#58817). memory-high (a limit) keeps its restart; this only alerts, with the projected time
until the machine's available memory is gone at that rate.
"""

from __future__ import annotations

from hermes_watchdog.facts.deaf import DeafSeen, DeafThresholds, slope
from hermes_watchdog.judge.deaf import MEMORY_GROWTH, Finding
from hermes_watchdog.judge.wording import duration, size

COVER = 0.9  # the samples must cover this much of growth_for


def rule(seen: DeafSeen | None, th: DeafThresholds, limit: int | None = None) -> Finding | None:
    if seen is None or len(seen.rss) < 4:
        return None
    end = seen.rss[-1][0]
    recent = [(t, r) for t, r in seen.rss if t >= end - th.growth_for]
    if len(recent) < 4 or recent[-1][0] - recent[0][0] < COVER * th.growth_for:
        return None
    rate = slope(recent)
    if rate is None or rate < th.growth_rate:
        return None
    # Sustained, not one step: each half of the stretch grows at a quarter of the rate at least.
    mid = (recent[0][0] + recent[-1][0]) / 2
    halves = [[s for s in recent if s[0] <= mid], [s for s in recent if s[0] >= mid]]
    if any(len(h) < 2 or (h[-1][1] - h[0][1]) < 0.25 * th.growth_rate * (h[-1][0] - h[0][0]) for h in halves):
        return None
    rss = recent[-1][1]
    span = recent[-1][0] - recent[0][0]
    reasons = [f"RSS grew from {size(recent[0][1])} to {size(rss)} in {duration(span)}: {size(rate * 3600)}/h "
               f"(alert from {size(th.growth_rate * 3600)}/h sustained for {duration(th.growth_for)})"]
    evidence: dict[str, object] = {"rss_bytes": rss, "bytes_per_hour": round(rate * 3600), "over_seconds": round(span),
                                   "mem_available": seen.mem_available, "mem_total": seen.mem_total}
    if seen.mem_available is not None:
        left = seen.mem_available / rate
        evidence["exhausts_machine_in_seconds"] = round(left)
        of = f" of {size(seen.mem_total)}" if seen.mem_total else ""
        reasons.append(f"at this rate the machine's available memory ({size(seen.mem_available)}{of}) is gone in "
                       f"about {duration(left)}")
    if limit is not None and rss < limit:
        evidence["reaches_limit_in_seconds"] = round((limit - rss) / rate)
        reasons.append(f"--memory-limit {size(limit)} reached in about {duration((limit - rss) / rate)} "
                       "(memory-high then restarts it)")
    return Finding(MEMORY_GROWTH, 0.85, tuple(reasons), evidence)
