"""The tick loop: observe -> judge -> act -> record, for each watched gateway, until SIGTERM/SIGINT.

Each gateway has a ``Watch`` (daemon/watch.py). A tick finds the homes to watch, and for each one either
drives its restart in flight (the state machine of act/restart.py) or samples and judges it
(daemon/observer.py) and acts on the decision (daemon/responder.py); then it records state.json and the
metrics (daemon/status.py). Nothing in a tick waits on a slow gateway, manager or notification channel.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from hermes_watchdog import exitcodes
from hermes_watchdog.act.restart_state import progress
from hermes_watchdog.config import Config
from hermes_watchdog.daemon import restarts, resume
from hermes_watchdog.daemon.lockset import LockSet
from hermes_watchdog.daemon.observer import Observer
from hermes_watchdog.daemon.real_world import RealWorld
from hermes_watchdog.daemon.responder import Responder, StopRequested
from hermes_watchdog.daemon.sd_notify import Notifier
from hermes_watchdog.daemon.status import Status
from hermes_watchdog.daemon.watch import DENSE_TICK, Watch
from hermes_watchdog.daemon.world import Settings
from hermes_watchdog.facts.deaf import DeafThresholds
from hermes_watchdog.judge import budget, policy
from hermes_watchdog.judge.verdict import Thresholds
from hermes_watchdog.judge.window import judge_window
from hermes_watchdog.observe import discovery
from hermes_watchdog.observe.statefile import PID_FILE
from hermes_watchdog.observe.statefile import STATE_FILE as GATEWAY_STATE_FILE
from hermes_watchdog.record.delivery import Dispatcher
from hermes_watchdog.record.events import EventLog
from hermes_watchdog.record.exporter import Exporter

# Homes one daemon watches at most: each holds a lock descriptor for the daemon's life and costs a tick its
# reads; the units raise LimitNOFILE for this many (the arithmetic is in the unit template).
MAX_HOMES = 256
WAIT_SAID_EVERY = 10.0  # seconds between log lines while a restart waits (the operator sees it is in hand)
BUSY_TICK = 0.25  # seconds between ticks while a restart is in progress
STOP_WAIT = 4.0  # seconds a stopping daemon gives loop-stack bursts in progress to end and clean up


class Daemon:
    def __init__(self, cfg: Config, log: EventLog | None = None, stop: threading.Event | None = None,
                 until: Callable[[Daemon], bool] | None = None) -> None:
        self.cfg = cfg
        self.until = until  # ends the loop when true (the demo stops after one verified restart)
        self.log = log or EventLog()
        self.stop = stop or threading.Event()
        self.state_dir = cfg.resolved_state_dir
        th = Thresholds(cpu=cfg.cpu_threshold, stuck_after=cfg.stuck_after, proof=cfg.loop_proof,
                             frozen_after=cfg.frozen_after, memory_limit=cfg.memory_limit,
                             start_timeout=cfg.start_timeout,
                             deaf=DeafThresholds(cfg.fd_alert, cfg.fd_restart, cfg.half_closed_after,
                                                 cfg.memory_growth / 3600.0, cfg.memory_growth_for,
                                                 cfg.workers_busy_after))
        rules = policy.Rules(cfg.window, cfg.interval, cfg.min_confidence, cfg.pegged_after, cfg.stuck_after,
                                  cfg.stuck_action, cfg.frozen_action, cfg.memory_action, cfg.fd_action,
                                  cfg.deaf_action)
        self.settings = Settings(cfg, th, rules, budget.Budget(cfg.max_restarts, cfg.restart_window, cfg.cooldown),
                                 self.state_dir)
        self.watches: dict[Path, Watch] = {}
        self.started = time.time()
        self.world = RealWorld(self.settings, self.log, self.stop,
                               lambda: restarts.save_pending(self.world, self.watches.values()))
        self.notifier = Notifier()
        self.exporter = Exporter(cfg.metrics_port, cfg.metrics_host, cfg.metrics_textfile)
        self.locks = LockSet(self.state_dir, lambda text: self.log.emit("WARN", text), self.world.write_problem)
        self.observer = Observer(self.world)
        self.responder = Responder(self.world)
        self.status = Status(self.world, self.watches, self.exporter, self.started,
                             lambda: [c.name for c in self.world.dispatch.channels] if self.world.dispatch else [])
        self._ticked = False
        self._missing_homes: set[Path] = set()  # homes said to be missing, so it is said once
        self._named_homes: list[tuple[Path, str | None]] | None = None
        self._said_cap = False
        self._opened_dropped = 0  # incidents of watches dropped since (a profile removed): --once counts them

    # ---------------------------------------------------------------- lifecycle
    def acquire_lock(self) -> Path:
        """One daemon per state dir, and one per Hermes home (homes that appear later are locked when
        first seen)."""
        path = self.locks.take_state_dir()
        self.world.family = self.locks.family
        for home in self.cfg.homes:
            self.locks.hold_home(home, at_start=True)
        return path

    def install_signal_handlers(self) -> None:
        def _stop(signum: int, frame: object) -> None:
            self.stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)

    def run(self) -> int:
        if not self._wait_for_home():
            return exitcodes.OK
        self.acquire_lock()
        self.exporter.start()
        cfg = self.cfg
        dispatch = Dispatcher.from_config(cfg.notify_command, cfg.notify_webhook, cfg.notify_desktop,
                                          cfg.notify_timeout, cfg.notify_retries,
                                          lambda text: self.log.emit("WARN", text))
        self.world.dispatch = dispatch
        homes = self.homes()  # once: with --all-profiles it is a scan of the profiles folder
        resume.load(self.world, homes, self.watch_for)
        self.log.emit("START", f"watching {', '.join(str(h) for h, _ in homes) or 'no Hermes home yet'}: window "
                               f"{cfg.window:g} s, interval {cfg.interval:g} s, CPU >= {cfg.cpu_threshold:g} core, "
                               f"restart with {cfg.restart_with}, budget {cfg.max_restarts} per "
                               f"{cfg.restart_window:g} s" + (" (dry run)" if cfg.dry_run else ""))
        if self.exporter.url:
            self.log.emit("INFO", f"metrics on {self.exporter.url}")
        if dispatch.channels:
            self.log.emit("INFO", "notifications by " + ", ".join(c.name for c in dispatch.channels))
        started = time.monotonic()
        self.notifier.ready(f"watching {len(homes)} Hermes home(s)")
        try:
            while not self.stop.is_set():
                self.tick()
                # Pinged from the loop itself: a watchdog stuck in a tick stops pinging and is restarted.
                self.notifier.ping_if_due()
                if cfg.once and self._once_done(started):
                    break
                if self.until is not None and self.until(self):
                    break
                self.stop.wait(self._sleep())
        except StopRequested:
            pass
        finally:
            self.notifier.stopping()
            for w in self.watches.values():
                w.close_sampler(wait=STOP_WAIT / max(1, len(self.watches)))
            self.status.write(force=True)
            dispatch.close(cfg.notify_timeout)
            self.exporter.stop()
            self.log.emit("STOP", "stopped" if self.stop.is_set() else "done")
            self.locks.release()
        opened = self._opened_dropped + sum(w.counts.opened for w in self.watches.values())
        return exitcodes.PROBLEM if cfg.once and opened else exitcodes.OK

    def _sleep(self) -> float:
        busy = any(w.machine is not None for w in self.watches.values())
        wake = min((w.next_sample for w in self.watches.values()), default=time.monotonic())
        delay = BUSY_TICK if busy else max(0.05, min(self.cfg.interval, wake - time.monotonic()))
        ping_in = self.notifier.seconds_to_ping()
        return delay if ping_in is None else max(0.05, min(delay, ping_in))

    def _once_done(self, started: float) -> bool:
        if any(w.machine is not None for w in self.watches.values()):
            return False
        return time.monotonic() - started >= self.cfg.window + self.cfg.interval * 0.5

    # ---------------------------------------------------------------- homes
    def homes(self) -> list[tuple[Path, str | None]]:
        if self.cfg.all_profiles:
            root = self.cfg.homes[0]
            found = [(root, None)] + [(p, name) for name, p in discovery.profile_homes(root)]
            # A profile counts once it has a gateway file; the default home is always watched.
            found = [(h, n) for h, n in found if n is None or (h / PID_FILE).exists()
                     or (h / GATEWAY_STATE_FILE).exists()]
            if len(found) > MAX_HOMES:
                if not self._said_cap:
                    self._said_cap = True
                    self.log.emit("WARN", f"{len(found) - 1} profiles with gateway files under {root}: watching the "
                                          f"default home and the first {MAX_HOMES - 1} profiles by name; run another "
                                          "hermes-watchdog with --hermes-home for the rest")
                found = found[:1] + sorted(found[1:], key=lambda hn: hn[1] or "")[:MAX_HOMES - 1]
        else:
            if self._named_homes is None:  # the same homes every tick: name their profiles once
                self._named_homes = [(h, discovery.profile_of(h)) for h in self.cfg.homes]
            found = self._named_homes
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

    def watch_for(self, home: Path, profile: str | None) -> Watch:
        key = home.expanduser()
        if key not in self.watches:
            first = self.cfg.homes[0].expanduser()
            label = profile or ("default" if key == first else str(key).replace(str(Path.home()), "~", 1))
            self.watches[key] = Watch(key, profile, label)
        return self.watches[key]

    # ---------------------------------------------------------------- the tick
    def tick(self) -> None:
        live = self.homes()
        for home, profile in live:
            if home.expanduser() not in self.watches:
                if self._ticked:  # one that appeared while running (the start line named the first ones)
                    self.log.emit("INFO", f"now watching {home}", profile or str(home))
                self.watch_for(home, profile)
        self._ticked = True
        keep = {h.expanduser() for h, _ in live}
        for key, w in list(self.watches.items()):
            # A profile removed while running is dropped, unless it is in the middle of something.
            if key not in keep and w.machine is None and w.life is None:
                self.log.emit("INFO", f"{w.home} has no gateway files any more; no longer watched", w.name)
                w.close_sampler()
                self._opened_dropped += w.counts.opened
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
        self.status.write()
        self.status.publish_metrics()

    def _tick_watch(self, w: Watch) -> None:
        if not self.locks.hold_home(w.home):
            w.close_sampler()  # not even its stacks: the watchdog holding the home samples them
            return  # another watchdog acts on this home (or it is gone): nothing is done here
        if w.machine is not None:
            w.machine.step()  # a restart in flight: its edges, until it is done
            now = time.monotonic()
            if w.machine is not None and not w.machine.r.phase.done and now - w.said.waiting_at >= WAIT_SAID_EVERY:
                if w.said.waiting_at:  # the first is said by the restart itself
                    self.log.emit("WAIT", progress(w.machine.r, now), w.name)
                w.said.waiting_at = now
            return
        if time.monotonic() < w.next_sample:
            return
        now = time.monotonic()
        w.schedule(now + (min(DENSE_TICK, self.cfg.interval) if w.plan.dense(now) else self.cfg.interval))
        readings = self.observer.read(w)  # observe (I/O only)
        if readings is None:
            return
        judged = judge_window(readings, self.settings.th)  # judge (pure)
        self.observer.settle(w, judged)
        verdict = judged.verdict
        held = w.window.samples[-1].at - w.verdict_since
        action = policy.decide(verdict, held, self.settings.rules)  # decide (pure) ...
        effects = self.responder.decide(w, verdict, action)  # ... given the incident and the budget
        self.responder.apply(w, effects)  # effects
