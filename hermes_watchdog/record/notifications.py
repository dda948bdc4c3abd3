"""Notification messages: what happened to which gateway, as one JSON object. Pure and redacted.

Kinds: ``incident`` (opened, with the action taken on the same tick: restart, alert, give-up, dry-run),
``restart`` and ``give-up`` when they come later in an open incident (after a cooldown), and
``recovery`` when the incident closes (``result``: restarted, restart-failed, recovered). So a busy loop
that is restarted and verified sends exactly two messages: one incident, one recovery.
"""

from __future__ import annotations

import socket
from typing import Any

from hermes_watchdog.record.redact import redact, redact_obj
from hermes_watchdog.timefmt import iso

INCIDENT, RESTART, GIVE_UP, RECOVERY = "incident", "restart", "give-up", "recovery"
KINDS = (INCIDENT, RESTART, GIVE_UP, RECOVERY)


def build(kind: str, profile: str | None, home: str, record: dict[str, Any], folder: str, now: float,
          home_dir: str | None = None) -> dict[str, Any]:
    """``record`` is the incident record as the daemon keeps it (unredacted); the message is redacted."""
    sig = str(record.get("signature"))
    pid = record.get("pid")
    action = record.get("action") or {}
    result = record.get("result")
    where = profile or "default"
    if kind == INCIDENT:
        summary = f"{sig} on gateway PID {pid} [{where}]: {action.get('kind')} ({action.get('why')})"
    elif kind == RESTART:
        summary = f"restarting gateway PID {pid} [{where}] for {sig}"
    elif kind == GIVE_UP:
        summary = f"not restarting gateway PID {pid} [{where}] for {sig}: restart budget used up"
    else:
        new = record.get("new_pid")
        summary = f"{sig} over [{where}]: {result}" + (f", new gateway PID {new}" if new else "")
    msg = {
        "event": kind,
        "summary": summary,
        "at": iso(now),
        "host": socket.gethostname(),
        "profile": where,
        "hermes_home": home,
        "signature": sig,
        "confidence": record.get("confidence"),
        "pid": pid,
        "new_pid": record.get("new_pid"),
        "action": action.get("kind"),
        "result": result,
        "reasons": list(record.get("reasons") or [])[:5],
        "budget": record.get("budget"),
        "incident": folder,
    }
    out = redact_obj(msg, home_dir)
    out["summary"] = redact(summary, home_dir)
    return out
