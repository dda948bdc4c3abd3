"""Everything a watched gateway's life touches outside the daemon's own data, behind one small interface:
the clock, the event log, notifications, the process table, stack capture, the gateway's files, the
service manager and the restart machine's ports. The daemon runs on ``RealWorld`` (daemon/real_world.py);
the unit tests drive a gateway's whole life on a fake one in milliseconds.

A World is handed to the rooms of daemon/ instead of the daemon itself: they see these methods and the
read-only settings, never each other through it.
"""

from __future__ import annotations

import signal
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hermes_watchdog.act.managers import ServiceManager, Target
    from hermes_watchdog.act.restart import Ports
    from hermes_watchdog.config import Config
    from hermes_watchdog.facts.identity import Identity
    from hermes_watchdog.facts.readings import GatewayState, PidRecord
    from hermes_watchdog.facts.stacks import StackAnalysis
    from hermes_watchdog.judge import budget, policy
    from hermes_watchdog.judge.cpu import CpuUsage
    from hermes_watchdog.judge.verdict import Thresholds


@dataclass(frozen=True)
class Settings:
    """What the daemon was told, read by every room and changed by none."""

    cfg: Config
    th: Thresholds
    rules: policy.Rules
    budget: budget.Budget
    state_dir: Path


class World(ABC):
    settings: Settings
    stop: threading.Event
    family: str = ""  # this state dir's lock family token, written into pending.json

    @property
    def cfg(self) -> Config:
        return self.settings.cfg

    # -- the clock
    @abstractmethod
    def wall(self) -> float: ...

    @abstractmethod
    def mono(self) -> float: ...

    # -- what is said
    @abstractmethod
    def emit(self, kind: str, text: str, name: str | None = None) -> None: ...

    problem: str | None = None  # the last write problem, said once until it changes (state.json shows it)

    def write_problem(self, text: str) -> None:
        """A file the daemon could not write: said once until it changes; the daemon watches on."""
        if text != self.problem:
            self.problem = text
            self.emit("WARN", f"{text}; still watching")

    @abstractmethod
    def send(self, message: dict[str, Any]) -> None:
        """A notification, handed to the channels (never waits on them)."""

    @abstractmethod
    def save_pending(self) -> None:
        """pending.json: every restart in flight, so a restarted daemon carries them on."""

    # -- the process table
    @abstractmethod
    def alive(self, ident: Identity) -> bool: ...

    @abstractmethod
    def reprove(self, ident: Identity, home: Path) -> tuple[bool, str]:
        """Still this home's gateway (same user, create time, command line, readable environment)?"""

    # -- evidence
    @abstractmethod
    def capture_stack(self, ident: Identity, home: Path, hot_tid: int | None) -> StackAnalysis: ...

    @abstractmethod
    def gateway_files(self, home: Path) -> tuple[PidRecord, GatewayState, str]:
        """The gateway's PID file and state file as read now, and its log tail, for an incident folder."""

    @abstractmethod
    def describe(self, ident: Identity, home: Path, stack: StackAnalysis,
                 cpu: CpuUsage | None) -> tuple[dict[str, str | None], str | None]:
        """(the versions: host, Hermes, its Python, the fix pack; the hot thread's name) for a record."""

    # -- acting
    @abstractmethod
    def manager(self, target: Target) -> ServiceManager: ...

    @abstractmethod
    def starter(self, target: Target) -> ServiceManager:
        """The manager that can start a gateway that is not running (after Hermes' own exit)."""

    @abstractmethod
    def final_signal(self, ident: Identity, home: Path, stack_captured: bool) -> tuple[signal.Signals, str | None]:
        """SIGKILL, or SIGABRT (with why) when no stack was taken and the gateway prints one as it dies."""

    @abstractmethod
    def error_log_size(self, home: Path) -> int: ...

    @abstractmethod
    def restart_ports(self, home: Path) -> Ports:
        """The restart machine's clock, process probe, guarded signal sender and new-gateway check."""
