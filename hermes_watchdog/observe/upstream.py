"""Hermes' own liveness bookkeeping, read so the watchdog never fights it.

- ``state/gateway.lifecycle.json`` (git releases 0.19.1+): ``{phase, exit_code, exit_reason}``, stamped
  before the gateway's own watchdog makes it exit (``loop_liveness_watchdog``, ``shutdown_watchdog``).
- ``gateway-starts.log`` (0.19.0+): one epoch timestamp per gateway start; more than 5 starts in 120 s is
  a respawn storm, and Hermes then backs off on its own (up to 300 s) before it starts again.

``parse_*`` are pure; ``read`` adds the bounded, symlink-refusing file reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hermes_watchdog.observe.statefile import as_finite, parse_json_object, read_bytes

LIFECYCLE_FILE = Path("state") / "gateway.lifecycle.json"
STARTS_FILE = Path("gateway-starts.log")
STORM_STARTS = 5  # more than this many starts ...
STORM_WINDOW = 120.0  # ... within this many seconds is a storm (Hermes' own breaker)
_STARTS_MAX_BYTES = 64 * 1024  # Hermes ring-buffers the file to 40 lines; anything larger is not its


@dataclass(frozen=True)
class Upstream:
    lifecycle_phase: str | None = None
    lifecycle_exit_code: int | None = None
    lifecycle_exit_reason: str | None = None
    starts: tuple[float, ...] = ()  # epoch seconds
    lifecycle_pid: int | None = None  # the PID the ledger describes (gateway/lifecycle_ledger.py: {phase, pid, ...})

    def storm(self, now: float) -> int:
        """Starts within the storm window when they are more than Hermes allows, else 0."""
        recent = sum(1 for t in self.starts if 0 <= now - t <= STORM_WINDOW)
        return recent if recent > STORM_STARTS else 0

    def to_dict(self, now: float) -> dict[str, object]:
        return {"lifecycle": {"phase": self.lifecycle_phase, "exit_code": self.lifecycle_exit_code,
                              "exit_reason": self.lifecycle_exit_reason} if self.lifecycle_phase else None,
                "starts_in_storm_window": sum(1 for t in self.starts if 0 <= now - t <= STORM_WINDOW)}


def parse_lifecycle(path: str, raw: bytes | None) -> tuple[str | None, int | None, str | None]:
    read = parse_json_object(path, raw)
    if not read.ok or read.data is None:
        return None, None, None
    phase, code, reason = read.data.get("phase"), read.data.get("exit_code"), read.data.get("exit_reason")
    return (phase if isinstance(phase, str) else None,
            code if isinstance(code, int) and not isinstance(code, bool) else None,
            reason if isinstance(reason, str) else None)


def parse_starts(raw: bytes | None) -> tuple[float, ...]:
    if not raw:
        return ()
    out = []
    for line in raw.decode("utf-8", "replace").splitlines()[-200:]:
        text = line.strip()
        try:
            value = as_finite(float(text)) if 0 < len(text) <= 40 else None
        except ValueError:
            value = None
        if value is not None:
            out.append(value)
    return tuple(out)


def read(home: Path) -> Upstream:
    raw, _ = read_bytes(home / LIFECYCLE_FILE)
    phase, code, reason = parse_lifecycle(str(home / LIFECYCLE_FILE), raw)
    starts_raw, _ = read_bytes(home / STARTS_FILE, limit=_STARTS_MAX_BYTES)
    return Upstream(phase, code, reason, parse_starts(starts_raw), lifecycle_pid(raw))


def lifecycle_pid(raw: bytes | None) -> int | None:
    read = parse_json_object("lifecycle", raw)
    pid = read.data.get("pid") if read.ok and read.data is not None else None
    return pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None
