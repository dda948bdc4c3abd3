"""A fake World for the daemon's lifecycle tests: a clock that moves when told, an event log and a message
list that record, the process table and signal recorder of the restart machine's tests, managers that
record what they were asked, and stack capture that answers at once. Incident folders and pending.json are
real files in a temporary state dir (they are what the daemon leaves behind)."""

from __future__ import annotations

import json
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hermes_watchdog.act.managers.base import RestartResult, ServiceManager, Target
from hermes_watchdog.act.restart import NewCheck
from hermes_watchdog.config import Config
from hermes_watchdog.daemon import restarts, resume
from hermes_watchdog.daemon.responder import Responder
from hermes_watchdog.daemon.watch import Watch
from hermes_watchdog.daemon.world import Settings, World
from hermes_watchdog.facts.identity import Identity
from hermes_watchdog.facts.readings import GatewayState, PidRecord
from hermes_watchdog.facts.stacks import StackAnalysis
from hermes_watchdog.judge import budget, policy
from hermes_watchdog.judge.cpu import CpuUsage
from hermes_watchdog.judge.verdict import Thresholds, Verdict
from hermes_watchdog.observe import statefile
from hermes_watchdog.record import incidents, status_file
from tests.unit.test_restart_machine import DummyManager
from tests.unit.test_restart_machine import World as ProcessTable

# The watched gateway and its successor, with the user a signal is checked against.
OLD = Identity(100, 1000.0, ("/usr/bin/python3", "-m", "hermes_cli.main", "gateway", "run"), 5, uid=1000)
NEW = Identity(200, 2000.0, ("/usr/bin/python3", "-m", "hermes_cli.main", "gateway", "run"), 9, uid=1000)


def process_table() -> ProcessTable:
    return ProcessTable(living={OLD.pid}, identities={OLD.pid: OLD})

__all__ = ["NEW", "OLD", "FakeWorld", "Life", "Starter", "alert", "busy", "healthy", "restart"]


class Starter(DummyManager):
    """A manager that can also start a gateway that is not running (after Hermes' own exit)."""

    def __init__(self, table: ProcessTable, can: bool = True) -> None:
        super().__init__("command")
        self.table, self.can = table, can
        self.started: list[Target] = []

    def cannot_start(self) -> str:
        return "" if self.can else "the signal method can stop a gateway but not start one"

    def start(self, target: Target, stop: threading.Event) -> RestartResult:
        self.started.append(target)
        self.table.new = NEW  # what the configured command does: a gateway runs again
        self.table.living.add(NEW.pid)
        self.table.identities[NEW.pid] = NEW
        self.table.new_check = NewCheck(ready=True, detail=f"new gateway PID {NEW.pid} is running")
        return RestartResult("command", True, "started")


@dataclass
class FakeWorld(World):
    state_dir: Path
    cfg_: Config
    table: ProcessTable = field(default_factory=process_table)
    events: list[tuple[str, str]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    proven: tuple[bool, str] = (True, "")
    stack_ok: bool = True
    watches: list[Watch] = field(default_factory=list)
    pending_writes: int = 0

    def __post_init__(self) -> None:
        cfg = self.cfg_
        self.settings = Settings(cfg, Thresholds(), policy.Rules(cfg.window, cfg.interval, cfg.min_confidence,
                                                                 cfg.pegged_after, cfg.stuck_after, cfg.stuck_action),
                                 budget.Budget(cfg.max_restarts, cfg.restart_window, cfg.cooldown), self.state_dir)
        self.stop = threading.Event()
        self.family = "family-token"
        self.problem = None
        self.restarter = DummyManager("signal")
        self.starter_ = Starter(self.table)

    # the clock: the process table's (the restart machine's ports read the same one)
    def wall(self) -> float:
        return 1.8e9 + self.table.t

    def mono(self) -> float:
        return self.table.t

    def advance(self, seconds: float) -> None:
        self.table.t += seconds

    def emit(self, kind: str, text: str, name: str | None = None) -> None:
        self.events.append((kind, text))

    def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    def save_pending(self) -> None:
        self.pending_writes += 1
        restarts.save_pending(self, self.watches)

    def alive(self, ident: Identity) -> bool:
        return self.table.alive(ident)

    def reprove(self, ident: Identity, home: Path) -> tuple[bool, str]:
        return self.proven

    def capture_stack(self, ident: Identity, home: Path, hot_tid: int | None) -> StackAnalysis:
        if self.stack_ok:
            return StackAnalysis(True, dumps=1, method="py-spy")
        return StackAnalysis(False, reason="py-spy: permission denied", method="none")

    def gateway_files(self, home: Path) -> tuple[PidRecord, GatewayState, str]:
        return statefile.read_pid(home), statefile.read_state(home), "(log tail)\n"

    def describe(self, ident: Identity, home: Path, stack: StackAnalysis,
                 cpu: CpuUsage | None) -> tuple[dict[str, str | None], str | None]:
        return {"hermes": "0.23.4"}, None

    def manager(self, target: Target) -> ServiceManager:
        return self.restarter

    def starter(self, target: Target) -> ServiceManager:
        return self.starter_

    def final_signal(self, ident: Identity, home: Path, stack_captured: bool) -> tuple[signal.Signals, str | None]:
        return signal.SIGKILL, None

    def error_log_size(self, home: Path) -> int:
        return 0

    def restart_ports(self, home: Path) -> ProcessTable:
        return self.table

    # ---------------------------------------------------------------- what the tests read
    def kinds(self) -> list[str]:
        return [k for k, _ in self.events]

    def said(self, kind: str) -> list[str]:
        return [t for k, t in self.events if k == kind]

    def sent(self) -> list[str]:
        return [m["event"] for m in self.messages]

    def folders(self) -> list[Path]:
        return incidents.latest(self.state_dir, 100)

    def saved(self, folder: Path | None = None) -> dict[str, Any]:
        folder = folder or self.folders()[0]
        return json.loads((folder / "incident.json").read_text())

    def pending(self) -> dict[str, Any]:
        path = self.state_dir / status_file.PENDING_FILE
        return json.loads(path.read_text()) if path.exists() else {}


def busy(confidence: float = 0.95) -> Verdict:
    return Verdict("busy-loop", confidence, ("busy-loop", "the loop is off its selector", "one thread at 1.0 core"))


def healthy() -> Verdict:
    return Verdict("healthy", 0.9, ("healthy",))


def restart(why: str = "busy-loop held 60 s") -> policy.Action:
    return policy.Action(policy.RESTART, why)


def alert(why: str = "loop-frozen held 60 s; --frozen-action alert") -> policy.Action:
    return policy.Action(policy.ALERT, why)


class Life:
    """One watched gateway on a fake world: the responder and the restart machine, driven by hand."""

    def __init__(self, tmp: Path, **cfg: Any) -> None:
        home = tmp / "hermes"
        home.mkdir(exist_ok=True)
        cfg.setdefault("hermes_home", (home,))
        cfg.setdefault("state_dir", tmp / "state")
        self.world = FakeWorld(tmp / "state", Config(**cfg))
        self.w = Watch(home, None, "default", ident=OLD, found_how="gateway.pid names it")
        self.world.watches.append(self.w)
        self.responder = Responder(self.world)

    def see(self, verdict: Verdict, action: policy.Action) -> None:
        """One tick's decision handed to the responder, as the daemon's loop does."""
        self.w.verdict = verdict
        self.responder.handle(self.w, verdict, action)

    def run_machine(self, step: float = 1.0, limit: int = 400) -> None:
        """Tick the restart in flight until it is done, the clock moving ``step`` seconds a tick."""
        for _ in range(limit):
            if self.w.machine is None:
                return
            self.w.machine.step()
            self.world.advance(step)
        raise AssertionError("the restart never ended")

    def relaunch(self) -> None:
        """The manager's relaunch: the old gateway is gone and a new one is up and calm."""
        t = self.world.table
        t.living.discard(OLD.pid)
        t.living.add(NEW.pid)
        t.identities[NEW.pid] = NEW
        t.new = NEW
        t.new_check = NewCheck(ready=True, detail=f"new gateway PID {NEW.pid} is running")

    def resumed(self) -> tuple[FakeWorld, Watch]:
        """A second daemon on the same state dir, as after a crash: state.json and pending.json read back."""
        world = FakeWorld(self.world.state_dir, self.world.cfg, table=self.world.table)
        made: dict[Path, Watch] = {}

        def watch_for(home: Path, profile: str | None) -> Watch:
            if home not in made:
                made[home] = Watch(home, profile, "default")
                world.watches.append(made[home])
            return made[home]

        resume.load(world, [(self.w.home, None)], watch_for)
        return world, watch_for(self.w.home, None)
