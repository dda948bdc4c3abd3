"""A watched gateway lost (it exited, or its files name another): said once, with how it died when
Hermes' own lifecycle ledger says the death was not clean."""

from __future__ import annotations

from hermes_watchdog.daemon.watch import Watch
from hermes_watchdog.daemon.world import World
from hermes_watchdog.judge.death import unclean_death
from hermes_watchdog.observe import heartbeat, upstream


def lost(world: World, w: Watch, why: str) -> None:
    if w.ident is not None:
        world.emit("LOST", f"gateway PID {w.ident.pid} lost: {why}", w.name)
        if not world.alive(w.ident):
            death(world, w, w.ident.pid)  # now, before a relaunched gateway rewrites the ledger
    w.lose()


def death(world: World, w: Watch, pid: int | None) -> str | None:
    """A gateway PID that is gone while Hermes' lifecycle ledger still gives it a live phase: an unclean
    death, said once per PID with the last memory sample of its heartbeat (judge/death.py)."""
    if pid is None:
        return None
    if w.said.death is not None and w.said.death[0] == pid:
        return w.said.death[1]
    up, beat = upstream.read(w.home), heartbeat.read(w.home)
    mem = beat.mem if beat is not None and beat.pid == pid else None
    text = unclean_death(up.lifecycle_phase, up.lifecycle_pid, pid, False, mem)
    w.said.death = (pid, text)
    if text:
        world.emit("GONE", text, w.name)
    return text
