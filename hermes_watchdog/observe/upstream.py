"""Hermes' own liveness bookkeeping, read so the watchdog never fights it.

- ``state/gateway.lifecycle.json`` (git releases 0.19.1+): ``{phase: running, pid, start_time}`` claimed
  at boot; ``{phase: exited, pid, exit_code, exit_reason, exited_at}`` stamped by the exiting process itself,
  the in-process watchdogs included (``loop_liveness_watchdog``, ``shutdown_watchdog``, exit 75) just before
  ``os._exit`` (upstream gateway/lifecycle_ledger.py ``mark_exited``, commit
  f2f14bbd49f7ad11e0b049cd6f108006cc0aceda; gateway/shutdown_watchdog.py ``start_loop_liveness_watchdog``).
- ``gateway-starts.log`` (0.19.0+, still in the newest releases): one epoch timestamp per gateway start;
  more than 5 starts in 120 s is a respawn storm, and the starting gateway then sleeps a backoff (5 s
  doubling, up to 300 s) before it goes on (``record_start_and_check_storm`` in gateway/status.py).
- ``gateway/restart_loop.json`` (``{"boots": [epoch, ...]}``): the restart-loop breaker's boots, one per
  boot with restart-interrupted sessions. 0.19.0 counts 3 within 60 s; since #82574 (merged 2026-08-09,
  from 0.19.1) boots *chain* while each gap to the next stays within 300 s, and 3 chained boots trip it:
  a slow ~150 s crash cycle (wedged loop -> its own watchdog exits 75 -> relaunch) trips like a fast one.
  Tripped, the booting gateway skips auto-resume of the session that keeps killing it.
  Read from upstream's gateway/restart_loop_guard.py (NousResearch/hermes-agent, commit
  223fa25c5a7675d8d7213e52293856aaee405b58: ``_chain_ending_at``, ``DEFAULT_MAX_GAP_SECONDS``) and
  gateway/status.py (commit 00067189dfecf833d4d009c2dd977ae85cf800e0); nothing copied.

``parse_*`` and ``Upstream`` are pure; ``read`` adds the bounded, symlink-refusing file reads.
"""

from __future__ import annotations

import os
from pathlib import Path

from hermes_watchdog.facts.readings import (
    Upstream,
)
from hermes_watchdog.observe.statefile import as_finite, parse_json_object, read_bytes

LIFECYCLE_FILE = Path("state") / "gateway.lifecycle.json"
STARTS_FILE = Path("gateway-starts.log")
RESTART_LOOP_FILE = Path("gateway") / "restart_loop.json"
_STARTS_MAX_BYTES = 64 * 1024  # Hermes ring-buffers the file to 40 lines; anything larger is not its
_LOOP_MAX_BYTES = 16 * 1024  # Hermes keeps 50 boots


def parse_lifecycle(path: str, raw: bytes | None) -> tuple[str | None, int | None, str | None, int | None]:
    """(phase, exit_code, exit_reason, pid), None for what is missing or of the wrong type."""
    read = parse_json_object(path, raw)
    if not read.ok or read.data is None:
        return None, None, None, None
    phase, code, reason = read.data.get("phase"), read.data.get("exit_code"), read.data.get("exit_reason")
    pid = read.data.get("pid")
    return (phase if isinstance(phase, str) else None,
            code if isinstance(code, int) and not isinstance(code, bool) else None,
            reason if isinstance(reason, str) else None,
            pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None)


def parse_starts(raw: bytes | None) -> tuple[float, ...]:
    if not raw:
        return ()
    out = []
    for line in raw.decode("utf-8", "replace").splitlines()[-200:]:
        text = line.strip().lstrip("\ufeff")
        try:
            value = as_finite(float(text)) if 0 < len(text) <= 40 else None
        except ValueError:
            value = None
        if value is not None:
            out.append(value)
    return tuple(out)


def parse_boots(path: str, raw: bytes | None) -> tuple[float, ...]:
    read = parse_json_object(path, raw)
    if not read.ok or read.data is None or not isinstance(read.data.get("boots"), list):
        return ()
    out = []
    for t in read.data["boots"][-200:]:
        value = as_finite(t)
        if value is not None:
            out.append(value)
    return tuple(out)


def read(home: Path) -> Upstream:
    raw, _ = read_bytes(home / LIFECYCLE_FILE)
    phase, code, reason, pid = parse_lifecycle(str(home / LIFECYCLE_FILE), raw)
    try:
        at: float | None = os.stat(home / LIFECYCLE_FILE, follow_symlinks=False).st_mtime if raw else None
    except OSError:
        at = None
    starts_raw, _ = read_bytes(home / STARTS_FILE, limit=_STARTS_MAX_BYTES)
    loop_raw, _ = read_bytes(home / RESTART_LOOP_FILE, limit=_LOOP_MAX_BYTES)
    return Upstream(phase, code, reason, parse_starts(starts_raw), parse_boots(str(home / RESTART_LOOP_FILE), loop_raw),
                    at, pid)
