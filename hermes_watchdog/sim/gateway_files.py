"""The files the simulated gateway writes in Hermes' own formats: ``gateway_state.json`` (whole-file
compact JSON, temp + rename) and ``gateway.pid`` (with Hermes' start_time). Standard library only."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path


def start_ticks() -> int | None:
    """What Hermes records as start_time: /proc/self/stat field 22, else create time in centiseconds."""
    try:
        return int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def utc_now() -> str:
    return datetime.now(UTC).isoformat()


class StateFile:
    """gateway_state.json written the way Hermes writes it: whole-file compact JSON, temp + rename."""

    def __init__(self, home: Path) -> None:
        self.path = home / "gateway_state.json"
        self.record = {
            "pid": os.getpid(), "kind": "hermes-gateway", "argv": list(sys.argv), "start_time": start_ticks(),
            "gateway_state": "starting", "exit_reason": None, "restart_requested": False,
            "active_agents": 0, "platforms": {}, "updated_at": utc_now(),
        }

    def write(self, gateway_state: str | None = None, platform: str | None = None,
              platform_state: str | None = None, error_code: str | None = None, exit_reason: str | None = None) -> None:
        rec = self.record
        rec["updated_at"] = utc_now()
        if gateway_state:
            rec["gateway_state"] = gateway_state
        if exit_reason:
            rec["exit_reason"] = exit_reason
        if platform:
            rec["platforms"][platform] = {"state": platform_state, "error_code": error_code,
                                          "error_message": None, "updated_at": utc_now()}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".gateway_state.", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(rec, fh, separators=(",", ":"))
        os.replace(tmp, self.path)


def write_pid_file(home: Path) -> Path:
    path = home / "gateway.pid"
    record = json.dumps({"pid": os.getpid(), "kind": "hermes-gateway", "argv": list(sys.argv),
                         "start_time": start_ticks()})
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            path.unlink(missing_ok=True)  # a stale file from a killed gateway; the lock below is the guard
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(record)
        return path
    raise SystemExit("cannot write gateway.pid")
