"""Timestamps as the watchdog writes them: ISO 8601, UTC, whole seconds, ``Z``. Pure."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
