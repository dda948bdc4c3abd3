"""sockets-half-closed: TCP sockets of the gateway left in CLOSE_WAIT. Pure.

The peer closed and the adapter never noticed: Discord with hours of CLOSE-WAIT sockets while its state
says connected (upstream #109521), Telegram's CLOSE_WAIT leak (#70830). A socket passes through CLOSE_WAIT
for microseconds when its owner closes it promptly; minutes mean nobody reads it any more.
"""

from __future__ import annotations

import itertools

from hermes_watchdog.facts.deaf import GROWTH_SPAN, DeafThresholds, HalfClosed, Sockets
from hermes_watchdog.judge.deaf import SOCKETS_HALF_CLOSED, Finding
from hermes_watchdog.judge.wording import duration

GROWTH_MIN = 5  # more CLOSE_WAIT sockets at the end of a never-falling series than at its start
SHOWN = 10  # endpoints listed in the reasons (all are in the evidence)


def growing(counts: tuple[tuple[float, int], ...], span: float) -> bool:
    """The count never fell over at least ``span`` seconds and rose by GROWTH_MIN or more."""
    if len(counts) < 3 or counts[-1][0] - counts[0][0] < span:
        return False
    values = [n for _, n in counts]
    return all(b >= a for a, b in itertools.pairwise(values)) and values[-1] - values[0] >= GROWTH_MIN


def rule(sockets: Sockets | None, th: DeafThresholds, connected: tuple[str, ...] = ()) -> Finding | None:
    if sockets is None or not sockets.half_closed:
        return None
    old = [h for h in sockets.half_closed if h.seconds >= th.half_closed_after]
    grew = growing(sockets.counts, min(GROWTH_SPAN, th.half_closed_after))
    if not old and not grew:
        return None
    n = len(sockets.half_closed)
    if old:
        head = (f"{len(old)} TCP socket(s) of the gateway in CLOSE_WAIT for {duration(th.half_closed_after)} or more "
                f"(--half-closed-after; the oldest {duration(sockets.oldest)}), {n} in all: the peer closed and the "
                "gateway never read the end nor closed its side")
    else:
        first, last = sockets.counts[0], sockets.counts[-1]
        head = (f"CLOSE_WAIT sockets of the gateway grew from {first[1]} to {last[1]} over "
                f"{duration(last[0] - first[0])} without ever falling: connections the peer closed pile up")
    reasons = [head, "half-closed: " + ", ".join(_one(h) for h in _oldest(sockets.half_closed)[:SHOWN])
               + (f" and {n - SHOWN} more" if n > SHOWN else "")]
    if sockets.established is not None:
        reasons.append(f"{sockets.established} TCP connection(s) established")
    if connected:
        reasons.append("while the state file says connected: " + ", ".join(connected))
    return Finding(SOCKETS_HALF_CLOSED, 0.85 if old else 0.7, tuple(reasons), {
        "half_closed": [h.to_dict() for h in _oldest(sockets.half_closed)], "count": n, "held_long": len(old),
        "growing": grew, "established": sockets.established, "platforms_connected": list(connected),
        "half_closed_after": th.half_closed_after})


def _oldest(items: tuple[HalfClosed, ...]) -> list[HalfClosed]:
    return sorted(items, key=lambda h: -h.seconds)


def _one(h: HalfClosed) -> str:
    return f"{h.local} <- {h.remote} ({duration(h.seconds)})"
