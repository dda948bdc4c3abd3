"""Alive but deaf: readings of the process itself (descriptors, half-closed sockets, memory over a long
stretch) and what a rule about them finds. Plain data; the rules are judge/descriptors.py,
judge/halfclosed.py, judge/growth.py and judge/workers.py, called from signatures.py's rule list after the loop rules (a
wedged loop explains everything else; these are for a loop that turns and still serves nobody)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FD_EXHAUSTION = "fd-exhaustion"
SOCKETS_HALF_CLOSED = "sockets-half-closed"
MEMORY_GROWTH = "memory-growth"
WORKERS_SATURATED = "workers-saturated"
ALL = (FD_EXHAUSTION, SOCKETS_HALF_CLOSED, MEMORY_GROWTH, WORKERS_SATURATED)


@dataclass(frozen=True)
class Finding:
    signature: str
    confidence: float
    reasons: tuple[str, ...]
    evidence: dict[str, Any] = field(default_factory=dict)
