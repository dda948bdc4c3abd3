"""The watchdog loop: observe -> judge -> act -> record, for each watched gateway.

Each gateway has a ``Watch``: its identity, a sliding window of CPU samples and state reads, the current
verdict and since when, its open incident, and its restart history. A restart is a small state machine
spread over ticks (stopping -> verifying) so a slow gateway never blocks the loop or a stop request.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
import signal
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from hermes_watchdog import (
    budget,
    diagnosis,
    gateway,
    heartbeat,
    incidents,
    locks,
    logs,
    metrics,
    notifications,
    policy,
    private,
    processes,
    pyspy,
    sampler,
)
from hermes_watchdog.config import Config
from hermes_watchdog.cpu import CpuSnapshot, CpuUsage, usage
from hermes_watchdog.delivery import Dispatcher
from hermes_watchdog.errors import UserError
from hermes_watchdog.events import EventLog
from hermes_watchdog.exporter import Exporter
from hermes_watchdog.processes import Identity
from hermes_watchdog.sd_notify import Notifier
from hermes_watchdog.services import Target, select
from hermes_watchdog.services.base import guarded_signal
from hermes_watchdog.signatures import (
    GATEWAY_GONE,
    HEALTHY,
    UNKNOWN,
    StateSeen,
    Thresholds,
    Verdict,
    judge,
)
from hermes_watchdog.stacks import StackAnalysis, render_text
from hermes_watchdog.statefile import PID_FILE, read_json_object, read_state
from hermes_watchdog.statefile import STATE_FILE as GATEWAY_STATE_FILE
from hermes_watchdog.timefmt import iso

WATCHING, STOPPING, VERIFYING = "watching", "stopping", "verifying"
BUSY_TICK = 0.25  # seconds between ticks while a restart is in progress
STATE_FILE = "state.json"
STATUS_REFRESH = 15.0  # seconds: state.json is rewritten on any change, else at least this often
PENDING_FILE = "pending.json"  # restarts in flight, unredacted identities: private, for resuming only
HOME_LOCK = "watchdog.home.lock"  # in HERMES_HOME: one watchdog acts on a home, whatever its state dir


@dataclass
class Restart:
    old: Identity
    manager: str
    started: float  # monotonic
    started_wall: float
    kill_at: float  # monotonic: SIGKILL if the old process is still there
    verify_until: float = 0.0
    killed: bool = False
    new: Identity | None = None
    new_snaps: list[CpuSnapshot] = field(default_factory=list)
    new_state_running: bool = False


@dataclass
class Watch:
    home: Path
    profile: str | None
    label: str = ""  # profile name, "default" for the first home, else the home's path: unique per daemon
    ident: Identity | None = None
    found_how: str = ""
    snaps: deque[CpuSnapshot] = field(default_factory=deque)
    states: deque[tuple[float, StateSeen]] = field(default_factory=deque)
    verdict: Verdict | None = None
    verdict_since: float = 0.0
    incident: incidents.Incident | None = None
    acted: bool = False  # the open incident has had its action (restart, dry-run or alert)
    restarts: list[float] = field(default_factory=list)  # epoch seconds, persisted in state.json
    history: list[dict[str, Any]] = field(default_factory=list)
    gave_up_said: bool = False
    # The give-up in force, persisted in state.json so a restarted daemon carries on with that incident
    # instead of opening (and announcing) a new one: {pid, create_time, signature, incident (folder name)}.
    gave_up: dict[str, Any] | None = None
    cooldown_said: bool = False
    gone_said: bool = False
    state_problem: str | None = None  # last state-file problem reported, so it is said once
    phase: str = WATCHING
    restart: Restart | None = None
    next_sample: float = 0.0
    windows_seen: float = 0.0  # monotonic time the current gateway was first sampled
    heartbeat: heartbeat.HeartbeatSeen | None = None  # Hermes >= 0.19 only
    heartbeat_note: str | None = None  # last heartbeat remark said, so it is said once
    notified: bool = False  # the open incident's "incident" message has gone out
    restarts_by: Counter[tuple[str, str]] = field(default_factory=Counter)  # (signature, result), for metrics
    incidents_by: Counter[str] = field(default_factory=Counter)
    stacks_by: Counter[str] = field(default_factory=Counter)

    @property
    def name(self) -> str:
        return self.label or self.profile or "default"

    def cpu_now(self) -> CpuUsage | None:
        """CPU over the last sample interval (what status and the metrics show)."""
        return usage(list(self.snaps)[-2:]) if len(self.snaps) >= 2 else None

    def reset_window(self) -> None:
        self.snaps.clear()
        self.states.clear()
        self.verdict = None
        self.verdict_since = 0.0


class StopRequested(Exception):
    pass


class Daemon:
    def __init__(self, cfg: Config, log: EventLog | None = None, stop: threading.Event | None = None,
                 until: Callable[[Daemon], bool] | None = None) -> None:
        self.cfg = cfg
        self.until = until  # ends the loop when true (the demo stops after one verified restart)
        self.log = log or EventLog()
        self.stop = stop or threading.Event()
        self.state_dir = cfg.resolved_state_dir
        self.th = Thresholds(cpu=cfg.cpu_threshold, stuck_after=cfg.stuck_after)
        self.rules = policy.Rules(cfg.window, cfg.interval, cfg.min_confidence, cfg.pegged_after, cfg.stuck_after,
                                  cfg.stuck_action, cfg.frozen_action)
        self.budget = budget.Budget(cfg.max_restarts, cfg.restart_window, cfg.cooldown)
        self.watches: dict[Path, Watch] = {}
        self.started = time.time()
        self._lock_fh: Any = None
        self.family = ""  # set with the lock: see acquire_lock
        self._home_locks: dict[Path, locks.Lock] = {}
        self._home_refused: set[Path] = set()  # homes another watchdog holds, said once
        self._write_problem: str | None = None
        self.incident_count = 0
        self.notifier = Notifier()
        self.exporter = Exporter(cfg.metrics_port, cfg.metrics_host, cfg.metrics_textfile)
        self._metrics_problem: str | None = None
        self.dispatch: Dispatcher | None = None  # started in run(): its threads live as long as the loop
        self._status_key: str | None = None
        self._ticked = False
        self._status_written = 0.0  # monotonic
        self._history_key: str | None = None
        self._config_public = diagnosis.public(cfg.summary())  # redacted once: it never changes
        self._missing_homes: set[Path] = set()  # homes said to be missing, so it is said once

    # ---------------------------------------------------------------- lifecycle
    def acquire_lock(self) -> Path:
        """One daemon per state dir, and one per Hermes home: two daemons with different state dirs must
        not both restart the same gateway on separate budgets. The state dir lock lives in the state dir,
        or, when that cannot be written, in a per-user runtime folder keyed by the state dir's path; a
        home's lock is HERMES_HOME/watchdog.home.lock (homes that appear later are locked when first seen)."""
        candidates = [self.state_dir / "watchdog.lock"]
        digest = hashlib.sha256(str(self.state_dir.resolve()).encode()).hexdigest()[:16]
        runtime = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"hermes-watchdog-{os.getuid()}"
        candidates.append(runtime / f"{digest}.lock")
        last_error = ""
        for path in candidates:
            try:
                private.make_dir(path.parent)
                lock = locks.take(path, 0o600)
            except locks.Held as held:
                raise UserError(f"another hermes-watchdog (PID {held.holder}) is already running for state dir "
                                f"{self.state_dir}") from None
            except locks.LockError as exc:
                raise UserError(str(exc)) from None
            except OSError as exc:
                last_error = f"{path}: {exc.strerror or exc}"
                continue
            # The family token ties pending.json to the daemons of this state dir: kept from the previous
            # run's lock (when that file is ours), so only a restart this family started is ever resumed.
            self.family = locks.family_of(lock.previous) or secrets.token_hex(16)
            problem = lock.write(f"{os.getpid()} {self.family}\n")
            if problem:  # the PID in the lock is for messages; a full disk may refuse it
                self._say_write_problem(problem)
            self._lock_fh = lock
            if path != candidates[0]:
                self._say_write_problem(f"state dir {self.state_dir} is not writable; lock kept in {path}")
            break
        else:
            raise UserError(f"cannot create a lock file for state dir {self.state_dir}: {last_error}")
        for home in self.cfg.homes:
            self._hold_home(home, at_start=True)
        return path

    def _hold_home(self, home: Path, at_start: bool = False) -> bool:
        """Hold this home's lock (taken once, kept). False, said once, when another watchdog holds it; at
        start that is an error."""
        key = home.expanduser()
        if key in self._home_locks:
            return True
        path = key / HOME_LOCK
        try:
            # 0644: a watchdog of another user (root, or the home's owner) must be able to open it to lock.
            lock = locks.take(path, 0o644)
        except FileNotFoundError:
            return False  # no home (yet): nothing to watch there
        except locks.Held as held:
            why = f"another hermes-watchdog (PID {held.holder}) is already watching {key}"
        except locks.LockError as exc:
            why = str(exc)
        except OSError as exc:
            why, at_start = f"cannot lock {path}: {exc.strerror or exc}", False
        else:
            lock.write(f"{os.getpid()}\n")
            self._home_locks[key] = lock
            self._home_refused.discard(key)
            return True
        if at_start:
            raise UserError(why)
        if key not in self._home_refused:
            self._home_refused.add(key)
            self.log.emit("WARN", f"{why}; not acting on it here")
        return False

    def install_signal_handlers(self) -> None:
        def _stop(signum: int, frame: object) -> None:
            self.stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)

    def load_history(self, homes: list[tuple[Path, str | None]]) -> None:
        """Restart history survives a daemon restart, so the budget holds across crashes."""
        data = read_status(self.state_dir)
        if not data:
            return
        wanted = {h.expanduser(): n for h, n in homes}
        # Hand-edited or damaged, field by field: what has the wrong type is dropped (said once), the rest
        # is used; it never stops the daemon.
        bad: set[str] = set()
        gateways = data.get("gateways", [])
        if not isinstance(gateways, list):
            bad.add("gateways")
            gateways = []
        for g in gateways:
            saved = saved_gateway(g, bad)
            if saved is None or saved.home not in wanted:
                continue
            w = self._watch_for(saved.home, wanted[saved.home])
            w.restarts, w.history, w.gave_up = saved.restarts, saved.history, saved.gave_up
        if bad:
            self.log.emit("WARN", f"{self.state_dir / STATE_FILE}: ignored {', '.join(sorted(bad))} (not of the "
                                  "expected type); still watching")
        self._resume_pending(wanted)

    def _resume_pending(self, wanted: dict[Path, str | None]) -> None:
        """A daemon killed mid-restart left its restart in pending.json: carry it on (escalate, verify)
        instead of opening a second incident and restarting the same gateway again. Only what this
        state dir's daemons wrote is resumed, and only a process still proven to be the home's gateway is
        ever signalled: anything else is dropped, said in one line."""
        path = self.state_dir / PENDING_FILE
        data, why = locks.read_own_json(path)
        if data is None:
            if why != "missing":
                self.log.emit("WARN", f"ignoring {path}: {why}; nothing resumed, no signal sent")
            return
        now_wall, now_mono = time.time(), time.monotonic()
        for home_text, p in data.items():
            home = Path(home_text)
            if home not in wanted or not isinstance(p, dict):
                continue
            try:
                old = Identity.from_dict(p["old"])
                started_wall = float(p["started_wall"])
                r = Restart(old=old, manager=str(p["manager"]), started=now_mono - (now_wall - started_wall),
                            started_wall=started_wall, kill_at=now_mono + float(p["kill_at_wall"]) - now_wall,
                            verify_until=now_mono + float(p.get("verify_until_wall") or 0) - now_wall,
                            killed=bool(p.get("killed")))
            except (KeyError, TypeError, ValueError, OverflowError):
                self.log.emit("WARN", f"ignoring an unreadable entry in {path}; no signal sent", str(home))
                continue
            problem = self._pending_problem(home, p, old)
            if problem:
                self.log.emit("WARN", f"not resuming the restart of PID {old.pid} recorded in {path}: {problem}; "
                                      "dropped, no signal sent", wanted[home] or str(home))
                continue
            w = self._watch_for(home, wanted[home])
            if not any(abs(t - started_wall) < 1e-3 for t in w.restarts):
                w.restarts.append(started_wall)
            w.restart, w.acted = r, True
            w.phase = VERIFYING if p.get("phase") == VERIFYING else STOPPING
            if w.phase == VERIFYING and r.verify_until <= now_mono:
                r.verify_until = now_mono + self.cfg.start_timeout
            w.incident = self._reload_incident(Path(str(p.get("incident", ""))), str(p.get("signature", "")))
            if w.incident is not None and not w.incident.record.get("restart") and p.get("restart_record"):
                w.incident.record["restart"] = p["restart_record"]
                w.incident.record["result"] = "restarting"
            folder_name = Path(str(p.get("incident", ""))).name
            if not any(h.get("incident") == folder_name for h in w.history):
                # Killed before state.json caught up with the restart: its history entry is rebuilt here.
                w.history.append({"at": iso(started_wall), "pid": old.pid,
                                  "signature": str(p.get("signature", "")), "manager": r.manager,
                                  "result": "restarting", "incident": folder_name})
            self.log.emit("RESUME", f"a restart of PID {old.pid} was in progress when the watchdog stopped: "
                                    f"carrying it on ({w.phase})", w.name)

    def _pending_problem(self, home: Path, p: dict[str, Any], old: Identity) -> str | None:
        """Why a pending.json entry must not be resumed, or None: written by this state dir's daemons
        (the family token of the lock), about an incident of this state dir on that same process, and
        the process, if still alive, still proven to be this home's gateway."""
        if not self.family or p.get("family") != self.family:
            return "it was not written by a hermes-watchdog of this state dir"
        if not old.cmdline or old.uid is None or not processes.looks_like_gateway(old.cmdline):
            return "the process it names was not recorded as a Hermes gateway"
        folder = Path(str(p.get("incident") or ""))
        if not p.get("incident") or folder.parent != incidents.incidents_dir(self.state_dir):
            return "it names no incident of this state dir"
        rec, why = locks.read_own_json(folder / "incident.json")
        if rec is None:
            return f"its incident {folder.name} cannot be used ({why})"
        ident = rec.get("identity") if isinstance(rec.get("identity"), dict) else {}
        created = ident.get("create_time")
        if rec.get("pid") != old.pid or not isinstance(created, int | float) or \
                abs(created - old.create_time) > 0.05 or rec.get("signature") != p.get("signature"):
            return f"its incident {folder.name} is about another process"
        if processes.same_process(old)[0]:  # still alive: it must still prove to be this home's gateway
            ok, why = gateway.reprove(old, home)
            if not ok:
                return why
        return None

    def _reload_incident(self, folder: Path, signature: str) -> incidents.Incident | None:
        read = read_json_object(folder / "incident.json")
        if not read.ok or read.data is None:
            return None

        def text(name: str) -> str:
            try:
                return (folder / name).read_text()
            except OSError:
                return ""

        inc = incidents.Incident(folder, signature or str(read.data.get("signature")),
                                 time.time(), read.data, text("stack.txt"), text("logs-tail.txt"))
        inc.timeline = [str(t) for t in read.data.get("timeline", [])]
        inc.note("the watchdog restarted; carrying on with this restart")
        return inc

    def _save_pending(self) -> None:
        now_wall, now_mono = time.time(), time.monotonic()
        pending = {}
        for w in self.watches.values():
            r = w.restart
            if r is None or w.phase == WATCHING:
                continue
            pending[str(w.home)] = {
                "family": self.family,  # only this state dir's daemons resume it (see acquire_lock)
                "old": r.old.to_dict(), "manager": r.manager, "started_wall": r.started_wall,
                "kill_at_wall": now_wall + (r.kill_at - now_mono), "killed": r.killed, "phase": w.phase,
                "verify_until_wall": now_wall + (r.verify_until - now_mono) if w.phase == VERIFYING else None,
                "incident": str(w.incident.folder) if w.incident else "",
                "signature": w.incident.signature if w.incident else "",
                # Also here: a kill between this write and the incident's own save must not lose it.
                "restart_record": w.incident.record.get("restart") if w.incident else None,
            }
        path = self.state_dir / PENDING_FILE
        try:
            if pending:
                private.make_dir(self.state_dir)
                private.write_json(path, pending)
            else:
                path.unlink(missing_ok=True)
        except OSError as exc:
            self._say_write_problem(f"cannot write {path}: {exc.strerror or exc}")

    def homes(self) -> list[tuple[Path, str | None]]:
        if self.cfg.all_profiles:
            root = self.cfg.homes[0]
            found = [(root, None)] + [(p, name) for name, p in gateway.profile_homes(root)]
            # A profile counts once it has a gateway file; the default home is always watched.
            found = [(h, n) for h, n in found if n is None or (h / PID_FILE).exists()
                     or (h / GATEWAY_STATE_FILE).exists()]
        else:
            found = [(h, gateway.profile_of(h)) for h in self.cfg.homes]
        # A home that does not exist is said once and waited for: never created, never "watched".
        return [(h, n) for h, n in found if self._home_exists(h)]

    def _home_exists(self, home: Path) -> bool:
        key = home.expanduser()
        if key.is_dir():
            self._missing_homes.discard(key)
            return True
        if key not in self._missing_homes:
            self._missing_homes.add(key)
            self.log.emit("WARN", f"no Hermes home at {home}: waiting for it")
        return False

    def _wait_for_home(self) -> bool:
        """The default state dir (lock, state.json) lives in the first home: until that home exists,
        neither is created, so a mistyped --hermes-home never becomes an empty home. False: asked to stop."""
        home = self.cfg.homes[0]
        if self.cfg.state_dir is not None or self._home_exists(home):
            return True
        self.notifier.ready(f"waiting for {home}")
        while not home.expanduser().is_dir():
            self.notifier.ping_if_due()
            ping_in = self.notifier.seconds_to_ping()
            if self.stop.wait(self.cfg.interval if ping_in is None else max(0.05, min(self.cfg.interval, ping_in))):
                self.log.emit("STOP", "stopped")
                return False
        return True

    def _watch_for(self, home: Path, profile: str | None) -> Watch:
        key = home.expanduser()
        if key not in self.watches:
            first = self.cfg.homes[0].expanduser()
            label = profile or ("default" if key == first else str(key).replace(str(Path.home()), "~", 1))
            self.watches[key] = Watch(key, profile, label)
        return self.watches[key]

    def run(self) -> int:
        if not self._wait_for_home():
            return 0
        self.acquire_lock()
        self.exporter.start()
        self.dispatch = Dispatcher.from_config(self.cfg.notify_command, self.cfg.notify_webhook,
                                               self.cfg.notify_desktop, self.cfg.notify_timeout,
                                               self.cfg.notify_retries, lambda text: self.log.emit("WARN", text))
        homes = self.homes()  # once: with --all-profiles it is a scan of the profiles folder
        self.load_history(homes)
        self.log.emit("START", f"watching {', '.join(str(h) for h, _ in homes) or 'no Hermes home yet'}: window "
                               f"{self.cfg.window:g} s, interval {self.cfg.interval:g} s, CPU >= "
                               f"{self.cfg.cpu_threshold:g} core, restart with {self.cfg.restart_with}, "
                               f"budget {self.cfg.max_restarts} per {self.cfg.restart_window:g} s"
                               + (" (dry run)" if self.cfg.dry_run else ""))
        if self.exporter.url:
            self.log.emit("INFO", f"metrics on {self.exporter.url}")
        if self.dispatch.channels:
            self.log.emit("INFO", "notifications by " + ", ".join(c.name for c in self.dispatch.channels))
        started = time.monotonic()
        self.notifier.ready(f"watching {len(homes)} Hermes home(s)")
        try:
            while not self.stop.is_set():
                self.tick()
                # Pinged from the loop itself: a watchdog stuck in a tick stops pinging and is restarted.
                self.notifier.ping_if_due()
                if self.cfg.once and self._once_done(started):
                    break
                if self.until is not None and self.until(self):
                    break
                busy = any(w.phase != WATCHING for w in self.watches.values())
                wake = min((w.next_sample for w in self.watches.values()), default=time.monotonic())
                delay = BUSY_TICK if busy else max(0.05, min(self.cfg.interval, wake - time.monotonic()))
                ping_in = self.notifier.seconds_to_ping()
                self.stop.wait(delay if ping_in is None else max(0.05, min(delay, ping_in)))
        except StopRequested:
            pass
        finally:
            self.notifier.stopping()
            self.write_status(force=True)
            self.dispatch.close(self.cfg.notify_timeout)
            self.exporter.stop()
            self.log.emit("STOP", "stopped" if self.stop.is_set() else "done")
            if self._lock_fh:
                self._lock_fh.close()
            for lock in self._home_locks.values():
                lock.close()
        return 1 if self.cfg.once and self.incident_count else 0

    def _once_done(self, started: float) -> bool:
        if any(w.phase != WATCHING for w in self.watches.values()):
            return False
        return time.monotonic() - started >= self.cfg.window + self.cfg.interval * 0.5

    # ---------------------------------------------------------------- the tick
    def tick(self) -> None:
        live = self.homes()
        for home, profile in live:
            if home.expanduser() not in self.watches:
                if self._ticked:  # one that appeared while running (the start line named the first ones)
                    self.log.emit("INFO", f"now watching {home}", profile or str(home))
                self._watch_for(home, profile)
        self._ticked = True
        keep = {h.expanduser() for h, _ in live}
        for key, w in list(self.watches.items()):
            # A profile removed while running is dropped, unless it is in the middle of something.
            if key not in keep and w.phase == WATCHING and w.incident is None:
                self.log.emit("INFO", f"{w.home} has no gateway files any more; no longer watched", w.name)
                del self.watches[key]
        for w in list(self.watches.values()):
            if self.stop.is_set():
                raise StopRequested
            try:
                self._tick_watch(w)
            except StopRequested:
                raise
            except Exception as exc:  # one broken gateway must not stop the others being watched
                self.log.emit("WARN", f"error while watching: {type(exc).__name__}: {exc}", w.name)
        self.write_status()
        self.publish_metrics()

    def _tick_watch(self, w: Watch) -> None:
        if not self._hold_home(w.home):
            return  # another watchdog acts on this home (or it is gone): nothing is done here
        if w.phase == STOPPING:
            self._progress_stop(w)
        if w.phase == VERIFYING:
            self._progress_verify(w)
            return
        if w.phase != WATCHING or time.monotonic() < w.next_sample:
            return
        w.next_sample = time.monotonic() + self.cfg.interval
        if not self._ensure_gateway(w):
            return
        assert w.ident is not None
        try:
            snap = sampler.snapshot(psutil.Process(w.ident.pid))
        except psutil.NoSuchProcess:
            self._lost(w, f"PID {w.ident.pid} exited")
            return
        except psutil.AccessDenied:
            self._lost(w, f"PID {w.ident.pid} cannot be inspected (permission denied)")
            return
        state = read_state(w.home)
        ok, note = processes.matches_record(w.ident, state.pid, state.start_time) if state.ok else (False, "")
        self._say_state_problem(w, None if state.ok and ok else
                                f"{state.read.path}: {state.read.status}"
                                + (f" ({state.read.problem})" if state.read.problem else f" ({note})"))
        w.snaps.append(snap)
        w.states.append((snap.at, StateSeen(state, ok, note)))
        self._trim(w, snap.at)
        self._read_heartbeat(w)
        verdict = judge(usage(list(w.snaps)), [s for _, s in w.states], None, self.th, now=time.time(),
                        heartbeat=w.heartbeat)
        self._set_verdict(w, verdict)
        held = snap.at - w.verdict_since
        action = policy.decide(verdict, held, self.rules)
        self._handle(w, verdict, action, held)

    def _read_heartbeat(self, w: Watch) -> None:
        assert w.ident is not None
        beat = heartbeat.read(w.home)
        w.heartbeat, note = heartbeat.assess(beat, w.ident.pid, time.time(), self.cfg.heartbeat_stale)
        if note != w.heartbeat_note and note is not None:
            self.log.emit("INFO", note, w.name)
        w.heartbeat_note = note

    def _trim(self, w: Watch, now: float) -> None:
        # Keep the newest sample at or before (now - window) as the window's base.
        while len(w.snaps) >= 2 and w.snaps[1].at <= now - self.cfg.window:
            w.snaps.popleft()
        base = w.snaps[0].at
        while w.states and w.states[0][0] < base:
            w.states.popleft()

    def _ensure_gateway(self, w: Watch) -> bool:
        if w.ident is not None:
            same, why = processes.same_process(w.ident)
            if same:
                # The files name another live gateway proven to be this home's: the one watched was
                # adopted from the process table, or has been replaced; follow the files.
                other, how = gateway.named_live_gateway(w.home, w.ident)
                if other is None:
                    return True
                same, why = False, f"the gateway files name another live gateway of this home ({how})"
            self._lost(w, why)
        found = gateway.find_gateway(w.home)
        if found.ident is None:
            if found.state_says_running and found.stale_pid and not w.gone_said:
                w.gone_said = True
                w.verdict = Verdict(GATEWAY_GONE, 0.9, (f"the state file says running, but {found.how}",))
                self.log.emit("GONE", f"gateway-gone: the state file says running, but {found.how}; "
                                      "looking for the new gateway", w.name)
            return False
        w.ident, w.found_how, w.gone_said = found.ident, found.how, False
        w.reset_window()
        self.log.emit("FOUND", f"gateway PID {w.ident.pid} ({found.how})", w.name)
        return True

    def _say_state_problem(self, w: Watch, problem: str | None) -> None:
        if problem == w.state_problem:
            return
        if problem is None:
            self.log.emit("INFO", "state file readable again and describes the gateway", w.name)
        else:
            self.log.emit("WARN", f"state file not usable: {problem}; judging by CPU alone (no restart without it)",
                          w.name)
        w.state_problem = problem

    def _lost(self, w: Watch, why: str) -> None:
        if w.ident is not None:
            self.log.emit("LOST", f"gateway PID {w.ident.pid} lost: {why}", w.name)
        w.ident = None
        w.reset_window()

    def _set_verdict(self, w: Watch, verdict: Verdict) -> None:
        before = w.verdict.signature if w.verdict else None
        if verdict.signature != before:
            w.verdict_since = w.snaps[-1].at if w.snaps else time.monotonic()
            if before is not None or verdict.signature != HEALTHY:
                self.log.emit("VERDICT", f"{before or 'none'} -> {verdict.signature} "
                                         f"(CPU {verdict.cores or 0:.2f} cores over {verdict.span:.0f} s)", w.name)
        w.verdict = verdict

    # ---------------------------------------------------------------- act
    def _handle(self, w: Watch, verdict: Verdict, action: policy.Action, held: float) -> None:
        if (w.incident is not None and verdict.signature not in {w.incident.signature, UNKNOWN}
                and action.kind in {policy.NONE, policy.WAIT}):
            self._close(w, "recovered", f"verdict is now {verdict.signature}")
            return
        if action.kind not in {policy.ALERT, policy.RESTART}:
            return
        opened = w.incident is None and not self._rejoin_gave_up(w, verdict)
        if opened:
            self._open(w, verdict, action)
            # The stack may have weakened the verdict below --min-confidence: decide again.
            action = policy.decide(w.verdict or verdict, held, self.rules)
        self._act(w, action)
        if opened and w.incident is not None:
            # One message per incident, sent once the first action is known (restart, alert, give-up).
            self._notify(w, notifications.INCIDENT)
            w.notified = True

    def _act(self, w: Watch, action: policy.Action) -> None:
        if w.acted or action.kind != policy.RESTART or w.incident is None:
            if w.incident is not None and not w.acted:
                w.acted = True
                w.incident.record["action"] = {"kind": "alert", "why": action.why}
                self._save(w)
            return
        self._try_restart(w, action)

    def _rejoin_gave_up(self, w: Watch, verdict: Verdict) -> bool:
        """A daemon restarted after a give-up: the same gateway process still showing the same signature,
        with the budget still spent, is the incident already opened and announced. Carry on with it (no new
        folder, no new message); True when that was done."""
        gave_up, w.gave_up = w.gave_up, None
        if gave_up is None or w.ident is None or gave_up["signature"] != verdict.signature:
            return False
        if gave_up["pid"] != w.ident.pid or abs(gave_up["create_time"] - w.ident.create_time) > 0.01:
            return False
        if not budget.decide(w.restarts, time.time(), self.budget).exhausted:
            return False
        name = gave_up["incident"]
        inc = incidents.load(incidents.incidents_dir(self.state_dir) / name, verdict.signature) \
            if name == Path(name).name and name not in {"", ".", ".."} else None
        if inc is None:
            return False
        inc.note("the watchdog restarted; same gateway, same signature, restart budget still spent: "
                 "carrying on with this incident")
        w.incident, w.gave_up = inc, gave_up
        w.acted, w.notified, w.gave_up_said, w.cooldown_said = False, True, True, False
        self.incident_count += 1  # still a problem: `run --once` says so in its exit code
        self._save(w)
        self.log.emit("INFO", f"{verdict.signature} on PID {w.ident.pid} with the restart budget still spent: "
                              f"carrying on with incident {inc.folder} (no new incident, no new message)", w.name)
        return True

    def _open(self, w: Watch, verdict: Verdict, action: policy.Action) -> None:
        """Evidence first: the stack, the CPU window, the state and the log tail, before any signal."""
        assert w.ident is not None
        self.incident_count += 1
        w.incidents_by[verdict.signature] += 1
        cpu = usage(list(w.snaps))
        stack = pyspy.capture(w.ident.pid, cpu.hot.tid if cpu and cpu.hot else None, dumps=self.cfg.stack_dumps,
                              stop=self.stop)
        if self.stop.is_set():
            raise StopRequested
        # The stack confirms or weakens the verdict; CPU and state already agreed.
        w.stacks_by["captured" if stack.captured else "failed"] += 1
        judged = judge(cpu, [s for _, s in w.states], stack, self.th, now=time.time(), heartbeat=w.heartbeat)
        if judged.signature == verdict.signature:
            w.verdict = judged
            verdict = judged
        now = time.time()
        rec = self._record(w, verdict, stack, action)
        try:
            folder = incidents.new_folder(self.state_dir, verdict.signature, w.profile, now)
        except OSError as exc:
            self._say_write_problem(f"cannot create an incident folder in {self.state_dir}: {exc.strerror or exc}")
            folder = None
        w.incident = incidents.Incident(folder or self.state_dir / "incidents" / "unwritable", verdict.signature,
                                        now, rec, render_text(stack), logs.gateway_tail(w.home),
                                        raw_state=read_state(w.home).read.data, writable=folder is not None)
        w.acted = False
        w.gave_up = None  # a give-up belongs to its incident; this is a new one
        w.gave_up_said = w.cooldown_said = False
        w.incident.note(f"opened: {verdict.signature} (confidence {verdict.confidence:.2f}) on PID {w.ident.pid}")
        self._save(w)
        reasons = "; ".join(verdict.reasons[1:3])
        self.log.emit("ALERT", f"{verdict.signature} on PID {w.ident.pid} (confidence {verdict.confidence:.2f}): "
                               f"{reasons}; stack: {stack.classification if stack.captured else stack.reason}; "
                               f"evidence in {folder}", w.name)
        with contextlib.suppress(OSError):
            incidents.prune(self.state_dir, self.cfg.keep_incidents)

    def _record(self, w: Watch, verdict: Verdict, stack: StackAnalysis, action: policy.Action) -> dict[str, Any]:
        assert w.ident is not None
        cpu = usage(list(w.snaps))
        state = w.states[-1][1] if w.states else None
        files = gateway.FilesSeen(
            pid_record=gateway.statefile.read_pid(w.home), state=state.state if state else read_state(w.home),
            state_matches=bool(state and state.matches), state_note=state.match_note if state else "",
            pid_matches=True, pid_note=w.found_how)
        state_d, pid_d = diagnosis.files_dict(files)
        hot_name = diagnosis.hot_thread_name(w.ident.pid, cpu, stack)
        return {
            "signature": verdict.signature,
            "confidence": round(verdict.confidence, 2),
            "reasons": list(verdict.reasons),
            "opened_at": iso(time.time()),
            "pid": w.ident.pid,
            "identity": w.ident.to_dict(),
            "hermes_home": {"path": str(w.home), "profile": w.profile, "source": "watched"},
            "taken_at": iso(time.time()),
            "process": {"cmdline": list(w.ident.cmdline), "exe": w.ident.exe, "username": w.ident.username,
                        "started_at": iso(w.ident.create_time), "create_time": w.ident.create_time,
                        "looks_like_gateway": processes.looks_like_gateway(w.ident.cmdline)},
            "verdict": verdict.to_dict(),
            "cpu": diagnosis.cpu_dict(cpu, hot_name, tuple(w.snaps)),
            "window_samples": [{"at": round(s.wall, 3), "cpu_seconds": round(s.cpu, 3)} for s in w.snaps],
            "state": state_d,
            "pid_file": pid_d,
            "stack": stack.to_dict(),
            "thresholds": {"cpu": self.cfg.cpu_threshold, "window": self.cfg.window, "interval": self.cfg.interval,
                           "grace": self.cfg.grace, "max_restarts": self.cfg.max_restarts,
                           "restart_window": self.cfg.restart_window, "min_confidence": self.cfg.min_confidence},
            "versions": diagnosis.environment(w.ident, processes.environ(w.ident.pid), stack, w.home),
            "action": {"kind": action.kind, "why": action.why},
            "restart": None,
            "result": "open",
            "new_pid": None,
        }

    def _save(self, w: Watch) -> None:
        if w.incident is None:
            return
        try:
            w.incident.save()
        except OSError as exc:
            self._say_write_problem(f"cannot write incident {w.incident.folder}: {exc.strerror or exc}")
        except Exception as exc:  # a report that cannot be written must never leave a restart half done
            self._say_write_problem(f"cannot save incident {w.incident.folder}: {type(exc).__name__}: {exc}")

    def _close(self, w: Watch, result: str, why: str) -> None:
        inc = w.incident
        if inc is None:
            return
        if inc.record.get("result") in {"open", "alert"}:
            inc.record["result"] = result
        inc.record["closed_at"] = iso(time.time())
        inc.note(f"closed: {result} ({why})")
        self._save(w)
        self.log.emit("RECOVERED", f"{inc.signature} over: {why}", w.name)
        if w.notified:
            self._notify(w, notifications.RECOVERY)
        w.incident = None
        w.acted = w.notified = False
        w.gave_up = None

    def _notify(self, w: Watch, kind: str) -> None:
        if self.dispatch is None or not self.dispatch.channels or w.incident is None:
            return
        inc = w.incident
        self.dispatch.send(notifications.build(kind, w.name, str(w.home), inc.record, str(inc.folder),
                                               time.time(), str(Path.home())))

    def _try_restart(self, w: Watch, action: policy.Action) -> None:
        assert w.ident is not None and w.incident is not None
        inc = w.incident
        decision = budget.decide(w.restarts, time.time(), self.budget)
        inc.record["budget"] = {"used": decision.used, "max": self.cfg.max_restarts,
                                "window_seconds": self.cfg.restart_window, "remaining": decision.remaining}
        if not decision.allowed:
            if decision.exhausted and not w.gave_up_said:
                w.gave_up_said = True
                w.gave_up = {"pid": w.ident.pid, "create_time": w.ident.create_time, "signature": inc.signature,
                             "incident": inc.folder.name}
                inc.record["result"] = "gave-up"
                inc.note(f"give-up: {decision.reason}")
                self._save(w)
                self.log.emit("GIVE-UP", f"not restarting PID {w.ident.pid}: {decision.reason}; still watching",
                              w.name)
                if w.notified:  # a give-up after a cooldown wait; at the opening it is in the incident message
                    self._notify(w, notifications.GIVE_UP)
            elif not decision.exhausted and not w.cooldown_said:
                w.cooldown_said = True
                inc.note(decision.reason)
                self._save(w)
                self.log.emit("WARN", f"restart delayed: {decision.reason}", w.name)
            return
        w.gave_up = None  # the budget allows a restart again
        target = Target(w.home, w.profile, w.ident)
        manager = select(self.cfg.restart_with, target, self.cfg.restart_command, self.cfg.command_timeout)
        w.acted = True
        if self.cfg.dry_run:
            inc.record["action"] = {"kind": "dry-run", "why": action.why, "manager": manager.describe()}
            inc.record["result"] = "dry-run"
            inc.note(f"dry run: would restart PID {w.ident.pid} with {manager.describe()}")
            self._save(w)
            self.log.emit("DRY-RUN", f"would restart PID {w.ident.pid} with {manager.describe()} (no signal sent)",
                          w.name)
            return
        same, why = gateway.reprove(w.ident, w.home)
        if not same:
            inc.record["result"] = "not-restarted"
            inc.note(f"identity check failed before restart: {why}; nothing sent")
            self._save(w)
            self.log.emit("WARN", f"not restarting: {why}", w.name)
            self._lost(w, why)
            return
        self.log.emit("RESTART", f"restarting PID {w.ident.pid} with {manager.describe()}: {action.why}", w.name)
        result = manager.restart(target, self.stop)
        now_m, now = time.monotonic(), time.time()
        w.restarts.append(now)
        # Months of running: keep what the budget can still see, and a short history.
        w.restarts = [t for t in w.restarts if now - t < self.cfg.restart_window * 4]
        del w.history[:-49]
        detail = {"manager": result.manager, "ok": result.ok, "detail": result.detail, "argv": result.argv,
                  "signals": list(result.signals), "at": iso(now)}
        inc.note(f"restart via {result.manager}: {'ok' if result.ok else 'failed'} ({result.detail})")
        if not result.ok and result.manager not in {"signal"}:
            # The manager could not do it; the gateway is proven to be spinning, so fall back to signals
            # and leave the relaunch to KeepAlive / Restart=.
            ok, text = guarded_signal(w.ident, signal.SIGTERM, w.home)
            detail["fallback"] = text
            if ok:
                detail["signals"].append("SIGTERM")
            inc.note(f"fallback: {text}")
            self.log.emit("WARN", f"{result.manager} restart failed ({result.detail}); {text}", w.name)
        inc.record["restart"] = detail
        inc.record["result"] = "restarting"
        w.history.append({"at": iso(now), "pid": w.ident.pid, "signature": inc.signature,
                          "manager": result.manager, "result": "restarting", "incident": inc.folder.name})
        w.restart = Restart(old=w.ident, manager=result.manager, started=now_m, started_wall=now,
                            kill_at=now_m + self.cfg.grace)
        w.phase = STOPPING
        self._save_pending()
        self._save(w)
        if w.notified:  # a restart after a cooldown wait; at the opening it is in the incident message
            self._notify(w, notifications.RESTART)

    def _progress_stop(self, w: Watch) -> None:
        r = w.restart
        assert r is not None
        same, _ = processes.same_process(r.old)
        if same and time.monotonic() >= r.kill_at and not r.killed:
            ok, text = guarded_signal(r.old, signal.SIGKILL, w.home)  # identity re-proven inside
            r.killed = ok
            if w.incident is not None and w.incident.record.get("restart"):
                w.incident.record["restart"]["signals"].append("SIGKILL" if ok else "SIGKILL not sent")
                w.incident.record["restart"]["sigkill_needed"] = True
            self._save_pending()
            self._note(w, f"still alive {self.cfg.grace:g} s after the restart request: {text}")
            self.log.emit("KILL", f"PID {r.old.pid} ignored the stop for {self.cfg.grace:g} s: {text}", w.name)
            same, _ = processes.same_process(r.old)
        if same:
            return
        self._note(w, f"old PID {r.old.pid} is gone")
        w.phase = VERIFYING
        r.verify_until = time.monotonic() + self.cfg.start_timeout
        w.ident = None
        w.reset_window()
        self._save_pending()

    def _progress_verify(self, w: Watch) -> None:
        r = w.restart
        assert r is not None
        if r.new is None:
            found = gateway.find_gateway(w.home)
            if found.ident is not None and (found.ident.pid, found.ident.create_time) != (r.old.pid,
                                                                                           r.old.create_time):
                r.new = found.ident
                self._note(w, f"new gateway PID {r.new.pid} ({found.how})")
                self.log.emit("VERIFY", f"new gateway PID {r.new.pid}; waiting for state 'running' and a calm CPU",
                              w.name)
        if r.new is not None:
            try:
                r.new_snaps.append(sampler.snapshot(psutil.Process(r.new.pid)))
            except psutil.Error:
                self._note(w, f"new gateway PID {r.new.pid} vanished")
                r.new, r.new_snaps = None, []
            state = read_state(w.home)
            if r.new is not None and state.ok:
                ok, _ = processes.matches_record(r.new, state.pid, state.start_time)
                r.new_state_running = ok and state.gateway_state == "running"
            calm = self._calm(r)
            if r.new is not None and r.new_state_running and calm is not None:
                self._finish(w, ok=True, why=f"new gateway PID {r.new.pid} is running, CPU {calm:.2f} cores")
                return
        if time.monotonic() > r.verify_until:
            what = ("no new gateway appeared" if r.new is None else
                    f"new gateway PID {r.new.pid} did not reach 'running' with a calm CPU")
            self._finish(w, ok=False, why=f"{what} within {self.cfg.start_timeout:g} s")

    def _calm(self, r: Restart) -> float | None:
        """CPU of the new gateway once at least one second of samples exists, if below the threshold."""
        if len(r.new_snaps) < 2 or r.new_snaps[-1].at - r.new_snaps[0].at < min(1.0, self.cfg.interval):
            return None
        cpu = usage(r.new_snaps[-5:])
        if cpu is None or cpu.cores >= self.cfg.cpu_threshold:
            return None
        return cpu.cores

    def _finish(self, w: Watch, ok: bool, why: str) -> None:
        r = w.restart
        assert r is not None
        took = time.monotonic() - r.started
        result = "restarted" if ok else "restart-failed"
        w.restarts_by[(w.incident.signature if w.incident else "unknown", result)] += 1
        if w.incident is not None:
            w.incident.record["result"] = result
            w.incident.record["new_pid"] = r.new.pid if r.new else None
            w.incident.record["verify"] = {"ok": ok, "detail": why, "seconds": round(took, 2),
                                           "sigkill_needed": r.killed}
        if w.history:
            w.history[-1].update({"result": result, "new_pid": r.new.pid if r.new else None,
                                  "seconds": round(took, 2), "sigkill": r.killed})
        self.log.emit("VERIFY" if ok else "WARN", f"restart {'verified' if ok else 'failed'} in {took:.1f} s: {why}",
                      w.name)
        w.phase, w.restart = WATCHING, None
        self._save_pending()
        w.ident = r.new if ok else None
        w.reset_window()
        w.next_sample = 0.0
        if ok and w.ident is not None:
            w.found_how = "new gateway after restart"
        self._close(w, result, why)

    def _note(self, w: Watch, line: str) -> None:
        if w.incident is not None:
            w.incident.note(line)
            self._save(w)

    # ---------------------------------------------------------------- record
    def _say_write_problem(self, text: str) -> None:
        if text != self._write_problem:
            self._write_problem = text
            self.log.emit("WARN", f"{text}; still watching")

    def status_dict(self) -> dict[str, Any]:
        gws = []
        for w in self.watches.values():
            cpu = w.cpu_now()
            last_state = w.states[-1][1].state if w.states else None
            decision = budget.decide(w.restarts, time.time(), self.budget)
            gws.append({
                "home": str(w.home), "profile": w.profile, "name": w.name, "pid": w.ident.pid if w.ident else None,
                "found": w.found_how, "phase": w.phase,
                "cpu_now": round(cpu.cores, 3) if cpu else None,
                "hot_thread": ({"tid": cpu.hot.tid, "cores": round(cpu.hot.cores, 3)} if cpu and cpu.hot else None),
                "gateway_state": last_state.gateway_state if last_state else None,
                "platforms": {p.name: p.state for p in last_state.platforms} if last_state else {},
                "verdict": w.verdict.to_dict() if w.verdict else None,
                "verdict_since": iso(time.time() - (time.monotonic() - w.verdict_since))
                if w.verdict and w.verdict_since else None,
                "incident": str(w.incident.folder) if w.incident else None,
                **({"heartbeat": w.heartbeat.to_dict()} if w.heartbeat else {}),
                "restarts": [round(t, 3) for t in w.restarts if time.time() - t < self.cfg.restart_window * 4],
                "restart_history": w.history[-20:],
                **({"gave_up": w.gave_up} if w.gave_up else {}),
                "budget": {"used": decision.used, "max": self.cfg.max_restarts, "remaining": decision.remaining,
                           "window_seconds": self.cfg.restart_window, "exhausted": decision.exhausted},
            })
        return {
            "daemon": {"pid": os.getpid(), "create_time": _own_create_time(), "started_at": iso(self.started),
                       "dry_run": self.cfg.dry_run, "config": self._config_public, "metrics_url": self.exporter.url,
                       "notify": [c.name for c in self.dispatch.channels] if self.dispatch else []},
            "updated_at": iso(time.time()),
            "gateways": gws,
            "incidents": [str(p) for p in incidents.latest(self.state_dir, 10)],
            "problems": [self._write_problem] if self._write_problem else [],
        }

    def metrics_snapshot(self) -> metrics.Snapshot:
        gws = []
        now = time.time()
        for w in self.watches.values():
            cpu = w.cpu_now()
            seen = w.states[-1][1] if w.states else None
            platforms = {p.name: p.connected for p in seen.state.platforms} if seen and seen.matches else {}
            gws.append(metrics.GatewayMetrics(
                profile=w.name, up=w.ident is not None and w.phase == WATCHING,
                cpu_cores=cpu.cores if cpu else None, hot_thread_cores=cpu.hot.cores if cpu and cpu.hot else None,
                platforms=platforms, verdict=w.verdict.signature if w.verdict else None,
                heartbeat_age=w.heartbeat.age if w.heartbeat else None,
                budget_remaining=budget.decide(w.restarts, now, self.budget).remaining,
                restarts=dict(w.restarts_by), incidents=dict(w.incidents_by), stack_captures=dict(w.stacks_by)))
        return metrics.Snapshot(tuple(gws), now, self.started)

    def publish_metrics(self) -> None:
        if not self.exporter.enabled:
            return
        problem = self.exporter.update(self.metrics_snapshot())
        if problem != self._metrics_problem:
            if problem:
                self.log.emit("WARN", f"{problem}; still watching")
            self._metrics_problem = problem

    def _status_keys(self) -> tuple[str, str]:
        """What state.json says that matters, cheaply: (everything but the CPU figures, the restart history).
        The tick costs little when nothing changed; the history is what the budget needs after a crash."""
        gws, hist = [], []
        for w in self.watches.values():
            last = w.states[-1][1].state if w.states else None
            gws.append((str(w.home), w.ident.pid if w.ident else None, w.phase,
                        w.verdict.signature if w.verdict else None, str(w.incident.folder) if w.incident else None,
                        last.gateway_state if last else None,
                        [(p.name, p.state) for p in last.platforms] if last else None,
                        w.heartbeat.stale if w.heartbeat else None))
            hist.append((str(w.home), w.restarts, w.history[-20:], w.gave_up))
        history = json.dumps(hist, default=str)
        return json.dumps([gws, self._write_problem, self.exporter.url], default=str) + history, history

    def write_status(self, force: bool = False) -> None:
        key, history = self._status_keys()
        now = time.monotonic()
        if not force and key == self._status_key and now - self._status_written < STATUS_REFRESH:
            return
        durable = force or history != self._history_key
        try:
            private.make_dir(self.state_dir)
            private.write_json(self.state_dir / STATE_FILE, diagnosis.public(self.status_dict()), durable=durable)
            self._status_key, self._status_written, self._history_key = key, now, history
        except OSError as exc:
            self._say_write_problem(f"cannot write {self.state_dir / STATE_FILE}: {exc.strerror or exc}")
            return
        if self._write_problem and self._write_problem.startswith("cannot write"):
            self.log.emit("WARN", f"state dir {self.state_dir} is writable again")
            self._write_problem = None


def _own_create_time() -> float | None:
    try:
        return psutil.Process().create_time()
    except psutil.Error:
        return None


@dataclass(frozen=True)
class SavedGateway:
    home: Path
    restarts: list[float]
    history: list[dict[str, Any]]
    gave_up: dict[str, Any] | None


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


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
    restarts = [t for t in (_finite(x) for x in raw) if t is not None] if isinstance(raw, list) else []
    if not isinstance(raw, list) or len(restarts) != len(raw):
        bad.add("restarts")
    raw = g.get("restart_history", [])
    history = [h for h in raw if isinstance(h, dict)] if isinstance(raw, list) else []
    if not isinstance(raw, list) or len(history) != len(raw):
        bad.add("restart_history")
    raw = g.get("gave_up")
    gave_up = None
    if raw is not None:
        ok = (isinstance(raw, dict) and isinstance(raw.get("pid"), int) and not isinstance(raw.get("pid"), bool)
              and _finite(raw.get("create_time")) is not None and isinstance(raw.get("signature"), str)
              and isinstance(raw.get("incident"), str))
        if ok:
            gave_up = {"pid": raw["pid"], "create_time": _finite(raw["create_time"]), "signature": raw["signature"],
                       "incident": raw["incident"]}
        else:
            bad.add("gave_up")
    return SavedGateway(home, restarts, history[-20:], gave_up)


def read_status(state_dir: Path) -> dict[str, Any] | None:
    read = read_json_object(state_dir / STATE_FILE)
    return read.data if read.ok else None
