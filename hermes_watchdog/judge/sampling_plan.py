"""When to take the loop's stack bursts: the plan the daemon keeps per gateway (pure; the sampler thread reads
it, the main thread changes it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hermes_watchdog.judge.proof import UNCOUNTED_RATE


@dataclass
class SamplingPlan:
    """When to sample the loop: densely (bursts back to back) while something is suspect, otherwise one
    short burst every ``background`` seconds, so a loop blocked with an idle CPU is found too."""

    background: float = 120.0  # seconds between background bursts
    dense_burst: float = 3.0  # seconds per burst while suspect (py-spy takes whole seconds)
    background_burst: float = 1.0
    calm_after: float = 30.0  # seconds with nothing suspect before going back to background sampling
    last_start: float | None = None
    suspect_until: float = field(default=0.0)

    def note(self, now: float, suspect: bool) -> None:
        if suspect:
            self.suspect_until = now + self.calm_after

    def dense(self, now: float) -> bool:
        return now < self.suspect_until

    backoff_until: float = 0.0  # bursts fail for a reason retrying will not change (no ptrace): wait
    # Hz of dense py-spy bursts: RATE where the loop-turn counter proves turns (the samples only name the
    # call), UNCOUNTED_RATE where the samples are the proof (judge/proof.py).
    dense_rate: int = UNCOUNTED_RATE

    def due(self, now: float) -> float | None:
        """The length of the burst to start now, or None."""
        if now < self.backoff_until:
            return None
        if self.dense(now):
            return self.dense_burst
        if self.background <= 0:
            return None  # --stack-every 0: only while suspect
        if self.last_start is None or now - self.last_start >= self.background:
            return self.background_burst
        return None
