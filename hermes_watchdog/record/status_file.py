"""The schema of the daemon's own files in its state dir, owned here and nowhere else.

- ``state.json``: what ``status`` shows, and the restart history the budget needs after a crash. Redacted,
  0600, versioned. ``status`` and the daemon read it through ``read_status`` / ``saved_gateway``.
- ``pending.json``: restarts in flight, unredacted identities, private: only for the daemon that resumes
  them (``pending_entry`` / ``pending_fields``).

A file written by an older daemon has no ``version``: it is read as version 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hermes_watchdog.observe.statefile import as_finite, as_pid, read_json_object
from hermes_watchdog.record import private

VERSION = 1
STATE_FILE = "state.json"
PENDING_FILE = "pending.json"


# ---------------------------------------------------------------- state.json
def write_status(state_dir: Path, public: dict[str, Any], durable: bool) -> None:
    """``public`` is already redacted. Raises OSError."""
    private.make_dir(state_dir)
    private.write_json(state_dir / STATE_FILE, {"version": VERSION, **public}, durable=durable)


def read_status(state_dir: Path) -> dict[str, Any] | None:
    read = read_json_object(state_dir / STATE_FILE)
    return read.data if read.ok else None


@dataclass(frozen=True)
class SavedGateway:
    home: Path
    restarts: list[float]
    history: list[dict[str, Any]]
    gave_up: dict[str, Any] | None


def saved_gateways(data: dict[str, Any]) -> tuple[list[SavedGateway], set[str]]:
    """The ``gateways`` of a state.json, and the names of the fields dropped for their type. Pure."""
    bad: set[str] = set()
    gateways = data.get("gateways", [])
    if not isinstance(gateways, list):
        return [], {"gateways"}
    saved = [s for s in (saved_gateway(g, bad) for g in gateways) if s is not None]
    return saved, bad


def saved_gateway(g: Any, bad: set[str]) -> SavedGateway | None:
    """One ``gateways`` entry of state.json, checked field by field; the names of fields of the wrong type
    are added to ``bad``. Pure: no I/O."""
    if not isinstance(g, dict):
        bad.add("gateways entry")
        return None
    try:
        home = Path(g["home"]).expanduser() if isinstance(g.get("home"), str) and g["home"] else None
    except (RuntimeError, ValueError):  # "~nosuchuser/...", or a NUL
        home = None
    if home is None:
        bad.add("home")
        return None
    raw = g.get("restarts", [])
    restarts = [t for t in (as_finite(x) for x in raw) if t is not None] if isinstance(raw, list) else []
    if not isinstance(raw, list) or len(restarts) != len(raw):
        bad.add("restarts")
    raw = g.get("restart_history", [])
    history = [h for h in raw if isinstance(h, dict)] if isinstance(raw, list) else []
    if not isinstance(raw, list) or len(history) != len(raw):
        bad.add("restart_history")
    raw = g.get("gave_up")
    gave_up = None
    if raw is not None:
        ok = (isinstance(raw, dict) and isinstance(raw.get("pid"), int) and as_pid(raw["pid"]) is not None
              and as_finite(raw.get("create_time")) is not None and isinstance(raw.get("signature"), str)
              and isinstance(raw.get("incident"), str))
        if ok:
            gave_up = {"pid": raw["pid"], "create_time": as_finite(raw["create_time"]), "signature": raw["signature"],
                       "incident": raw["incident"]}
        else:
            bad.add("gave_up")
    return SavedGateway(home, restarts, history[-20:], gave_up)


# ---------------------------------------------------------------- pending.json
def pending_entry(family: str, restart: dict[str, Any], incident: str, signature: str,
                  restart_record: dict[str, Any] | None) -> dict[str, Any]:
    """One restart in flight. ``restart`` is ``act.restart.Restart.to_dict``; the incident's own restart
    record is kept too, so a kill between this write and the incident's save loses nothing."""
    return {"version": VERSION, "family": family, **restart, "incident": incident, "signature": signature,
            "restart_record": restart_record}


def write_pending(state_dir: Path, entries: dict[str, dict[str, Any]]) -> None:
    """Raises OSError. No entries: the file goes."""
    path = state_dir / PENDING_FILE
    if entries:
        private.make_dir(state_dir)
        private.write_json(path, entries)
    else:
        path.unlink(missing_ok=True)
