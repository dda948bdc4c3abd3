"""A daemon starting again: the restart history from state.json (so the budget holds across crashes)
and the restarts in flight from pending.json (carried on, never started twice). Only what this state
dir's daemons wrote is resumed, and only a process still proven to be the home's gateway is ever signalled:
anything else is dropped, said in one line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hermes_watchdog.act.restart_state import Restart
from hermes_watchdog.daemon import exits, locks
from hermes_watchdog.daemon.incident_life import IncidentLife, Stage
from hermes_watchdog.daemon.watch import Watch
from hermes_watchdog.daemon.world import World
from hermes_watchdog.observe import discovery, processes
from hermes_watchdog.record import incidents, status_file
from hermes_watchdog.timefmt import iso

WatchFor = Callable[[Path, str | None], Watch]  # the daemon's watch of a home, made on first use


def load(world: World, homes: list[tuple[Path, str | None]], watch_for: WatchFor) -> None:
    wanted = {h.expanduser(): n for h, n in homes}
    state_dir = world.settings.state_dir
    data = status_file.read_status(state_dir)
    if data:
        # Hand-edited or damaged, field by field: what has the wrong type is dropped (said once), the rest
        # is used; it never stops the daemon.
        saved, bad = status_file.saved_gateways(data)
        for s in saved:
            if s.home in wanted:
                w = watch_for(s.home, wanted[s.home])
                w.restore(s.restarts, s.history, s.gave_up)
        if bad:
            world.emit("WARN", f"{state_dir / status_file.STATE_FILE}: ignored {', '.join(sorted(bad))} (not of "
                               "the expected type); still watching")
    _resume_pending(world, wanted, watch_for)


def _resume_pending(world: World, wanted: dict[Path, str | None], watch_for: WatchFor) -> None:
    path = world.settings.state_dir / status_file.PENDING_FILE
    data, why = locks.read_own_json(path)
    if data is None:
        if why != "missing":
            world.emit("WARN", f"ignoring {path}: {why}; nothing resumed, no signal sent")
        return
    now_wall, now_mono = world.wall(), world.mono()
    for home_text, p in data.items():
        home = Path(home_text)
        if home not in wanted or not isinstance(p, dict):
            continue
        try:
            r = Restart.from_dict(p, lambda wall: now_mono + (wall - now_wall), grace=world.cfg.grace,
                                  start_timeout=world.cfg.start_timeout)
        except (KeyError, TypeError, ValueError, OverflowError):
            world.emit("WARN", f"ignoring an unreadable entry in {path}; no signal sent", str(home))
            continue
        problem, record = _problem(world, home, p, r)
        if problem:
            world.emit("WARN", f"not resuming the restart of PID {r.old.pid} recorded in {path}: {problem}; "
                               "dropped, no signal sent", wanted[home] or str(home))
            continue
        w = watch_for(home, wanted[home])
        w.count_restart(r.started_wall)
        folder = Path(str(p.get("incident", "")))
        inc = incidents.load(folder, str(p.get("signature", "")), record)  # as checked, not read again
        if inc is not None:
            if not inc.record.get("restart") and isinstance(p.get("restart_record"), dict):
                inc.record["restart"] = p["restart_record"]
            life = IncidentLife(world, w.name, w.home, inc, Stage.RESTARTING)
            w.open_incident(life)
            life.note("the watchdog restarted; carrying on with this restart")
        machine = exits.machine_for(world, w, r)
        # Killed before state.json caught up with the restart: its history entry is rebuilt here.
        w.restarting(machine, None if any(h.get("incident") == folder.name for h in w.history) else {
            "at": iso(r.started_wall), "pid": r.old.pid, "signature": str(p.get("signature", "")),
            "manager": r.manager, "result": "restarting", "incident": folder.name})
        machine.resume()
        world.emit("RESUME", f"a restart of PID {r.old.pid} was in progress when the watchdog stopped: "
                             f"carrying it on ({r.phase.value})", w.name)


def _problem(world: World, home: Path, p: dict[str, Any], r: Restart) -> tuple[str | None, dict[str, Any] | None]:
    """(why a pending.json entry must not be resumed, or None; its incident record as checked): written by
    this state dir's daemons (the family token of the lock), about an incident of this state dir on that
    same process, and the process, if still alive, still proven to be this home's gateway."""
    old = r.old
    if not world.family or p.get("family") != world.family:
        return "it was not written by a hermes-watchdog of this state dir", None
    if not old.cmdline or old.uid is None or not processes.looks_like_gateway(old.cmdline):
        return "the process it names was not recorded as a Hermes gateway", None
    folder = Path(str(p.get("incident") or ""))
    if not p.get("incident") or folder.parent != incidents.incidents_dir(world.settings.state_dir):
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
