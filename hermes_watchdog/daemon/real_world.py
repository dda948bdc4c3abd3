"""The World the daemon runs on: the real clock, event log, notification channels, process table, py-spy
and the hook, the gateway's files and the service managers (daemon/world.py says what each is for)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hermes_watchdog import diagnosis
from hermes_watchdog.act.managers import ServiceManager, Target, select, select_starter
from hermes_watchdog.act.restart import NewCheck
from hermes_watchdog.config import Config
from hermes_watchdog.daemon.world import Settings, World
from hermes_watchdog.facts.cpu import CpuSnapshot
from hermes_watchdog.facts.identity import Identity
from hermes_watchdog.facts.readings import GatewayState, PidRecord
from hermes_watchdog.facts.stacks import StackAnalysis
from hermes_watchdog.judge.cpu import CpuUsage, usage
from hermes_watchdog.observe import discovery, last_words, logs, processes, sampler, stack_capture, statefile
from hermes_watchdog.observe.signals import guarded_signal
from hermes_watchdog.observe.statefile import read_state
from hermes_watchdog.record.delivery import Dispatcher
from hermes_watchdog.record.events import EventLog


class RealWorld(World):
    def __init__(self, settings: Settings, log: EventLog, stop: threading.Event,
                 pending: Callable[[], None]) -> None:
        self.settings, self.log, self.stop = settings, log, stop
        self._pending = pending  # writes pending.json from every watch (the daemon owns them)
        self.dispatch: Dispatcher | None = None  # started with the loop: its threads live as long as it
        self.family = ""

    def wall(self) -> float:
        return time.time()

    def mono(self) -> float:
        return time.monotonic()

    def emit(self, kind: str, text: str, name: str | None = None) -> None:
        self.log.emit(kind, text, name)

    def send(self, message: dict[str, Any]) -> None:
        if self.dispatch is not None and self.dispatch.channels:
            self.dispatch.send(message)

    def save_pending(self) -> None:
        self._pending()

    def alive(self, ident: Identity) -> bool:
        return processes.same_process(ident)[0]

    def reprove(self, ident: Identity, home: Path) -> tuple[bool, str]:
        return discovery.reprove(ident, home)

    def capture_stack(self, ident: Identity, home: Path, hot_tid: int | None) -> StackAnalysis:
        cfg = self.cfg
        return stack_capture.choose(cfg.stack_with).capture(ident, home, hot_tid, count=cfg.stack_dumps,
                                                            stop=self.stop)

    def gateway_files(self, home: Path) -> tuple[PidRecord, GatewayState, str]:
        return statefile.read_pid(home), statefile.read_state(home), logs.gateway_tail(home)

    def describe(self, ident: Identity, home: Path, stack: StackAnalysis,
                 cpu: CpuUsage | None) -> tuple[dict[str, str | None], str | None]:
        return (diagnosis.environment(ident, processes.environ(ident.pid), stack, home),
                diagnosis.hot_thread_name(ident.pid, cpu, stack))

    def manager(self, target: Target) -> ServiceManager:
        cfg = self.cfg
        return select(cfg.restart_with, target, cfg.restart_command, cfg.command_timeout,
                      s6_scandirs=cfg.s6_scandir)

    def starter(self, target: Target) -> ServiceManager:
        cfg = self.cfg
        return select_starter(cfg.restart_with, target, cfg.restart_command, cfg.command_timeout,
                              s6_scandirs=cfg.s6_scandir)

    def final_signal(self, ident: Identity, home: Path, stack_captured: bool) -> tuple[signal.Signals, str | None]:
        return last_words.final_signal(ident, home, processes.environ(ident.pid), stack_captured)

    def error_log_size(self, home: Path) -> int:
        return last_words.error_log_size(home)

    def restart_ports(self, home: Path) -> LivePorts:
        return LivePorts(self.cfg, home)


class LivePorts:
    """The restart machine's ports on the real process table, for the gateway of ``home``."""

    def __init__(self, cfg: Config, home: Path) -> None:
        self.cfg, self.home = cfg, home
        self.new_snaps: list[CpuSnapshot] = []

    def now(self) -> float:
        return time.monotonic()

    def alive(self, ident: Identity) -> bool:
        return processes.same_process(ident)[0]

    def kill(self, ident: Identity, sig: signal.Signals) -> tuple[bool, str]:
        return guarded_signal(ident, sig, self.home)  # identity re-proven inside

    def find_new(self, old: Identity) -> tuple[Identity | None, str]:
        found = discovery.find_gateway(self.home)
        if found.ident is None or (found.ident.pid, found.ident.create_time) == (old.pid, old.create_time):
            return None, found.how
        self.new_snaps = []
        return found.ident, found.how

    def check_new(self, new: Identity) -> NewCheck:
        """Ready once its state file says running (and names it) and its CPU is calm over a second."""
        try:
            self.new_snaps.append(sampler.snapshot(new.pid))
        except (processes.ProcessGone, processes.ProcessHidden):
            return NewCheck(gone=True)
        state = read_state(self.home)
        running = state.ok and processes.matches_record(new, state.pid, state.start_time)[0] \
            and state.gateway_state == "running"
        snaps, cfg = self.new_snaps, self.cfg
        if not running or len(snaps) < 2 or snaps[-1].at - snaps[0].at < min(1.0, cfg.interval):
            return NewCheck()
        cpu = usage(snaps[-5:])
        # Calm by the same measure as "pegged": a new gateway spinning again on a busy host gets little CPU
        # time but still wants a whole core.
        if cpu is None or cpu.pegged_value >= cfg.cpu_threshold:
            return NewCheck()
        return NewCheck(ready=True, detail=f"new gateway PID {new.pid} is running, CPU {cpu.cores:.2f} cores"
                                           + (f" (demand {cpu.hot_demand:.2f})" if cpu.hot_demand is not None else ""))


