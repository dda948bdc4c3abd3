"""Timestamps as the watchdog writes them (ISO 8601, UTC, whole seconds, ``Z``) and as it reads Hermes'
(ISO 8601; a stamp without a zone is UTC, as Hermes writes UTC). Pure."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_iso(value: object) -> float | None:
    """Epoch seconds of an ISO 8601 stamp, or None for anything else. Naive stamps are read as UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.timestamp()
    except (OverflowError, OSError, ValueError):  # year 1 or 9999 at the edges of the platform's range
        return None
