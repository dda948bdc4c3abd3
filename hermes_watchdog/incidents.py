"""Incident folders under STATE_DIR/incidents/<UTC time>-<signature>[-<profile>]/, each with
incident.json, stack.txt, state.json, logs-tail.txt and report.md (all redacted, 0700/0600); the newest
``keep`` are kept."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hermes_watchdog import evidence, private


@dataclass
class Incident:
    folder: Path
    signature: str
    opened_at: float
    record: dict[str, Any]
    stack_text: str
    log_tail: str
    raw_state: Any = None
    timeline: list[str] = field(default_factory=list)

    def note(self, line: str) -> None:
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        self.timeline.append(f"{stamp} {line}")
        self.record["timeline"] = list(self.timeline)

    def save(self) -> None:
        extra = [("Timeline", "\n".join(f"- {t}" for t in self.timeline))] if self.timeline else None
        evidence.write(self.folder, self.record, self.stack_text, self.log_tail, record_name="incident.json",
                       title=f"hermes-watchdog incident: {self.signature}", extra=extra, raw_state=self.raw_state)


def incidents_dir(state_dir: Path) -> Path:
    return state_dir / "incidents"


def new_folder(state_dir: Path, signature: str, profile: str | None, when: float) -> Path:
    base = incidents_dir(state_dir)
    private.make_dir(state_dir)
    private.make_dir(base)
    stamp = datetime.fromtimestamp(when, UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"{stamp}-{signature}" + (f"-{profile}" if profile else "")
    folder, n = base / name, 1
    while folder.exists():
        n += 1
        folder = base / f"{name}.{n}"
    private.make_dir(folder)
    return folder


def latest(state_dir: Path, count: int = 10) -> list[Path]:
    try:
        folders = [p for p in incidents_dir(state_dir).iterdir() if p.is_dir()]
    except OSError:
        return []
    return sorted(folders, key=lambda p: p.name, reverse=True)[:count]


def prune(state_dir: Path, keep: int) -> list[Path]:
    """Remove all but the newest ``keep`` incident folders (names sort by time)."""
    removed = []
    for old in latest(state_dir, 10**9)[keep:]:
        shutil.rmtree(old, ignore_errors=True)
        removed.append(old)
    return removed
