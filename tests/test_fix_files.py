"""Files and hangs (issue 11, items 6, 7, 8 and 10): symlinks never followed, folders we did not create
keep their mode, FIFOs never block a read, odd bytes and numbers in files or argv never stop a watch, and
names from disk never forge an event line or reach the terminal raw."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hermes_watchdog.observe import statefile
from hermes_watchdog.record import incidents, private
from tests.helpers import all_files, cli, read_json, signals_received, wait_for

FAST = ("--interval", "0.5", "--window", "3", "--grace", "1", "--cooldown", "0", "--start-timeout", "30",
        "--loop-proof", "3")
GUARD = 90  # seconds: only so that a hang fails the test instead of stalling the suite
EVENT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ hermes-watchdog [A-Z-]+ ")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _no_internal_error(r) -> None:
    assert "internal error" not in r.err and "Traceback" not in r.err, r.err


# ---------------------------------------------------------------- item 6: symlinks and modes
def test_make_dir_refuses_a_symlink_and_leaves_its_target_alone(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    target.chmod(0o755)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(OSError, match="symbolic link"):
        private.make_dir(link)
    assert _mode(target) == 0o755
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(OSError):
        private.make_dir(dangling)
    assert not (tmp_path / "nowhere").exists()


def test_make_dir_keeps_an_existing_folders_mode_and_makes_new_levels_private(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    assert private.make_dir(shared) == shared
    assert _mode(shared) == 0o1777
    private.make_dir(shared / "a" / "b")
    assert _mode(shared) == 0o1777
    assert _mode(shared / "a") == 0o700 and _mode(shared / "a" / "b") == 0o700


def test_run_state_dir_on_an_existing_sticky_folder_keeps_its_mode(tmp_path: Path) -> None:
    home = tmp_path / "hermes"
    home.mkdir()
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    r = cli("run", "--once", "--hermes-home", str(home), "--state-dir", str(shared), "--window", "1",
            "--interval", "0.5", timeout=GUARD)
    _no_internal_error(r)
    assert _mode(shared) == 0o1777
    assert _mode(shared / "state.json") == 0o600


def test_prune_and_new_folder_do_not_follow_a_symlinked_incidents_folder(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    elsewhere = tmp_path / "precious"
    for name in ("20200101T000000Z-busy-loop", "20200102T000000Z-busy-loop", "keep-me"):
        (elsewhere / name).mkdir(parents=True)
        (elsewhere / name / "data.txt").write_text("mine")
    elsewhere.chmod(0o755)
    (state / "incidents").symlink_to(elsewhere)
    with pytest.raises(OSError, match="symbolic link"):
        incidents.prune(state, keep=0)
    with pytest.raises(OSError, match="symbolic link"):
        incidents.new_folder(state, "busy-loop", None, 1.0)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["20200101T000000Z-busy-loop",
                                                           "20200102T000000Z-busy-loop", "keep-me"]
    assert all((elsewhere / n / "data.txt").read_text() == "mine" for n in ("keep-me", "20200101T000000Z-busy-loop"))
    assert _mode(elsewhere) == 0o755
    assert incidents.latest(state) == []


def test_prune_removes_only_real_folders_inside_incidents(tmp_path: Path) -> None:
    state = tmp_path / "state"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_text("mine")
    made = [incidents.new_folder(state, "busy-loop", None, t) for t in (1.0, 2.0, 3.0)]
    (state / "incidents" / "00000000T000000Z-link").symlink_to(outside)
    removed = incidents.prune(state, keep=1)
    assert sorted(removed) == sorted(made[:2])
    assert made[2].is_dir() and not made[0].exists() and not made[1].exists()
    assert (outside / "f").read_text() == "mine"


def test_diagnose_out_on_an_existing_folder_writes_a_new_private_subfolder(sim, tmp_path: Path) -> None:
    g = sim("healthy").wait_running()
    out = tmp_path / "here"
    out.mkdir()
    out.chmod(0o755)
    (out / "mine.txt").write_text("mine")
    r = cli("diagnose", str(g.pid), "--seconds", "1", "--out", str(out), timeout=GUARD)
    assert r.code in (0, 1), r.err
    assert _mode(out) == 0o755
    assert (out / "mine.txt").read_text() == "mine"
    subs = [p for p in out.iterdir() if p.is_dir()]
    assert len(subs) == 1 and subs[0].name.startswith(f"hermes-watchdog-diagnosis-{g.pid}-"), subs
    assert _mode(subs[0]) == 0o700
    assert {p.name for p in all_files(subs[0])} == {"diagnosis.json", "stack.txt", "state.json", "logs-tail.txt",
                                                    "report.md"}
    assert all(_mode(p) == 0o600 for p in all_files(subs[0]))
    assert str(subs[0]) in r.out
    # A second run never reuses the first folder.
    r = cli("diagnose", str(g.pid), "--seconds", "1", "--out", str(out), timeout=GUARD)
    assert r.code in (0, 1), r.err
    assert len([p for p in out.iterdir() if p.is_dir()]) == 2 and _mode(out) == 0o755


def test_diagnose_out_that_cannot_be_written_leaves_nothing_behind(sim, tmp_path: Path) -> None:
    g = sim("healthy").wait_running()
    box = tmp_path / "box"
    box.mkdir()
    (box / "plain.txt").write_text("mine")
    # A path through a regular file: no level of it can be made, whoever runs it (root included).
    r = cli("diagnose", str(g.pid), "--seconds", "1", "--out", str(box / "plain.txt" / "new" / "deeper"),
            timeout=GUARD)
    assert r.code == 2 and r.err.startswith("hermes-watchdog: ") and len(r.err.strip().splitlines()) == 1, r.err
    assert [p.name for p in box.iterdir()] == ["plain.txt"] and (box / "plain.txt").read_text() == "mine"


# ---------------------------------------------------------------- item 7: FIFOs
def _plant_fifos(home: Path, names: tuple[str, ...]) -> None:
    for name in names:
        path = home / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        os.mkfifo(path)


def test_fifos_in_the_home_do_not_hang_diagnose(sim, tmp_path: Path) -> None:
    g = sim("healthy").wait_running()
    planted = tmp_path / "planted"
    _plant_fifos(planted, ("gateway_state.json", "gateway.pid", "logs/gateway.log", "state/gateway.heartbeat",
                           "state/hermes-watchdog-patch.json"))
    r = cli("diagnose", str(g.pid), "--seconds", "1", "--hermes-home", str(planted), timeout=GUARD)
    assert r.code in (0, 1), r.err
    _no_internal_error(r)
    assert "not a regular file" in r.out


def test_fifos_in_the_home_do_not_hang_run(sim, tmp_path: Path) -> None:
    g = sim("healthy").wait_running()
    # The healthy sim has written its state; from now on the state, the log and the heartbeat are FIFOs.
    _plant_fifos(g.home, ("gateway_state.json", "logs/gateway.log", "state/gateway.heartbeat"))
    r = cli("run", "--once", "--hermes-home", str(g.home), "--state-dir", str(tmp_path / "state"), "--window", "1",
            "--interval", "0.5", timeout=GUARD)
    _no_internal_error(r)
    assert f"gateway PID {g.pid}" in r.err and "not a regular file" in r.err, r.err
    assert "error while watching" not in r.err


def test_log_tail_of_a_fifo_is_unreadable_not_a_hang(tmp_path: Path) -> None:
    _plant_fifos(tmp_path, ("logs/gateway.log",))
    code = ("import sys; from pathlib import Path; from hermes_watchdog.observe import logs; "
            "sys.stdout.write(logs.gateway_tail(Path(sys.argv[1])))")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=GUARD,
                       check=False)
    assert r.returncode == 0, r.stderr
    assert "logs/gateway.log: not a regular file" in r.stdout


# ---------------------------------------------------------------- item 8: odd bytes and numbers
def _raw_arg(tmp_path: Path) -> str:
    """A spin-once marker path with a byte that is not UTF-8: argv the gateway really runs with."""
    return os.fsdecode(os.fsencode(str(tmp_path)) + b"/spun-\xff-marker")


def test_non_utf8_argv_gateway_is_reported_and_restarted(tmp_path: Path, supervised, daemons) -> None:
    home = tmp_path / "hermes"
    sup = supervised(home, "--mode", "spin", "--spin-after", "1", "--hook", "--spin-once-marker", _raw_arg(tmp_path))
    old = sup.wait_running()
    d = daemons(tmp_path / "state", "--hermes-home", str(home), "--restart-with", "signal", *FAST)
    wait_for(lambda: d.incidents() and d.incident().get("result") in {"restarted", "restart-failed"},
             what="the restart to finish")
    inc = d.incident()
    assert inc["result"] == "restarted" and inc["pid"] == old
    report = (d.incidents()[-1] / "report.md").read_text()
    assert "spun-\\udcff-marker" in report
    assert "error while watching" not in d.events() and "cannot save" not in d.events()


def test_non_utf8_argv_gateway_diagnose_out(sim, tmp_path: Path) -> None:
    g = sim("healthy", "--spin-once-marker", _raw_arg(tmp_path)).wait_running()
    out = tmp_path / "evidence"
    r = cli("diagnose", str(g.pid), "--seconds", "1", "--out", str(out), timeout=GUARD)
    assert r.code in (0, 1), r.err
    _no_internal_error(r)
    assert "spun-\\udcff-marker" in (out / "report.md").read_text()
    assert "spun-\\udcff-marker" in r.out


HUGE = "9" * 5000


@pytest.mark.parametrize("pid_text, state", [
    (HUGE, '{"pid": ' + HUGE + ', "gateway_state": "running", "start_time": 1e999}'),
    ("\u00b2", '{"pid": "\u00b2", "gateway_state": "running", "start_time": NaN}'),
])
def test_odd_numbers_in_pid_and_state_files(sim, tmp_path: Path, pid_text: str, state: str) -> None:
    g = sim("healthy").wait_running()
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "gateway.pid").write_text(pid_text)
    (planted / "gateway_state.json").write_text(state)
    r = cli("diagnose", str(g.pid), "--seconds", "1", "--hermes-home", str(planted), timeout=GUARD)
    assert r.code in (0, 1), r.err
    _no_internal_error(r)
    assert "== Verdict ==" in r.out
    r = cli("run", "--once", "--hermes-home", str(planted), "--state-dir", str(tmp_path / "state"), "--window", "2",
            "--interval", "0.5", timeout=GUARD)
    _no_internal_error(r)
    assert "error while watching" not in r.err and r.err.count(" WARN ") <= 1, r.err


def test_odd_numbers_parse_as_garbage_not_exceptions() -> None:
    assert statefile.parse_pid("p", HUGE.encode()).pid is None
    assert statefile.parse_pid("p", "\u00b2".encode()).pid is None
    assert statefile.parse_pid("p", b'{"pid": "\xc2\xb2"}').pid is None
    assert statefile.parse_pid("p", b'{"pid": 99999999999999999999}').pid is None
    assert statefile.parse_pid("p", b"4242").pid == 4242
    st = statefile.parse_state("s", ('{"pid": ' + HUGE + "}").encode())
    assert st.read.status == "garbage" and st.pid is None
    for number in (b"1e999", b"-1e999", b"NaN", b"Infinity"):
        st = statefile.parse_state("s", b'{"pid": 4242, "start_time": ' + number + b"}")
        assert st.pid == 4242 and st.start_time is None


@pytest.mark.parametrize("bad", [
    {"gateways": {"home": "x"}},
    {"gateways": ["text", 5, None]},
    {"gateways": [{"home": 5, "restarts": "x"}]},
    {"gateways": [{"home": "HOME", "restarts": {"a": 1}, "restart_history": "x", "gave_up": 7}]},
    {"gateways": [{"home": "HOME", "restarts": [1e308, 10 ** 400, "x", True], "restart_history": [1, "a", {}]}]},
    {"gateways": [{"home": "~nosuchuser-hermes/x"}]},
])
def test_state_json_with_wrong_types_does_not_stop_run(tmp_path: Path, bad: dict) -> None:
    home = tmp_path / "hermes"
    home.mkdir()
    state = tmp_path / "state"
    state.mkdir()
    text = json.dumps(bad).replace('"HOME"', json.dumps(str(home)))
    (state / "state.json").write_text(text)
    r = cli("run", "--once", "--hermes-home", str(home), "--state-dir", str(state), "--window", "1",
            "--interval", "0.5", timeout=GUARD)
    _no_internal_error(r)
    assert r.code == 0 and " START " in r.err, r.err
    assert r.err.count(" WARN ") <= 1, r.err


# ---------------------------------------------------------------- item 10: names and give-up
def test_profile_names_with_control_characters_are_escaped(tmp_path: Path, isolated_home: Path) -> None:
    profiles = isolated_home / ".hermes" / "profiles"
    forged = "2030-01-01T00:00:00Z hermes-watchdog ALERT forged"
    names = ["evil\n" + forged, "esc\x1b[31mred", "[bold]markup[red]x"]
    for name in names:
        (profiles / name).mkdir(parents=True)
        (profiles / name / "gateway.pid").write_text("{}")
    state = tmp_path / "state"
    r = cli("run", "--once", "--all-profiles", "--state-dir", str(state), "--window", "1", "--interval", "0.5",
            timeout=GUARD)
    _no_internal_error(r)
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert lines and all(EVENT_LINE.match(ln) for ln in lines), r.err
    assert "\x1b" not in r.err and "evil\\n2030" in r.err and "esc\\x1b[31mred" in r.err
    assert {g["name"] for g in read_json(state / "state.json")["gateways"]} >= set(names)
    r = cli("status", "--state-dir", str(state), env={**os.environ, "COLUMNS": "300"})
    assert r.code == 0, r.err
    assert "\x1b" not in r.out and forged not in r.out.splitlines()
    assert not any(ln.startswith(forged) for ln in r.out.splitlines())
    assert "esc\\x1b[31mred" in r.out and "[bold]markup[red]x" in r.out


def test_daemon_restarts_after_a_give_up_do_not_reopen_it(tmp_path: Path, sim, daemons) -> None:
    received = tmp_path / "gateway-signals"
    g = sim("spin", "--spin-after", "1", "--signal-log", str(received)).wait_running().wait_spinning()
    notified = tmp_path / "notified.jsonl"
    script = tmp_path / "notify.py"
    script.write_text(f"import sys\nopen({str(notified)!r}, 'a').write(sys.stdin.read().replace('\\n', ' ') + '\\n')\n")
    # A low CPU threshold: the verdict must hold on a loaded machine too (the spin gets what it gets).
    args = ("--hermes-home", str(g.home), "--restart-with", "signal", "--max-restarts", "0", *FAST,
            "--cpu-threshold", "0.3", "--notify-command", f"{sys.executable} {script}")
    state = tmp_path / "state"

    def notes() -> list[str]:
        try:
            return [ln for ln in notified.read_text().splitlines() if ln.strip()]
        except OSError:
            return []

    d = daemons(state, *args)
    wait_for(lambda: d.incidents() and d.incident().get("result") == "gave-up", what="the give-up")
    wait_for(lambda: len(notes()) == 1, what="the incident message")
    d.terminate()
    first = d.incidents()
    for _ in range(3):
        d = daemons(state, *args)
        # This daemon has judged a whole window busy-loop and acted on it: a new incident (ALERT) or not.
        wait_for(lambda d=d: " ALERT " in d.events() or "carrying on with incident" in d.events(),
                 what="the daemon to act on the busy-loop")
        d.terminate()
        assert d.proc.returncode == 0
    assert d.incidents() == first and len(first) == 1
    assert len(notes()) == 1, notes()
    assert d.incident()["result"] == "gave-up"
    # Never signalled, the budget being spent: the spinning sim ignores SIGTERM, so "still alive" proves
    # nothing; its own record of every signal that reached it does.
    assert g.proc.poll() is None and signals_received(received) == []
    g.proc.send_signal(signal.SIGTERM)  # and the record is live: this one is written down
    wait_for(lambda: signals_received(received) == ["SIGTERM"], what="the SIGTERM in the gateway's record")
