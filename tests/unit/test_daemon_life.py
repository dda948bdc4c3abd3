"""A watched gateway's whole life on a fake World (tests/unit/fakeworld.py): healthy -> proven -> restart ->
verify -> closed, alerts and their escalation, the budget's cooldown and give-up, dry runs, identity
checks, a daemon restarted in each phase of a restart, and Hermes' own exit. No processes: milliseconds."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from hermes_watchdog.act.restart import RestartMachine
from hermes_watchdog.act.restart_state import Phase
from hermes_watchdog.daemon import exits, restarts
from hermes_watchdog.daemon.incident_life import EDGES, IllegalTransition, IncidentLife, Stage
from hermes_watchdog.judge import policy
from hermes_watchdog.judge.verdict import UNKNOWN, Verdict
from hermes_watchdog.record import incidents, status_file
from tests.unit.fakeworld import NEW, OLD, Life, alert, busy, healthy, restart


@pytest.fixture
def life(tmp_path: Path) -> Life:
    return Life(tmp_path)


# ---------------------------------------------------------------- healthy, and the plain restart
def test_a_healthy_gateway_opens_nothing(life: Life) -> None:
    for _ in range(5):
        life.see(healthy(), policy.Action(policy.NONE, ""))
    assert life.w.life is None and life.world.events == [] and life.world.folders() == []


def test_a_wait_opens_nothing(life: Life) -> None:
    life.see(busy(), policy.Action(policy.WAIT, "held 10 s of 60"))
    assert life.w.life is None and life.world.folders() == [] and not life.world.restarter.asked


def test_a_proven_restart_opens_the_incident_with_evidence_then_asks_the_manager(life: Life) -> None:
    life.see(busy(), restart())
    assert life.world.kinds()[:2] == ["ALERT", "RESTART"]
    assert life.w.life is not None and life.w.life.stage is Stage.RESTARTING
    rec = life.world.saved()
    assert rec["result"] == "restarting" and rec["stack"]["captured"] and rec["restart"]["manager"] == "signal"
    assert len(life.world.restarter.asked) == 1 and life.world.restarter.asked[0].ident == OLD
    assert life.world.sent() == ["incident"]  # one message, sent once the first action was known


def test_pending_json_holds_the_restart_in_flight_and_goes_when_it_is_done(life: Life) -> None:
    life.see(busy(), restart())
    entry = life.world.pending()[str(life.w.home)]
    assert entry["family"] == "family-token" and entry["phase"] == "stopping"
    assert entry["restart_record"]["manager"] == "signal" and entry["signature"] == "busy-loop"
    life.relaunch()
    life.run_machine()
    assert life.world.pending() == {}


def test_the_whole_life_healthy_proven_restarted_verified_closed(life: Life) -> None:
    life.see(healthy(), policy.Action(policy.NONE, ""))
    life.see(busy(), restart())
    life.relaunch()
    life.run_machine()
    rec = life.world.saved()
    assert rec["result"] == "restarted" and rec["new_pid"] == NEW.pid and rec["verify"]["ok"]
    assert rec["closed_at"] and any("closed: restarted" in t for t in rec["timeline"])
    assert life.w.life is None and life.w.ident == NEW and life.w.machine is None
    assert life.world.sent() == ["incident", "recovery"]
    assert life.w.history[-1]["result"] == "restarted" and life.w.history[-1]["new_pid"] == NEW.pid
    assert life.w.counts.restarts[("busy-loop", "restarted")] == 1
    assert "VERIFY" in life.world.kinds() and "RECOVERED" in life.world.kinds()


def test_a_sigterm_deaf_gateway_gets_sigkill_after_the_grace(life: Life) -> None:
    life.see(busy(), restart())
    life.run_machine()  # nobody relaunches: the old one dies of SIGKILL, no new one comes
    assert (OLD.pid, "SIGKILL") in life.world.table.kills
    rec = life.world.saved()
    assert rec["restart"]["sigkill_needed"] and "SIGKILL" in rec["restart"]["signals"]
    assert rec["result"] == "restart-failed" and life.world.said("KILL")


def test_a_gateway_that_vanishes_mid_restart_is_not_killed(life: Life) -> None:
    life.see(busy(), restart())
    life.world.table.living.discard(OLD.pid)  # it exited on its own before the grace ran out
    life.run_machine()
    assert life.world.table.kills == [] and life.world.saved()["result"] == "restart-failed"


def test_a_starved_loop_gets_sigkill_after_the_short_grace(tmp_path: Path) -> None:
    life = Life(tmp_path, grace=30.0, starved_grace=5.0)
    life.see(Verdict("busy-loop", 0.95, ("busy-loop",), proof="stack"), restart())
    assert life.w.machine is not None
    grace = life.w.machine.r.grace
    assert grace == (5.0 if life.w.verdict is not None and life.w.verdict.sigterm_unhandled else 30.0)


# ---------------------------------------------------------------- alerts and their escalation
def test_an_alert_is_one_incident_one_message_and_no_signal(life: Life) -> None:
    for _ in range(4):
        life.see(Verdict("loop-frozen", 0.9, ("loop-frozen",)), alert())
    assert life.w.life is not None and life.w.life.stage is Stage.ALERTED
    assert len(life.world.folders()) == 1 and life.world.sent() == ["incident"]
    assert life.world.said("ALERT") and not life.world.restarter.asked and life.world.table.kills == []
    assert life.world.saved()["action"]["kind"] == "alert" and life.world.saved()["result"] == "alerted"


def test_an_alert_escalated_by_a_second_witness_restarts_on_the_same_incident(life: Life) -> None:
    frozen = Verdict("loop-frozen", 0.9, ("loop-frozen",))
    life.see(frozen, alert())
    life.see(frozen, restart("the heartbeat is stale too"))
    assert life.w.life is not None and life.w.life.stage is Stage.RESTARTING
    assert len(life.world.folders()) == 1 and len(life.world.restarter.asked) == 1
    assert any("now restarting" in t for t in life.world.said("INFO"))
    assert life.world.sent() == ["incident", "restart"]


def test_restarts_off_is_an_alert_said_once(tmp_path: Path) -> None:
    life = Life(tmp_path, restart_with="none")
    for _ in range(5):
        life.see(busy(), restart())
    assert life.w.life is not None and life.w.life.stage is Stage.ALERTED
    assert "restarts are off" in life.world.saved()["action"]["why"]
    # Not "escalated" every tick: restarts are off, there is nothing to escalate to.
    assert not any("now restarting" in t for t in life.world.said("INFO")) and not life.world.restarter.asked


def test_an_alert_of_another_signature_does_not_escalate(life: Life) -> None:
    life.see(Verdict("loop-frozen", 0.9, ("loop-frozen",)), alert())
    life.see(busy(), restart())
    assert life.w.life is not None and life.w.life.stage is Stage.ALERTED and not life.world.restarter.asked


# ---------------------------------------------------------------- closing
def test_a_verdict_that_is_over_closes_an_alert_as_recovered(life: Life) -> None:
    life.see(Verdict("loop-frozen", 0.9, ("loop-frozen",)), alert())
    life.see(healthy(), policy.Action(policy.NONE, ""))
    rec = life.world.saved()
    assert rec["result"] == "recovered" and rec["closed_at"] and life.w.life is None
    assert life.world.sent() == ["incident", "recovery"]


def test_an_unknown_verdict_closes_nothing(life: Life) -> None:
    life.see(Verdict("loop-frozen", 0.9, ("loop-frozen",)), alert())
    life.see(Verdict(UNKNOWN, 0.0, ("no data",)), policy.Action(policy.NONE, ""))
    assert life.w.life is not None and "closed_at" not in life.world.saved()


def test_a_give_up_closes_as_a_give_up(tmp_path: Path) -> None:
    life = Life(tmp_path, max_restarts=0)
    life.see(busy(), restart())
    life.see(healthy(), policy.Action(policy.NONE, ""))
    rec = life.world.saved()
    assert rec["result"] == "gave-up" and rec["closed_at"] and life.w.gave_up is None


# ---------------------------------------------------------------- the budget
def test_a_spent_budget_gives_up_once(tmp_path: Path) -> None:
    life = Life(tmp_path, max_restarts=0)
    for _ in range(5):
        life.see(busy(), restart())
    assert life.w.life is not None and life.w.life.stage is Stage.GAVE_UP
    assert len(life.world.said("GIVE-UP")) == 1 and life.world.sent() == ["incident"]  # in the incident message
    assert life.w.gave_up == {"pid": OLD.pid, "create_time": OLD.create_time, "signature": "busy-loop",
                              "incident": life.world.folders()[0].name}
    assert not life.world.restarter.asked and life.world.table.kills == []


def test_a_cooldown_waits_said_once_then_restarts_with_its_own_message(tmp_path: Path) -> None:
    life = Life(tmp_path, max_restarts=3, restart_window=3600.0, cooldown=120.0)
    life.w.restarts = [life.world.wall() - 10]  # one restart 10 s ago: the cooldown runs
    for _ in range(3):
        life.see(busy(), restart())
    assert life.w.life is not None and life.w.life.stage is Stage.COOLING
    assert len(life.world.said("WARN")) == 1 and "restart delayed" in life.world.said("WARN")[0]
    life.world.advance(200)
    life.see(busy(), restart())
    assert life.w.life.stage is Stage.RESTARTING and life.world.sent() == ["incident", "restart"]


def test_a_cooldown_that_ends_in_a_spent_budget_sends_the_give_up(tmp_path: Path) -> None:
    life = Life(tmp_path, max_restarts=2, restart_window=1000.0, cooldown=120.0)
    life.w.restarts = [life.world.wall() - 60]
    life.see(busy(), restart())
    assert life.w.life is not None and life.w.life.stage is Stage.COOLING
    life.w.restarts.append(life.world.wall())  # a restart made meanwhile (by a start after Hermes' own exit)
    life.see(busy(), restart())
    assert life.w.life.stage is Stage.GAVE_UP and life.world.sent() == ["incident", "give-up"]


def test_a_give_up_ends_when_the_budget_allows_again(tmp_path: Path) -> None:
    life = Life(tmp_path, max_restarts=1, restart_window=100.0)
    life.w.restarts = [life.world.wall() - 1]
    life.see(busy(), restart())
    assert life.w.life is not None and life.w.life.stage is Stage.GAVE_UP
    life.world.advance(200)
    life.see(busy(), restart())
    assert life.w.life.stage is Stage.RESTARTING and life.w.gave_up is None
    assert len(life.world.folders()) == 1 and life.world.sent() == ["incident", "restart"]


def test_a_restart_counts_in_the_budget(life: Life) -> None:
    life.see(busy(), restart())
    assert life.w.restarts == [life.world.wall()]


# ---------------------------------------------------------------- dry run, identity
def test_a_dry_run_says_what_it_would_do_and_sends_nothing(tmp_path: Path) -> None:
    life = Life(tmp_path, dry_run=True)
    for _ in range(3):
        life.see(busy(), restart())
    rec = life.world.saved()
    assert rec["result"] == "dry-run" and rec["action"]["kind"] == "dry-run"
    assert len(life.world.said("DRY-RUN")) == 1 and not life.world.restarter.asked
    assert life.world.table.kills == [] and life.world.table.asks == [] and life.w.machine is None


def test_an_identity_that_no_longer_proves_gets_nothing(life: Life) -> None:
    life.world.proven = (False, "its command line changed")
    life.see(busy(), restart())
    assert life.world.saved()["result"] == "not-restarted" and life.w.ident is None
    assert life.world.said("LOST") and not life.world.restarter.asked and life.world.table.asks == []


def test_sigterm_while_evidence_is_taken_acts_on_nothing(life: Life) -> None:
    from hermes_watchdog.daemon.responder import StopRequested

    life.world.stop.set()
    with pytest.raises(StopRequested):
        life.see(busy(), restart())
    assert not life.world.restarter.asked and life.world.folders() == []


def test_an_unwritable_state_dir_is_said_once_and_the_restart_still_happens(tmp_path: Path) -> None:
    life = Life(tmp_path)
    life.world.state_dir.parent.mkdir(exist_ok=True)
    life.world.state_dir.write_text("not a folder")  # the state dir is a file: nothing can be written there
    life.see(busy(), restart())
    assert life.world.problem is not None and len(life.world.restarter.asked) == 1
    assert sum("cannot" in t for t in life.world.said("WARN")) >= 1


# ---------------------------------------------------------------- a daemon restarted mid-restart
@pytest.mark.parametrize("phase", [Phase.STOPPING, Phase.KILLED, Phase.VERIFYING])
def test_a_restarted_daemon_carries_the_restart_on_in_each_phase(life: Life, phase: Phase) -> None:
    life.see(busy(), restart())
    if phase is Phase.KILLED:
        life.world.table.obeys = set()  # alive for a while even after SIGKILL (uninterruptible sleep)
    if phase is not Phase.STOPPING:
        life.world.advance(31)
        assert life.w.machine is not None
        life.w.machine.step()  # past the grace: SIGKILL, and the old one is gone
        if phase is Phase.VERIFYING:
            life.w.machine.step()
        assert life.w.machine.r.phase is phase
    world, w = life.resumed()
    assert w.machine is not None and w.machine.r.phase is phase and world.said("RESUME")
    assert w.life is not None and w.life.stage is Stage.RESTARTING
    life.relaunch()
    for _ in range(200):
        if w.machine is None:
            break
        w.machine.step()
        world.advance(1)
    rec = world.saved()
    assert rec["result"] == "restarted" and w.ident == NEW
    assert life.world.table.kills.count((OLD.pid, "SIGKILL")) <= 1  # never twice


def test_a_pending_entry_of_another_family_is_not_resumed(life: Life) -> None:
    life.see(busy(), restart())
    path = life.world.state_dir / status_file.PENDING_FILE
    data = json.loads(path.read_text())
    data[str(life.w.home)]["family"] = "someone-else"
    path.write_text(json.dumps(data))
    world, w = life.resumed()
    assert w.machine is None and any("not written by a hermes-watchdog of this state dir" in t
                                     for t in world.said("WARN"))


def test_a_pending_entry_naming_a_foreign_incident_is_not_resumed(life: Life, tmp_path: Path) -> None:
    life.see(busy(), restart())
    path = life.world.state_dir / status_file.PENDING_FILE
    data = json.loads(path.read_text())
    data[str(life.w.home)]["incident"] = str(tmp_path / "elsewhere" / "incident")
    path.write_text(json.dumps(data))
    world, w = life.resumed()
    assert w.machine is None and any("names no incident of this state dir" in t for t in world.said("WARN"))


def test_a_restarted_daemon_carries_a_give_up_on_without_a_new_incident(tmp_path: Path) -> None:
    life = Life(tmp_path, max_restarts=0)
    life.see(busy(), restart())
    gave_up = life.w.gave_up
    world, w = life.resumed()
    w.ident, w.resumed_give_up = OLD, gave_up  # what state.json gave back (record/status_file.py)
    from hermes_watchdog.daemon.responder import Responder

    w.verdict = busy()
    Responder(world).handle(w, busy(), restart())
    assert len(world.folders()) == 1 and world.sent() == [] and w.life is not None
    assert w.life.stage is Stage.GAVE_UP and w.counts.opened == 1


def test_a_give_up_of_another_process_is_a_new_incident(tmp_path: Path) -> None:
    life = Life(tmp_path, max_restarts=0)
    life.see(busy(), restart())
    gave_up = dict(life.w.gave_up or {}, pid=OLD.pid + 1)
    world, w = life.resumed()
    w.ident, w.resumed_give_up = OLD, gave_up
    from hermes_watchdog.daemon.responder import Responder

    Responder(world).handle(w, busy(), restart())
    assert len(world.folders()) == 2 and world.sent() == ["incident"]


# ---------------------------------------------------------------- Hermes' own exit
def _after_exit(life: Life) -> RestartMachine:
    """Hermes' own watchdog ended the gateway for a restart: an incident and the machine waiting."""
    world, w = life.world, life.w
    exits._open(world, w, OLD, world.gateway_files(w.home)[1], "exit code 75", world.wall())
    assert w.life is not None
    w.life.restarting("waiting for the manager's relaunch")
    w.machine = RestartMachine.after_exit(OLD, exits.ExitPorts(world, w, OLD), restarts.WatchJournal(world, w),
                                          gone_at=world.mono(), wall=world.wall(), start_timeout=30)
    w.machine.start("ended by Hermes' own watchdog")
    world.table.living.discard(OLD.pid)
    return w.machine


def test_hermes_own_exit_relaunched_by_its_manager_is_verified_not_restarted(life: Life) -> None:
    _after_exit(life)
    life.relaunch()
    life.run_machine()
    rec = life.world.saved()
    assert rec["result"] == "relaunched" and life.world.table.kills == [] and not life.world.starter_.started


def test_hermes_own_exit_with_no_relaunch_is_started_by_the_watchdog(life: Life) -> None:
    _after_exit(life)
    life.run_machine()
    rec = life.world.saved()
    assert rec["result"] == "started" and len(life.world.starter_.started) == 1
    assert rec["restart"]["kind"] == "start after Hermes' own exit" and life.world.sent()[0] == "incident"


def test_hermes_own_exit_that_cannot_be_started_is_an_alert_left_open(life: Life) -> None:
    life.world.starter_.can = False
    _after_exit(life)
    life.run_machine()
    assert life.w.life is not None and life.w.life.stage is Stage.NOT_STARTED
    rec = life.world.saved()
    assert rec["result"] == "not-started" and rec["action"]["kind"] == "alert"
    assert life.world.said("ALERT") and life.world.sent() == ["incident"]
    life.w.ident = NEW  # started by hand: the alert is over
    life.see(healthy(), policy.Action(policy.NONE, ""))
    assert life.world.saved()["result"] == "recovered" and life.world.sent() == ["incident", "recovery"]


# ---------------------------------------------------------------- the incident's stages themselves
def _bare(tmp_path: Path, stage: Stage = Stage.OPEN) -> IncidentLife:
    life = Life(tmp_path)
    folder = incidents.new_folder(life.world.state_dir, "busy-loop", None, life.world.wall())
    inc = incidents.Incident(folder, "busy-loop", life.world.wall(), {"signature": "busy-loop"}, "", "")
    return IncidentLife(life.world, "default", life.w.home, inc, stage)


def test_a_finished_restart_cannot_become_an_alert(tmp_path: Path) -> None:
    inc = _bare(tmp_path, Stage.RESTARTED)
    with pytest.raises(IllegalTransition):
        inc.alert("late")


def test_a_closed_incident_changes_no_more(tmp_path: Path) -> None:
    inc = _bare(tmp_path)
    assert inc.close("over") is Stage.RECOVERED
    with pytest.raises(IllegalTransition):
        inc.alert("late")


def test_every_stage_is_the_result_the_record_shows(tmp_path: Path) -> None:
    inc = _bare(tmp_path)
    for to in (Stage.ALERTED, Stage.COOLING, Stage.GAVE_UP, Stage.RESTARTING, Stage.RESTARTED):
        inc._change(to, f"to {to.value}")
        assert inc.record["result"] == to.value and json.loads(
            (inc.incident.folder / "incident.json").read_text())["result"] == to.value


def test_only_finished_stages_are_final() -> None:
    finals = {Stage.RESTARTED, Stage.RELAUNCHED, Stage.STARTED, Stage.RESTART_FAILED, Stage.RECOVERED}
    assert finals == set(Stage) - set(EDGES)


def test_no_module_but_the_incident_life_writes_a_result() -> None:
    import re

    import hermes_watchdog

    root = Path(hermes_watchdog.__file__).parent
    write = re.compile(r'record\[\s*"result"\s*\]\s*=[^=]|record\.update\([^)]*\bresult=', re.S)
    writers = [str(p.relative_to(root)) for p in root.rglob("*.py") if write.search(p.read_text())]
    assert writers == ["daemon/incident_life.py"], writers


def test_the_final_signal_is_what_the_world_says(life: Life) -> None:
    life.world.final_signal = lambda ident, home, captured: (signal.SIGABRT, "no stack: SIGABRT")  # type: ignore
    life.see(busy(), restart())
    assert life.w.machine is not None and life.w.machine.r.kill_signal is signal.SIGABRT
    assert life.world.saved()["restart"]["final_signal"] == "SIGABRT"


def test_only_the_watch_writes_its_own_fields() -> None:
    """Who is watched, what is judged and what is being done change in daemon/watch.py's methods only."""
    import ast
    import dataclasses

    import hermes_watchdog
    from hermes_watchdog.daemon.watch import Watch

    fields = {f.name for f in dataclasses.fields(Watch)}

    def is_watch(node: ast.expr) -> bool:  # ``w`` or ``self.w``
        return (isinstance(node, ast.Name) and node.id == "w") or (
            isinstance(node, ast.Attribute) and node.attr == "w" and isinstance(node.value, ast.Name))

    def field_of(node: ast.expr) -> str | None:
        while isinstance(node, ast.Subscript):
            node = node.value
        if isinstance(node, ast.Attribute) and is_watch(node.value) and node.attr in fields:
            return node.attr
        return None

    writes = []
    for path in (Path(hermes_watchdog.__file__).parent / "daemon").glob("*.py"):
        if path.name == "watch.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    targets += t.elts if isinstance(t, ast.Tuple) else [t]
            elif isinstance(node, ast.AugAssign | ast.Delete):
                targets = [node.target] if isinstance(node, ast.AugAssign) else list(node.targets)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in {
                    "append", "update", "extend", "pop", "clear", "remove"}:
                targets = [node.func.value]
            writes += [f"{path.name}:{node.lineno} w.{f}" for f in map(field_of, targets)
                       if f is not None and f not in {"window", "said", "counts"}]
    assert writes == []


# ---------------------------------------------------------------- found by a review of the redesign
def test_a_give_up_is_said_once_however_often_the_policy_flips(tmp_path: Path) -> None:
    life = Life(tmp_path, max_restarts=0)
    frozen = Verdict("loop-frozen", 0.9, ("loop-frozen",))
    for _ in range(3):  # a second witness that comes and goes: restart, alert, restart...
        life.see(frozen, restart())
        life.see(frozen, alert())
        assert life.w.gave_up is not None  # kept in state.json through the alerts
    assert len(life.world.said("GIVE-UP")) == 1 and life.world.sent() == ["incident"]
    life.see(healthy(), policy.Action(policy.NONE, ""))
    assert life.world.saved()["result"] == "gave-up"  # what the watchdog did, through the alerts


def test_a_cooldown_is_said_once_however_often_the_policy_flips(tmp_path: Path) -> None:
    life = Life(tmp_path, max_restarts=3, restart_window=3600.0, cooldown=600.0)
    life.w.restarts = [life.world.wall() - 10]
    frozen = Verdict("loop-frozen", 0.9, ("loop-frozen",))
    for _ in range(3):
        life.see(frozen, restart())
        life.see(frozen, alert())
    assert len([t for t in life.world.said("WARN") if "restart delayed" in t]) == 1


def test_the_first_action_is_decided_after_the_evidence(tmp_path: Path) -> None:
    """The stack capture takes seconds: a cooldown that ended meanwhile is no reason to wait a tick."""
    life = Life(tmp_path, max_restarts=3, restart_window=3600.0, cooldown=120.0)
    life.w.restarts = [life.world.wall() - 100]  # 20 s of cooldown left
    capture = life.world.capture_stack

    def slow(*args: object) -> object:
        life.world.advance(30)
        return capture(*args)  # type: ignore[arg-type]

    life.world.capture_stack = slow  # type: ignore[method-assign]
    life.see(busy(), restart())
    assert life.w.life is not None and life.w.life.stage is Stage.RESTARTING
    assert not any("restart delayed" in t for t in life.world.said("WARN")) and life.world.sent() == ["incident"]


def test_a_not_started_incident_says_how_the_wait_went(life: Life) -> None:
    life.world.starter_.can = False
    _after_exit(life)
    life.run_machine()
    rec = life.world.saved()
    assert rec["verify"]["ok"] is False and rec["verify"]["detail"] and rec["new_pid"] is None


def test_a_restarted_daemon_carries_on_the_wait_after_hermes_own_exit(life: Life) -> None:
    """Resumed in Hermes' own exit's phases: waiting for the manager's relaunch, then starting it itself."""
    _after_exit(life)
    world, w = life.resumed()
    assert w.machine is not None and w.machine.r.origin == "hermes" and world.said("RESUME")
    for _ in range(200):
        if w.machine is None:
            break
        w.machine.step()
        world.advance(1)
    rec = world.saved()
    assert rec["result"] == "started" and len(world.starter_.started) == 1 and w.ident == NEW
