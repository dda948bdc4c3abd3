"""Incident folders under STATE_DIR/incidents/<UTC time>-<signature>[-<profile>]/, each with
incident.json, stack.txt, state.json, logs-tail.txt and report.md (all redacted, 0700/0600); the newest
``keep`` are kept."""

from __future__ import annotations

import errno
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hermes_watchdog import safepath
from hermes_watchdog.observe.statefile import read_bytes, read_json_object
from hermes_watchdog.record import evidence, private


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
    writable: bool = True  # False when no folder could be made: the problem was said then, nothing is written

    def note(self, line: str) -> None:
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        self.timeline.append(f"{stamp} {line}")
        self.record["timeline"] = list(self.timeline)

    def save(self) -> None:
        if not self.writable:
            return
        extra = [("Timeline", "\n".join(f"- {t}" for t in self.timeline))] if self.timeline else None
        evidence.write(self.folder, self.record, self.stack_text, self.log_tail, record_name="incident.json",
                       title=f"hermes-watchdog incident: {self.signature}", extra=extra, raw_state=self.raw_state)


def incidents_dir(state_dir: Path) -> Path:
    return state_dir / "incidents"


def _open_real_dir(path: Path) -> int:
    """A descriptor on ``path`` itself: refused when it is a symlink (what is behind it is not ours)."""
    try:
        return safepath.open_file(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(path):
            raise OSError(errno.ELOOP, "is a symbolic link; not followed", str(path)) from None
        raise exc


def new_folder(state_dir: Path, signature: str, profile: str | None, when: float) -> Path:
    base = incidents_dir(state_dir)
    private.make_dir(base)  # refuses a symlinked incidents/
    stamp = datetime.fromtimestamp(when, UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"{stamp}-{signature}" + (f"-{profile}" if profile else "")
    for n in range(1, 1000):
        folder = base / (name if n == 1 else f"{name}.{n}")
        try:
            return private.new_dir(folder)  # a new folder, never one already there
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "too many incident folders with this name", str(base / name))


def _real_folders(fd: int) -> list[str]:
    with os.scandir(fd) as entries:
        return [e.name for e in entries if e.is_dir(follow_symlinks=False)]


def latest(state_dir: Path, count: int = 10) -> list[Path]:
    base = incidents_dir(state_dir)
    try:
        fd = _open_real_dir(base)
    except OSError:
        return []
    try:
        names = _real_folders(fd)
    except OSError:
        return []
    finally:
        os.close(fd)
    return [base / n for n in sorted(names, reverse=True)[:count]]


def prune(state_dir: Path, keep: int) -> list[Path]:
    """Remove all but the newest ``keep`` incident folders (names sort by time). Only real folders inside
    the real incidents/ are removed, relative to its descriptor: a symlink anywhere is never followed."""
    base = incidents_dir(state_dir)
    try:
        fd = _open_real_dir(base)
    except FileNotFoundError:
        return []
    removed = []
    try:
        for name in sorted(_real_folders(fd), reverse=True)[keep:]:
            shutil.rmtree(name, ignore_errors=True, dir_fd=fd)
            removed.append(base / name)
    finally:
        os.close(fd)
    return removed


def load(folder: Path, signature: str, record: dict[str, Any] | None = None) -> Incident | None:
    """An incident folder written earlier (by this or an earlier daemon), to carry on with; None if its
    incident.json cannot be read. ``record``: its incident.json, when the caller has already read and
    checked it (then it is not read a second time). The texts are read bounded, never through a symlink or
    a FIFO."""
    if record is None:
        read = read_json_object(folder / "incident.json")
        if not read.ok or read.data is None:
            return None
        record = read.data

    def text(name: str) -> str:
        raw, _ = read_bytes(folder / name)
        return raw.decode("utf-8", errors="replace") if raw else ""

    inc = Incident(folder, signature or str(record.get("signature")), time.time(), record, text("stack.txt"),
                   text("logs-tail.txt"))
    timeline = record.get("timeline")
    inc.timeline = [str(t) for t in timeline] if isinstance(timeline, list) else []
    return inc
