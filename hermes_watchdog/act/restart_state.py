"""A restart's state: its named phases, the record pending.json keeps so a killed daemon carries it on, and
where it stands in words. Data and pure functions; the machine that moves it is act/restart.py."""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hermes_watchdog.facts.identity import Identity

ORIGIN_WATCHDOG = "watchdog"  # the watchdog asked for the restart
ORIGIN_HERMES = "hermes"  # Hermes' own watchdog made the gateway exit for one (exit 75, restart_requested)
FINAL_SIGNALS = (signal.SIGKILL, signal.SIGABRT)  # what may end a process that outlived its grace


class Phase(Enum):
    STOPPING = "stopping"  # the manager (or SIGTERM) was asked; waiting for the old process to go
    KILLED = "killed"  # still alive after the grace: SIGKILL sent (or refused), waiting for it to go
    VERIFYING = "verifying"  # the old process is gone; waiting for a new gateway, running and calm
    STARTING = "starting"  # nothing relaunched it after Hermes' own exit: the manager was asked to start it
    RESTARTED = "restarted"  # done: the new gateway is verified
    FAILED = "restart-failed"  # done: no verified gateway in time, or the old one would not go

    @property
    def done(self) -> bool:
        return self in {Phase.RESTARTED, Phase.FAILED}

    @property
    def stopping(self) -> bool:
        return self in {Phase.STOPPING, Phase.KILLED}

    @property
    def waiting_new(self) -> bool:
        return self in {Phase.VERIFYING, Phase.STARTING}


@dataclass
class Restart:
    """One restart in flight: what pending.json keeps so a killed daemon can carry it on."""

    old: Identity
    manager: str
    started: float  # monotonic
    started_wall: float  # epoch
    grace: float
    start_timeout: float
    kill_signal: signal.Signals = signal.SIGKILL
    phase: Phase = Phase.STOPPING
    kill_at: float = 0.0  # monotonic: SIGKILL if the old process is still there
    stop_until: float = 0.0  # monotonic: give up if the old process survives even SIGKILL this long
    verify_until: float = 0.0  # monotonic: the new gateway must be verified by then
    killed: bool = False  # SIGKILL (or kill_signal) was actually sent
    stop_asked: bool = False  # the manager took the request or SIGTERM was sent: the process is being stopped
    signals: list[str] = field(default_factory=list)
    new: Identity | None = None
    detail: str = ""  # why it ended
    origin: str = ORIGIN_WATCHDOG
    started_it: bool = False  # after Hermes' own exit: the watchdog started the gateway itself
    held: str = ""  # the last reason a start was held back, said once

    def to_dict(self, mono_to_wall: Callable[[float], float]) -> dict[str, Any]:
        return {"old": self.old.to_dict(), "manager": self.manager, "phase": self.phase.value,
                "started_wall": self.started_wall, "grace": self.grace, "start_timeout": self.start_timeout,
                "kill_signal": self.kill_signal.name, "kill_at_wall": mono_to_wall(self.kill_at),
                "stop_until_wall": mono_to_wall(self.stop_until),
                "verify_until_wall": mono_to_wall(self.verify_until) if self.verify_until else None,
                "killed": self.killed, "signals": list(self.signals), "stop_asked": self.stop_asked,
                "origin": self.origin, "started_it": self.started_it}

    def final_signal(self) -> signal.Signals:
        """What ends a process still alive after the grace. SIGABRT (a last stack) only ever goes to a process
        already being stopped (the manager took the request, or SIGTERM was sent): never as a diagnostic of a
        process nobody asked to stop. Anything else is SIGKILL."""
        if self.kill_signal == signal.SIGABRT and self.stop_asked:
            return signal.SIGABRT
        return signal.SIGKILL

    @classmethod
    def from_dict(cls, data: dict[str, Any], wall_to_mono: Callable[[float], float], *, grace: float,
                  start_timeout: float) -> Restart:
        """Raises KeyError/TypeError/ValueError on a record that is not one of ours. ``grace`` and
        ``start_timeout`` (the config's) serve a record written before they were kept in it."""
        phase = Phase(str(data["phase"]))
        if phase.done:
            raise ValueError("a finished restart is not resumed")
        started_wall = float(data["started_wall"])
        grace = float(data.get("grace") or grace)
        start_timeout = float(data.get("start_timeout") or start_timeout)
        kill_at = wall_to_mono(float(data["kill_at_wall"]))
        stop_until = data.get("stop_until_wall")
        r = cls(old=Identity.from_dict(data["old"]), manager=str(data["manager"]),
                started=wall_to_mono(started_wall), started_wall=started_wall, grace=grace,
                start_timeout=start_timeout, kill_signal=signal.Signals[str(data.get("kill_signal") or "SIGKILL")],
                phase=phase, kill_at=kill_at,
                stop_until=wall_to_mono(float(stop_until)) if stop_until is not None else kill_at + start_timeout,
                killed=bool(data.get("killed")), signals=[str(s) for s in data.get("signals") or []],
                stop_asked=data.get("stop_asked") is True,  # a record without it: SIGKILL, never SIGABRT
                origin=ORIGIN_HERMES if data.get("origin") == ORIGIN_HERMES else ORIGIN_WATCHDOG,
                started_it=bool(data.get("started_it")))
        if r.kill_signal not in FINAL_SIGNALS:
            r.kill_signal = signal.SIGKILL
        if data.get("verify_until_wall") is not None:
            r.verify_until = wall_to_mono(float(data["verify_until_wall"]))
        return r


def progress(r: Restart, now: float) -> str:
    """Where a restart in flight stands, in words, for ``status`` and the waiting log line. Pure."""
    pid, ago = r.old.pid, max(0.0, now - r.started)
    if r.phase is Phase.STOPPING:
        return (f"asked {r.manager} to stop PID {pid} {ago:.0f} s ago; SIGKILL in {max(0.0, r.kill_at - now):.0f} s "
                "if it is still there")
    if r.phase is Phase.KILLED:
        return f"PID {pid} outlived its grace: killed {max(0.0, now - r.kill_at):.0f} s ago, waiting for it to go"
    left = max(0.0, r.verify_until - now)
    if r.phase is Phase.VERIFYING and r.new is not None:
        return f"new gateway PID {r.new.pid} found; verifying it runs calm ({left:.0f} s left of --start-timeout)"
    if r.phase is Phase.VERIFYING:
        who = "Hermes' manager" if r.origin == ORIGIN_HERMES else r.manager
        return (f"PID {pid} is gone ({ago:.0f} s since the restart began); waiting for {who} to relaunch it "
                f"({left:.0f} s left of --start-timeout)")
    if r.phase is Phase.STARTING:
        return f"asked {r.manager} to start the gateway; waiting for it ({left:.0f} s left of --start-timeout)"
    return f"{r.phase.value}: {r.detail}" if r.detail else r.phase.value
