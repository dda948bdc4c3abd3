"""Every edge of the restart state machine, with plain objects: a fake clock, a process table that is a
dict, a signal sender that records (as supervisor's tests record kills on a dummy). No processes."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hermes_watchdog.act.managers.base import RestartResult, ServiceManager, Target
from hermes_watchdog.act.restart import FINAL_SIGKILL_AFTER, NewCheck, RestartMachine
from hermes_watchdog.act.restart_state import Phase, Restart
from hermes_watchdog.facts.identity import Identity

OLD = Identity(100, 1000.0, ("python", "-m", "hermes_cli.main", "gateway", "run"), 5)
NEW = Identity(200, 2000.0, ("python", "-m", "hermes_cli.main", "gateway", "run"), 9)


@dataclass
class World:
    """The ports: time, which processes live, what a kill does, what the new gateway looks like."""

    t: float = 0.0
    living: set[int] = field(default_factory=lambda: {OLD.pid})
    identities: dict[int, Identity] = field(default_factory=lambda: {OLD.pid: OLD})
    kills: list[tuple[int, str]] = field(default_factory=list)  # signals that reached a process
    asks: list[tuple[Identity, str]] = field(default_factory=list)  # every call of the guarded sender
    checked: list[Identity] = field(default_factory=list)  # whom check_new was asked about
    obeys: set[signal.Signals] = field(default_factory=lambda: {signal.SIGKILL})  # SIGTERM-deaf by default
    new: Identity | None = None
    new_check: NewCheck = field(default_factory=NewCheck)

    def now(self) -> float:
        return self.t

    def alive(self, ident: Identity) -> bool:
        return ident.pid in self.living and self.identities.get(ident.pid) == ident

    def kill(self, ident: Identity, sig: signal.Signals) -> tuple[bool, str]:
        self.asks.append((ident, sig.name))
        if not self.alive(ident):  # the guarded sender's identity check
            return False, f"not sent {sig.name}: identity changed"
        self.kills.append((ident.pid, sig.name))
        if sig in self.obeys:
            self.living.discard(ident.pid)
        return True, f"sent {sig.name} to PID {ident.pid}"

    def find_new(self, old: Identity) -> tuple[Identity | None, str]:
        return self.new, "gateway.pid names it"

    def check_new(self, new: Identity) -> NewCheck:
        self.checked.append(new)
        return self.new_check


@dataclass
class Recorder:
    transitions: list[tuple[Phase | None, Phase, str]] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)

    def transition(self, r: Restart, before: Phase | None, after: Phase, why: str) -> None:
        self.transitions.append((before, after, why))

    def event(self, r: Restart, kind: str, text: str) -> None:
        self.events.append((kind, text))

    @property
    def path(self) -> list[Phase]:
        return [after for _, after, _ in self.transitions]


class DummyManager(ServiceManager):
    """Records the request; answers as told (a unit that is missing, a command that fails...)."""

    def __init__(self, name: str = "signal", ok: bool = True, signals: tuple[str, ...] = ("SIGTERM",)) -> None:
        self.name, self.ok, self.signals = name, ok, list(signals)
        self.asked: list[Target] = []

    def restart(self, target: Target, stop: threading.Event) -> RestartResult:
        self.asked.append(target)
        return RestartResult(self.name, self.ok, "ok" if self.ok else "no such unit", signals=self.signals)


def begin(world: World, rec: Recorder, grace: float = 20.0, start_timeout: float = 90.0,
          kill_signal: signal.Signals = signal.SIGKILL, manager: ServiceManager | None = None) -> RestartMachine:
    m, _ = RestartMachine.request(manager or DummyManager(), Target(Path("/h"), None, OLD), threading.Event(), world,
                                  rec, wall=1e9, grace=grace, start_timeout=start_timeout, kill_signal=kill_signal)
    m.start("busy-loop held")
    return m


def test_start_enters_stopping_through_the_one_transition_point() -> None:
    world, rec = World(), Recorder()
    m = begin(world, rec)
    assert m.r.phase == Phase.STOPPING and rec.transitions == [(None, Phase.STOPPING, "busy-loop held")]
    assert m.r.kill_at == 20.0 and m.r.signals == ["SIGTERM"]


def test_a_manager_that_fails_gets_the_fallback_sigterm_through_the_guarded_sender() -> None:
    world, rec = World(obeys={signal.SIGTERM, signal.SIGKILL}), Recorder()
    manager = DummyManager("systemd", ok=False, signals=())
    m, asked = RestartMachine.request(manager, Target(Path("/h"), None, OLD), threading.Event(), world, rec,
                                      wall=1e9, grace=20, start_timeout=90)
    assert manager.asked and not asked.result.ok
    # The whole identity went to the guarded sender (which re-proves it), and the machine counts the SIGTERM
    # it sent: the process is being stopped, so it may get SIGABRT for a last stack later.
    assert world.asks == [(OLD, "SIGTERM")] and m.r.signals == ["SIGTERM"] and m.r.stop_asked
    assert m.r.manager == "systemd" and rec.transitions == []  # not started yet
    m.start("busy-loop held")
    assert m.step() == Phase.VERIFYING  # it obeyed the fallback


def test_a_manager_that_succeeds_gets_no_fallback_and_a_failing_signal_manager_no_second_sigterm() -> None:
    for manager in (DummyManager("launchd", ok=True, signals=()), DummyManager("signal", ok=False, signals=())):
        world = World()
        _, asked = RestartMachine.request(manager, Target(Path("/h"), None, OLD), threading.Event(), world,
                                          Recorder(), wall=1e9, grace=20, start_timeout=90)
        assert world.kills == [] and asked.fallback is None


def test_the_fallback_is_refused_when_the_identity_changed() -> None:
    world = World()
    world.identities[OLD.pid] = Identity(OLD.pid, 1.0, ("sleep", "60"), 1)  # recycled before the fallback
    m, asked = RestartMachine.request(DummyManager("command", ok=False, signals=()), Target(Path("/h"), None, OLD),
                                      threading.Event(), world, Recorder(), wall=1e9, grace=20, start_timeout=90,
                                      kill_signal=signal.SIGABRT)
    # Tried through the guarded sender, refused there: not counted as sent, and nothing is being stopped.
    assert world.asks == [(OLD, "SIGTERM")] and asked.fallback is not None
    assert m.r.signals == [] and not m.r.stop_asked and m.r.final_signal() == signal.SIGKILL


def test_old_process_obeys_sigterm_then_new_gateway_is_verified() -> None:
    world, rec = World(), Recorder()
    m = begin(world, rec)
    assert m.step() == Phase.STOPPING  # still there, grace not over: nothing happens
    world.living.discard(OLD.pid)  # it obeyed the SIGTERM
    world.t = 3.0
    assert m.step() == Phase.VERIFYING and m.r.verify_until == 93.0
    assert world.kills == []  # no SIGKILL needed
    assert m.step() == Phase.VERIFYING  # no new gateway yet
    world.new = NEW
    assert m.step() == Phase.VERIFYING and m.r.new == NEW and rec.events[0][0] == "VERIFY"
    world.new_check = NewCheck(ready=True, detail="ready")
    assert m.step() == Phase.RESTARTED
    assert rec.path == [Phase.STOPPING, Phase.VERIFYING, Phase.RESTARTED] and not m.r.killed
    # Verified on the new gateway it found, never the old one, and the verification is why it ended.
    assert world.checked == [NEW, NEW] and rec.transitions[-1] == (Phase.VERIFYING, Phase.RESTARTED, m.r.detail)


def test_grace_over_sends_sigkill_once_then_verifies() -> None:
    world, rec = World(obeys=set()), Recorder()  # deaf to everything at first
    m = begin(world, rec, grace=20)
    world.t = 19.9
    assert m.step() == Phase.STOPPING and world.kills == []
    world.t = 20.0
    assert m.step() == Phase.KILLED
    assert world.kills == [(OLD.pid, "SIGKILL")] and m.r.killed and m.r.signals == ["SIGTERM", "SIGKILL"]
    world.t = 21.0
    assert m.step() == Phase.KILLED and len(world.kills) == 1  # never a second SIGKILL
    world.living.discard(OLD.pid)
    assert m.step() == Phase.VERIFYING


def test_grace_over_with_the_kill_taking_effect_at_once_goes_on_to_verifying() -> None:
    world, rec = World(), Recorder()
    m = begin(world, rec, grace=1)
    world.t = 1.0
    m.step()
    assert rec.path == [Phase.STOPPING, Phase.KILLED, Phase.VERIFYING]


def test_identity_changed_before_the_kill_sends_nothing() -> None:
    world, rec = World(), Recorder()
    m = begin(world, rec, grace=5)
    # The PID now belongs to another process (recycled): alive() says the old one is gone.
    world.identities[OLD.pid] = Identity(OLD.pid, 5555.0, ("sleep", "60"), 77)
    world.t = 6.0
    assert m.step() == Phase.VERIFYING
    assert world.kills == [] and Phase.KILLED not in rec.path


def test_a_refused_kill_is_recorded_and_the_stop_timeout_ends_it() -> None:
    world, rec = World(obeys=set()), Recorder()
    world.kill = lambda ident, sig: (False, f"not sent {sig.name}: permission denied")  # type: ignore[method-assign]
    m = begin(world, rec, grace=2, start_timeout=10)
    world.t = 2.0
    assert m.step() == Phase.KILLED and not m.r.killed and m.r.signals[-1] == "SIGKILL not sent"
    world.t = 11.9
    assert m.step() == Phase.KILLED
    world.t = 12.0
    assert m.step() == Phase.FAILED and "still alive" in m.r.detail


def test_start_timeout_over_is_restart_failed() -> None:
    world, rec = World(), Recorder()
    m = begin(world, rec, start_timeout=30)
    world.living.clear()
    world.t = 1.0
    assert m.step() == Phase.VERIFYING
    world.t = 31.0
    assert m.step() == Phase.VERIFYING  # exactly at the deadline: not over yet
    world.t = 31.1
    assert m.step() == Phase.FAILED and m.r.detail == "no new gateway appeared within 30 s"
    assert m.step() == Phase.FAILED and rec.path.count(Phase.FAILED) == 1  # done stays done, said once


def test_a_new_gateway_that_never_calms_down_fails_with_its_pid() -> None:
    world, rec = World(new=NEW), Recorder()
    m = begin(world, rec, start_timeout=5)
    world.living.clear()
    m.step()
    world.t = 10.0
    assert m.step() == Phase.FAILED and "new gateway PID 200 did not reach 'running'" in m.r.detail


def test_a_new_gateway_that_vanishes_is_looked_for_again() -> None:
    world, rec = World(new=NEW, new_check=NewCheck(gone=True)), Recorder()
    m = begin(world, rec)
    world.living.clear()
    assert m.step() == Phase.VERIFYING and m.r.new is None
    assert [k for k, _ in rec.events] == ["VERIFY", "INFO"]


def test_sigabrt_can_replace_sigkill_as_the_last_signal() -> None:
    world, rec = World(obeys={signal.SIGABRT}), Recorder()
    m = begin(world, rec, grace=3, kill_signal=signal.SIGABRT)
    world.t = 3.0
    m.step()
    assert world.kills == [(OLD.pid, "SIGABRT")] and m.r.phase == Phase.VERIFYING


def test_a_process_that_outlives_sigabrt_gets_sigkill_once_after_a_short_wait() -> None:
    """SIGABRT is for a last stack, not a softer kill: a process that survives it is killed anyway."""
    world, rec = World(), Recorder()  # obeys SIGKILL only (a SIGABRT handler that does not exit)
    m = begin(world, rec, grace=3, kill_signal=signal.SIGABRT)
    world.t = 3.0
    assert m.step() == Phase.KILLED and world.kills == [(OLD.pid, "SIGABRT")]
    world.t = 3.0 + FINAL_SIGKILL_AFTER - 0.1
    assert m.step() == Phase.KILLED and len(world.kills) == 1  # dying of SIGABRT takes a moment
    world.t = 3.0 + FINAL_SIGKILL_AFTER
    m.step()
    assert world.kills == [(OLD.pid, "SIGABRT"), (OLD.pid, "SIGKILL")] and m.r.phase == Phase.VERIFYING
    assert m.r.signals == ["SIGTERM", "SIGABRT", "SIGKILL"] and rec.events[0][0] == "KILL"
    world.t += 100
    m.step()
    assert len(world.kills) == 2


def test_a_plain_sigkill_restart_sends_no_second_sigkill() -> None:
    world, rec = World(obeys=set()), Recorder()  # nothing kills it
    m = begin(world, rec, grace=3)
    world.t = 3.0 + FINAL_SIGKILL_AFTER + 1
    m.step()
    m.step()
    assert world.kills == [(OLD.pid, "SIGKILL")]


@pytest.mark.parametrize("phase", [Phase.STOPPING, Phase.KILLED, Phase.VERIFYING])
def test_resume_from_pending_in_each_phase(phase: Phase) -> None:
    """pending.json round trip, with the clocks of a daemon that restarted 50 s later."""
    world, rec = World(obeys=set()), Recorder()
    m = begin(world, rec, grace=20, start_timeout=30)
    m.r.phase = phase
    if phase == Phase.VERIFYING:
        m.r.verify_until = 30.0
    saved = m.r.to_dict(lambda mono: 1e9 + mono)  # first daemon: wall = 1e9 + monotonic
    # Second daemon: its monotonic clock is 500 s behind the first one's, and 50 s went by.
    world2, rec2 = World(t=50.0 - 500.0, obeys=set()), Recorder()
    r = Restart.from_dict(saved, lambda wall: wall - 1e9 - 500.0, grace=1, start_timeout=1)
    assert r.phase == phase and r.old == OLD and r.signals == ["SIGTERM"]
    assert r.kill_at == 20.0 - 500.0  # same moment, on the new clock
    m2 = RestartMachine(r, world2, rec2)
    m2.resume()
    if phase == Phase.VERIFYING:
        assert r.verify_until == world2.t + 30  # the deadline passed while down: afresh
        world2.living.clear()
        world2.new, world2.new_check = NEW, NewCheck(ready=True, detail="ok")
        assert m2.step() == Phase.RESTARTED
    elif phase == Phase.STOPPING:
        assert m2.step() == Phase.KILLED and world2.kills == [(OLD.pid, "SIGKILL")]  # the grace was over
    else:
        assert m2.step() == Phase.FAILED  # killed, still alive past the stop timeout (50 s > 20 + 30)
        assert world2.kills == []  # never a second kill after a resume


@pytest.mark.parametrize("bad", [
    {},
    {"phase": "restarted"},
    {"phase": "stopping", "old": {"pid": "x"}},
    {"phase": "nonsense"},
    {"phase": "stopping", "old": OLD.to_dict(), "manager": "signal", "started_wall": "soon"},
])
def test_a_corrupt_pending_record_is_refused(bad: dict) -> None:
    with pytest.raises((KeyError, TypeError, ValueError)):
        Restart.from_dict(bad, lambda wall: wall, grace=20, start_timeout=90)


def test_a_pending_record_of_the_previous_version_is_carried_on_with_the_configured_times() -> None:
    old_format = {"old": OLD.to_dict(), "manager": "signal", "started_wall": 100.0, "kill_at_wall": 120.0,
                  "killed": False, "phase": "stopping", "verify_until_wall": None}
    r = Restart.from_dict(old_format, lambda wall: wall, grace=20, start_timeout=90)
    assert (r.phase, r.grace, r.start_timeout, r.kill_at, r.stop_until) == (Phase.STOPPING, 20, 90, 120.0, 210.0)


def test_sigabrt_goes_only_to_a_process_already_being_stopped() -> None:
    """Nothing took the request (the manager failed, the fallback SIGTERM was refused): the process is still
    killed after the grace, but with SIGKILL -- SIGABRT is never a diagnostic of its own."""
    world, rec = World(), Recorder()
    world.kill = lambda ident, sig: ((False, "not sent SIGTERM: permission denied") if sig == signal.SIGTERM  # type: ignore[method-assign]
                                     else World.kill(world, ident, sig))
    m = begin(world, rec, grace=3, kill_signal=signal.SIGABRT, manager=DummyManager("systemd", ok=False, signals=()))
    assert m.r.stop_asked is False and m.r.final_signal() == signal.SIGKILL
    world.t = 3.0
    m.step()
    assert world.kills == [(OLD.pid, "SIGKILL")] and "SIGABRT" not in m.r.signals
    assert any("only ends a process already being stopped" in text for _, text in rec.events), rec.events


def test_sigabrt_after_a_taken_request_and_never_another_signal_in_its_place() -> None:
    world, rec = World(obeys={signal.SIGABRT}), Recorder()
    m = begin(world, rec, grace=3, kill_signal=signal.SIGABRT, manager=DummyManager("systemd", ok=True, signals=()))
    assert m.r.stop_asked and m.r.final_signal() == signal.SIGABRT
    odd = begin(World(), Recorder(), kill_signal=signal.SIGUSR2)  # not a final signal: SIGKILL instead
    assert odd.r.kill_signal == signal.SIGKILL and odd.r.final_signal() == signal.SIGKILL


def test_a_resumed_record_without_the_stop_proof_ends_with_sigkill() -> None:
    world, rec = World(), Recorder()
    m = begin(world, rec, grace=3, kill_signal=signal.SIGABRT)
    data = m.r.to_dict(lambda mono: 1e9 + mono)
    assert data["stop_asked"] is True
    assert Restart.from_dict(data, lambda wall: wall - 1e9, grace=3, start_timeout=90).final_signal() == signal.SIGABRT
    del data["stop_asked"]  # written by an older daemon
    assert Restart.from_dict(data, lambda wall: wall - 1e9, grace=3, start_timeout=90).final_signal() == signal.SIGKILL
    data["kill_signal"] = "SIGUSR2"
    assert Restart.from_dict(data, lambda wall: wall - 1e9, grace=3, start_timeout=90).kill_signal == signal.SIGKILL


def test_progress_says_where_a_restart_in_flight_stands() -> None:
    """Issue 24 item 5: one sentence per phase for `status` and the WAIT line."""
    from hermes_watchdog.act.restart_state import ORIGIN_HERMES, Phase, Restart, progress
    from hermes_watchdog.facts.identity import Identity

    old = Identity(pid=4242, create_time=1.0, cmdline=("hermes", "gateway", "run"), start_ticks=100, uid=0)
    r = Restart(old=old, manager="systemd", started=100.0, started_wall=1000.0, grace=3.0, start_timeout=90.0,
                kill_at=103.0, verify_until=190.0)
    assert progress(r, 101.0) == "asked systemd to stop PID 4242 1 s ago; SIGKILL in 2 s if it is still there"
    r.phase = Phase.KILLED
    assert "killed 5 s ago, waiting for it to go" in progress(r, 108.0)
    r.phase = Phase.VERIFYING
    assert progress(r, 130.0) == ("PID 4242 is gone (30 s since the restart began); waiting for systemd to relaunch it "
                                  "(60 s left of --start-timeout)")
    r.origin = ORIGIN_HERMES
    assert "waiting for Hermes' manager to relaunch it" in progress(r, 130.0)
    r.new = Identity(pid=5151, create_time=2.0, cmdline=("hermes",), start_ticks=200, uid=0)
    assert progress(r, 130.0).startswith("new gateway PID 5151 found; verifying")
