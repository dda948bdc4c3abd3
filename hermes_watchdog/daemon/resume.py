"""A daemon starting again: the restart history from state.json (so the budget holds across crashes)
and the restarts in flight from pending.json (carried on, never started twice). Only what this state
dir's daemons wrote is resumed, and only a process still proven to be the home's gateway is ever signalled:
anything else is dropped, said in one line."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hermes_watchdog.act.restart_state import Restart
from hermes_watchdog.daemon import locks, restarts
from hermes_watchdog.observe import discovery, processes
from hermes_watchdog.record import incidents, status_file
from hermes_watchdog.record.timefmt import iso

if TYPE_CHECKING:
    from hermes_watchdog.daemon.loop import Daemon


def load(d: Daemon, homes: list[tuple[Path, str | None]]) -> None:
    wanted = {h.expanduser(): n for h, n in homes}
    data = status_file.read_status(d.state_dir)
    if data:
        # Hand-edited or damaged, field by field: what has the wrong type is dropped (said once), the rest
        # is used; it never stops the daemon.
        saved, bad = status_file.saved_gateways(data)
        for s in saved:
            if s.home in wanted:
                w = d.watch_for(s.home, wanted[s.home])
                w.restarts, w.history, w.gave_up = s.restarts, s.history, s.gave_up
        if bad:
            d.log.emit("WARN", f"{d.state_dir / status_file.STATE_FILE}: ignored {', '.join(sorted(bad))} (not of "
                               "the expected type); still watching")
    _resume_pending(d, wanted)


def _resume_pending(d: Daemon, wanted: dict[Path, str | None]) -> None:
    path = d.state_dir / status_file.PENDING_FILE
    data, why = locks.read_own_json(path)
    if data is None:
        if why != "missing":
            d.log.emit("WARN", f"ignoring {path}: {why}; nothing resumed, no signal sent")
        return
    now_wall, now_mono = time.time(), time.monotonic()
    for home_text, p in data.items():
        home = Path(home_text)
        if home not in wanted or not isinstance(p, dict):
            continue
        try:
            r = Restart.from_dict(p, lambda wall: now_mono + (wall - now_wall), grace=d.cfg.grace,
                                  start_timeout=d.cfg.start_timeout)
        except (KeyError, TypeError, ValueError, OverflowError):
            d.log.emit("WARN", f"ignoring an unreadable entry in {path}; no signal sent", str(home))
            continue
        problem, record = _problem(d, home, p, r)
        if problem:
            d.log.emit("WARN", f"not resuming the restart of PID {r.old.pid} recorded in {path}: {problem}; "
                               "dropped, no signal sent", wanted[home] or str(home))
            continue
        w = d.watch_for(home, wanted[home])
        if not any(abs(t - r.started_wall) < 1e-3 for t in w.restarts):
            w.restarts.append(r.started_wall)
        w.acted = True
        w.machine = restarts.machine_for(d, w, r)
        w.machine.resume()
        folder = Path(str(p.get("incident", "")))
        w.incident = incidents.load(folder, str(p.get("signature", "")), record)  # as checked, not read again
        if w.incident is not None:
            w.incident.note("the watchdog restarted; carrying on with this restart")
            if not w.incident.record.get("restart") and isinstance(p.get("restart_record"), dict):
                w.incident.record["restart"] = p["restart_record"]
                w.incident.record["result"] = "restarting"
        if not any(h.get("incident") == folder.name for h in w.history):
            # Killed before state.json caught up with the restart: its history entry is rebuilt here.
            w.history.append({"at": iso(r.started_wall), "pid": r.old.pid, "signature": str(p.get("signature", "")),
                              "manager": r.manager, "result": "restarting", "incident": folder.name})
        d.log.emit("RESUME", f"a restart of PID {r.old.pid} was in progress when the watchdog stopped: "
                             f"carrying it on ({r.phase.value})", w.name)


def _problem(d: Daemon, home: Path, p: dict[str, Any], r: Restart) -> tuple[str | None, dict[str, Any] | None]:
    """(why a pending.json entry must not be resumed, or None; its incident record as checked): written by
    this state dir's daemons (the family token of the lock), about an incident of this state dir on that
    same process, and the process, if still alive, still proven to be this home's gateway."""
    old = r.old
    if not d.locks.family or p.get("family") != d.locks.family:
        return "it was not written by a hermes-watchdog of this state dir", None
    if not old.cmdline or old.uid is None or not processes.looks_like_gateway(old.cmdline):
        return "the process it names was not recorded as a Hermes gateway", None
    folder = Path(str(p.get("incident") or ""))
    if not p.get("incident") or folder.parent != incidents.incidents_dir(d.state_dir):
        return "it names no incident of this state dir", None
    rec, why = locks.read_own_json(folder / "incident.json")
    if rec is None:
        return f"its incident {folder.name} cannot be used ({why})", None
    ident = rec.get("identity") if isinstance(rec.get("identity"), dict) else {}
    created = ident.get("create_time")
    if rec.get("pid") != old.pid or not isinstance(created, int | float) or \
            abs(created - old.create_time) > 0.05 or rec.get("signature") != p.get("signature"):
        return f"its incident {folder.name} is about another process", None
    if processes.same_process(old)[0]:  # still alive: it must still prove to be this home's gateway
        ok, why = discovery.reprove(old, home)
        if not ok:
            return why, None
    return None, rec
