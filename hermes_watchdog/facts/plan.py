"""When to take the loop's stack bursts: the plan the daemon keeps per gateway (a value, no I/O).

The plan is a value: the main thread makes a new one when the suspicion or the rate changes and hands it
to the sampler thread by replacing one reference; nobody mutates a plan another thread reads. What only
the sampler thread knows (when its last burst started, how long it backs off) stays in the sampler.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# judge/proof.py's UNCOUNTED_RATE (a unit test holds them equal): the rate until the loop-turn counter is read
UNCOUNTED_RATE = 1000


@dataclass(frozen=True)
class SamplingPlan:
    """When to sample the loop: densely (bursts back to back) while something is suspect, otherwise one
    short burst every ``background`` seconds, so a loop blocked with an idle CPU is found too."""

    background: float = 120.0  # seconds between background bursts
    dense_burst: float = 3.0  # seconds per burst while suspect (py-spy takes whole seconds)
    background_burst: float = 1.0
    calm_after: float = 30.0  # seconds with nothing suspect before going back to background sampling
    suspect_until: float = 0.0
    # Hz of dense py-spy bursts: RATE where the loop-turn counter proves turns (the samples only name the
    # call), UNCOUNTED_RATE where the samples are the proof (judge/proof.py).
    dense_rate: int = UNCOUNTED_RATE

    def noted(self, now: float, suspect: bool) -> SamplingPlan:
        """The plan after a tick that found something suspect (or not)."""
        return replace(self, suspect_until=now + self.calm_after) if suspect else self

    def dense(self, now: float) -> bool:
        return now < self.suspect_until

    def due(self, now: float, last_start: float | None = None, backoff_until: float = 0.0) -> float | None:
        """The length of the burst to start now, or None. ``last_start``: when the sampler's last burst
        began; ``backoff_until``: bursts failed for a reason retrying will not change (no ptrace)."""
        if now < backoff_until:
            return None
        if self.dense(now):
            return self.dense_burst
        if self.background <= 0:
            return None  # --stack-every 0: only while suspect
        if last_start is None or now - last_start >= self.background:
            return self.background_burst
        return None
