"""What the daemon tells the outside about itself: state.json (for ``status``, schema in
record/status_file.py) and the Prometheus metrics, both built from the watches."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from hermes_watchdog import diagnosis
from hermes_watchdog.act.restart_state import progress
from hermes_watchdog.daemon.watch import WATCHING, Watch
from hermes_watchdog.daemon.world import World
from hermes_watchdog.diagnosis import rounded
from hermes_watchdog.facts.threads import summary as workers_summary
from hermes_watchdog.judge import budget, known_issues
from hermes_watchdog.record import incidents, metrics, status_file
from hermes_watchdog.record.exporter import Exporter
from hermes_watchdog.timefmt import iso

STATUS_REFRESH = 30.0  # seconds: state.json is rewritten on any change, else at least this often
REFRESH_INTERVALS = 6  # ... and at least every this many intervals when sampling fast


class Status:
    def __init__(self, world: World, watches: dict[Path, Watch], exporter: Exporter, started: float,
                 channels: Callable[[], list[str]]) -> None:
        self.world, self.watches, self.exporter, self.started = world, watches, exporter, started
        self.channels = channels  # the notification channels' names (the dispatcher starts with the loop)
        self._key: str | None = None
        self._written = 0.0  # monotonic
        self._history_key: str | None = None
        self._metrics_problem: str | None = None
        self._config_public = diagnosis.public(world.cfg.summary())  # redacted once: it never changes
        self._own_create_time = _own_create_time()  # nor does this

    def as_dict(self) -> dict[str, Any]:
        world, cfg = self.world, self.world.cfg
        gws = []
        for w in self.watches.values():
            cpu = w.cpu_now()
            last_state = w.window.states[-1][1].state if w.window.states else None
            decision = budget.decide(w.restarts, time.time(), world.settings.budget)
            gws.append({
                "home": str(w.home), "profile": w.profile, "name": w.name, "pid": w.ident.pid if w.ident else None,
                "found": w.found_how, "phase": w.phase,
                "cpu_now": round(cpu.cores, 3) if cpu else None,
                # Run-queue demand (Linux): what the gateway wants, whether or not a busy host gives it a core.
                "cpu_demand": rounded(cpu.demand) if cpu else None, "measure": cpu.measure if cpu else None,
                "hot_thread": ({"tid": cpu.hot.tid, "cores": round(cpu.hot.cores, 3), "demand": rounded(cpu.hot.demand),
                                "on_cpu": rounded(cpu.hot.on_cpu), "waiting": rounded(cpu.hot.waiting)}
                               if cpu and cpu.hot else None),
                "rss_bytes": w.window.samples[-1].rss if w.window.samples else None,
                "loop_off_selector_seconds": _off_selector(w),
                "deaf": _deaf(w) if w.ident else None,  # descriptors, CLOSE_WAIT, RSS growth, agent workers
                "gateway_state": last_state.gateway_state if last_state else None,
                "platforms": {p.name: p.state for p in last_state.platforms} if last_state else {},
                "verdict": w.verdict.to_dict() if w.verdict else None,
                "verdict_since": iso(time.time() - (time.monotonic() - w.verdict_since))
                if w.verdict and w.verdict_since else None,
                "incident": str(w.incident.folder) if w.incident else None,
                **({"restart": {"phase": w.machine.r.phase.value,
                                "seconds": round(time.monotonic() - w.machine.r.started, 1),
                                "progress": progress(w.machine.r, time.monotonic())}}
                   if w.machine is not None and not w.machine.r.phase.done else {}),
                "known_issues": [str(k["text"]) for k in known_issues.from_record(w.incident.record)]
                if w.incident else [],
                **({"heartbeat": w.window.heartbeat.to_dict()} if w.window.heartbeat else {}),
                **({"release": w.release.to_dict()} if w.release else {}),
                "restarts": [round(t, 3) for t in w.restarts if time.time() - t < cfg.restart_window * 4],
                "restart_history": w.history[-20:],
                **({"gave_up": w.gave_up} if w.gave_up else {}),
                "budget": {"used": decision.used, "max": cfg.max_restarts, "remaining": decision.remaining,
                           "window_seconds": cfg.restart_window, "exhausted": decision.exhausted},
            })
        return {
            "daemon": {"pid": os.getpid(), "create_time": self._own_create_time, "started_at": iso(self.started),
                       "dry_run": cfg.dry_run, "config": self._config_public, "metrics_url": self.exporter.url,
                       "notify": self.channels()},
            "updated_at": iso(time.time()),
            "gateways": gws,
            "incidents": [str(p) for p in incidents.latest(world.settings.state_dir, 10)],
            "problems": [world.problem] if world.problem else [],
        }

    def _keys(self) -> tuple[str, str]:
        """What state.json says that matters, cheaply: (everything but the CPU figures, the restart history).
        The tick costs little when nothing changed; the history is what the budget needs after a crash."""
        gws, hist = [], []
        for w in self.watches.values():
            last = w.window.states[-1][1].state if w.window.states else None
            gws.append((str(w.home), w.ident.pid if w.ident else None, w.phase,
                        w.verdict.signature if w.verdict else None, str(w.incident.folder) if w.incident else None,
                        last.gateway_state if last else None,
                        [(p.name, p.state) for p in last.platforms] if last else None,
                        w.window.heartbeat.stale if w.window.heartbeat else None,
                        w.release.describe() if w.release else None))
            hist.append((str(w.home), w.restarts, w.history[-20:], w.gave_up))
        history = json.dumps(hist, default=str)
        return json.dumps([gws, self.world.problem, self.exporter.url], default=str) + history, history

    def write(self, force: bool = False) -> None:
        world = self.world
        state_dir = world.settings.state_dir
        key, history = self._keys()
        now = time.monotonic()
        # At least every STATUS_REFRESH s, and every few intervals when sampling fast: its updated_at is
        # the daemon's clock for whoever reads the file (status, tests). An unchanged rewrite (redact, encode,
        # fsync'd rename) was half the daemon's CPU at defaults when it came every 10 s (bench/overhead.py).
        refresh = min(STATUS_REFRESH, REFRESH_INTERVALS * world.cfg.interval)
        if not force and key == self._key and now - self._written < refresh:
            return
        durable = force or history != self._history_key
        try:
            status_file.write_status(state_dir, diagnosis.public(self.as_dict()), durable)
            self._key, self._written, self._history_key = key, now, history
        except OSError as exc:
            world.write_problem(f"cannot write {state_dir / status_file.STATE_FILE}: {exc.strerror or exc}")
            return
        if world.problem and world.problem.startswith("cannot write"):
            world.emit("WARN", f"state dir {state_dir} is writable again")
            world.problem = None

    def metrics_snapshot(self) -> metrics.Snapshot:
        gws = []
        now = time.time()
        for w in self.watches.values():
            cpu = w.cpu_now()
            seen = w.window.states[-1][1] if w.window.states else None
            platforms = {p.name: p.connected for p in seen.state.platforms} if seen and seen.matches else {}
            gws.append(metrics.GatewayMetrics(
                profile=w.name, up=w.ident is not None and w.phase == WATCHING,
                cpu_cores=cpu.cores if cpu else None, hot_thread_cores=cpu.hot.cores if cpu and cpu.hot else None,
                cpu_demand=cpu.demand if cpu else None, hot_thread_demand=cpu.hot_demand if cpu else None,
                platforms=platforms, verdict=w.verdict.signature if w.verdict else None,
                heartbeat_age=w.window.heartbeat.age if w.window.heartbeat else None,
                budget_remaining=budget.decide(w.restarts, now, self.world.settings.budget).remaining,
                restarts=dict(w.counts.restarts), incidents=dict(w.counts.incidents),
                stack_captures=dict(w.counts.stacks),
                rss_bytes=w.window.samples[-1].rss if w.window.samples else None,
                loop_off_selector=_off_selector(w), deaf=_deaf(w) if w.ident else {}))
        return metrics.Snapshot(tuple(gws), now, self.started)

    def publish_metrics(self) -> None:
        if not self.exporter.enabled:
            return
        problem = self.exporter.update(self.metrics_snapshot())
        if problem != self._metrics_problem:
            if problem:
                self.world.emit("WARN", f"{problem}; still watching")
            self._metrics_problem = problem


def _own_create_time() -> float | None:
    try:
        return psutil.Process().create_time()
    except psutil.Error:
        return None


def _off_selector(w: Watch) -> float | None:
    """Seconds of the newest stretch without the selector; 0 once a usable burst saw the loop turn."""
    loop = (w.verdict.loop or {}) if w.verdict else {}
    if not loop.get("usable_bursts"):
        return None
    return float(loop.get("off_selector_seconds") or 0.0)


def _deaf(w: Watch) -> dict[str, Any]:
    return {**w.window.deaf.summary(), **workers_summary(list(w.window.workers))}
