"""Issue 11, items 1-5: signals to the wrong process.

The pid, state and pending files name candidates, never prove one: each test plants files or processes
that the old code took for this home's gateway, and checks that the decoy is never adopted nor signalled
(still alive, no KILL/RESTART line), and that the daemon says why.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from hermes_watchdog.facts.cpu import CpuSnapshot, ThreadTimes
from hermes_watchdog.facts.identity import Identity
from hermes_watchdog.judge.cpu import usage
from hermes_watchdog.judge.signatures import judge
from hermes_watchdog.judge.verdict import BUSY_LOOP, CPU_PEGGED, StateSeen, Thresholds
from hermes_watchdog.observe.discovery import home_claimed, prove
from hermes_watchdog.observe.processes import identity, looks_like_gateway, program_of
from hermes_watchdog.observe.signals import guarded_signal
from hermes_watchdog.observe.statefile import parse_state
from tests.helpers import assert_one_line_error, cli, read_json, sim_env, start_sim, wait_for

FAST = ("--interval", "0.3", "--window", "1.5", "--grace", "1", "--cooldown", "0", "--start-timeout", "10")
SLEEP = "import time; time.sleep(300)"
LONG_AGO = "2026-01-01T00:00:00+00:00"
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


def _nobody() -> int | None:
    """uid of `nobody` when we are root (to start another user's process), else None."""
    if os.getuid() != 0:
        return None
    try:
        return pwd.getpwnam("nobody").pw_uid
    except KeyError:
        return None


class Decoys:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], env: dict[str, str], executable: str | None = None, cwd: Path | None = None,
              user: int | None = None) -> subprocess.Popen[bytes]:
        kw: dict[str, Any] = {"user": user, "group": user, "extra_groups": []} if user is not None else {}
        p = subprocess.Popen(argv, executable=executable, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        # Running the decoy's own program (its command line is final once exec'd and Python started).
        wait_for(lambda: psutil.Process(p.pid).cmdline() == argv, what=f"decoy {argv[0]} to start")
        return p

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


@pytest.fixture
def decoys():
    d = Decoys()
    yield d
    d.stop()


def alive(p: subprocess.Popen[bytes]) -> bool:
    return p.poll() is None and psutil.Process(p.pid).status() != psutil.STATUS_ZOMBIE


def plant_files(home: Path, pid: int, argv: list[str]) -> None:
    """gateway.pid without start_time, and a state file saying running with qqbot down for months."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "gateway.pid").write_text(json.dumps({"pid": pid, "kind": "hermes-gateway", "argv": argv}))
    (home / "gateway_state.json").write_text(json.dumps({
        "pid": pid, "kind": "hermes-gateway", "argv": argv, "gateway_state": "running",
        "platforms": {"qqbot": {"state": "disconnected", "error_code": "4009", "updated_at": LONG_AGO}},
        "updated_at": LONG_AGO}))


def settled(d: Any, home: Path) -> bool:
    """The daemon judged the sentinel gateway in ``home`` healthy over a full window (FAST): every other
    home it watches, looked at from the same first tick, had that window to be judged and acted on."""
    g = next((g for g in d.status().get("gateways") or [] if g.get("home") == str(home)), {})
    v = g.get("verdict") or {}
    return v.get("signature") == "healthy" and v.get("span_seconds", 0) >= 1.5 - 0.25 * 0.3


def no_signal_for(d: Any, *procs: subprocess.Popen[bytes]) -> None:
    events = d.events()
    for p in procs:
        assert alive(p), f"decoy {p.pid} was killed:\n{events}"
        assert f"restarting PID {p.pid}" not in events and f"to PID {p.pid}" not in events, events
        assert f"gateway PID {p.pid} (" not in events, events  # never adopted (FOUND)
    assert " KILL " not in events and " RESTART " not in events, events


# ---------------------------------------------------------------- 1. pending.json written by someone else
def _pending_entry(state: Path, ident: Identity, family: str | None, name: str) -> dict[str, Any]:
    """An entry as the daemon writes it, with its incident folder (incident.json 0600), the kill overdue."""
    folder = state / "incidents" / f"20260101T00000{name}Z-busy-loop"
    folder.mkdir(parents=True)
    rec = {"pid": ident.pid, "identity": ident.to_dict(), "signature": "busy-loop"}
    fd = os.open(folder / "incident.json", os.O_CREAT | os.O_WRONLY, 0o600)
    os.write(fd, json.dumps(rec).encode())
    os.close(fd)
    now = time.time()
    entry = {"old": ident.to_dict(), "manager": "signal", "started_wall": now - 30, "kill_at_wall": now - 20,
             "killed": False, "phase": "stopping", "verify_until_wall": None, "incident": str(folder),
             "signature": "busy-loop", "restart_record": None}
    if family is not None:
        entry["family"] = family
    return entry


def test_1_planted_pending_json_is_never_resumed_nor_signalled(tmp_path, decoys, daemons) -> None:
    homes = [tmp_path / f"h{i}" for i in range(3)]
    for h in homes:
        h.mkdir()
    state = tmp_path / "state"
    args = [a for h in homes for a in ("--hermes-home", str(h))] + ["--restart-with", "none", *FAST]
    # A first run of this state dir leaves its family token in the lock, as a killed daemon would.
    first = daemons(state, *args)
    first.wait_event(" START ")
    first.terminate()
    words = (state / "watchdog.lock").read_text().split()
    family = words[1] if len(words) > 1 else "none"

    env = sim_env(tmp_path / "elsewhere")
    spin = tmp_path / "spin.py"
    spin.write_text(SLEEP + "\n")
    d0 = decoys.start([PYTHON, str(spin)], env)
    # Looks like a gateway, but of another home.
    d1 = decoys.start(["hermes-gateway", "-c", SLEEP], env, executable=PYTHON)
    d2 = decoys.start([PYTHON, "-c", SLEEP], env)
    empty = replace(identity(d0.pid), cmdline=())  # the reported shape: no command line
    pending = {str(homes[0]): _pending_entry(state, empty, family, "1"),
               str(homes[1]): _pending_entry(state, identity(d1.pid), family, "2"),
               str(homes[2]): _pending_entry(state, identity(d2.pid), None, "3")}
    path = state / "pending.json"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    os.write(fd, json.dumps(pending).encode())
    os.close(fd)

    # Written by someone else (another user, or readable by others): the whole file is ignored.
    other = _nobody()
    if other is not None:
        os.chown(path, other, other)
    else:
        os.chmod(path, 0o644)
    d = daemons(state, *args)
    wait_for(lambda: (d.status().get("daemon") or {}).get("pid") == d.proc.pid, what="the daemon's first tick")
    no_signal_for(d, d0, d1, d2)
    assert f"ignoring {path}: " + ("owned by uid" if other is not None else "mode 0644") in d.events()
    d.terminate()

    # Ours, private, with this family's token and matching incidents: each entry is still re-proven.
    os.chown(path, os.getuid(), os.getgid())
    os.chmod(path, 0o600)
    d = daemons(state, *args)
    wait_for(lambda: (d.status().get("daemon") or {}).get("pid") == d.proc.pid, what="the daemon's first tick")
    no_signal_for(d, d0, d1, d2)
    ev = d.events()
    assert ev.count("not resuming the restart") == 3, ev
    assert f"PID {d0.pid} recorded in" in ev and "was not recorded as a Hermes gateway" in ev
    assert f"PID {d1.pid} is the gateway of {tmp_path / 'elsewhere'}, not of {homes[1]}" in ev
    assert "not written by a hermes-watchdog of this state dir" in ev
    assert "dropped, no signal sent" in ev and "RESUME" not in ev
    assert all((read_json(p / "incident.json") or {}).get("restart") is None for p in (state / "incidents").iterdir())


def test_1_guarded_signal_refuses_an_identity_without_command_line(tmp_path, decoys) -> None:
    home = tmp_path / "hermes"
    home.mkdir()
    p = decoys.start(["hermes-gateway", "-c", SLEEP], sim_env(home), executable=PYTHON)
    real = identity(p.pid)
    assert prove(p.pid, home)[0] == real  # a proven gateway of this home...
    ok, why = guarded_signal(replace(real, cmdline=()), signal.SIGKILL, home)
    assert not ok and "no command line was recorded" in why  # ...but an identity without a command line
    ok, why = guarded_signal(real, signal.SIGKILL, tmp_path / "other-home")
    assert not ok
    assert alive(p)


# ---------------------------------------------------------------- 2. gateway.pid naming a decoy
def test_2_files_naming_a_decoy_are_no_proof(tmp_path, decoys, daemons) -> None:
    home, other_home, sentinel = tmp_path / "hermes", tmp_path / "hermes-2", tmp_path / "sentinel"
    spin = tmp_path / "spin.py"
    spin.write_text(SLEEP + "\n")
    # `python3 spin.py`, with HERMES_HOME naming this home; the files' argv matches its command line's tail.
    d0 = decoys.start([PYTHON, str(spin)], sim_env(home))
    plant_files(home, d0.pid, ["spin.py", str(spin)])
    procs = [d0]
    other = _nobody()
    if other is not None:  # another user's process that looks like a gateway and names this home
        d1 = decoys.start(["hermes-gateway", "-c", SLEEP], {"HERMES_HOME": str(other_home), "HOME": "/"},
                          executable=PYTHON, user=other)
        plant_files(other_home, d1.pid, ["hermes-gateway", "-c", SLEEP])
        procs.append(d1)
    else:
        other_home.mkdir()
    sims = start_sim(sentinel, "healthy")
    try:
        # --stuck-action restart: the old code restarted an idle decoy on the stale "disconnected" alone.
        d = daemons(tmp_path / "state", "--hermes-home", str(home), "--hermes-home", str(other_home),
                    "--hermes-home", str(sentinel), "--restart-with", "signal", "--stuck-action", "restart",
                    *FAST)
        d.wait_event(f"gateway.pid: PID {d0.pid} (spin.py) does not look like a Hermes gateway")
        if other is not None:
            d.wait_event(f"PID {procs[1].pid} (hermes-gateway) runs as uid {other}, but {other_home} belongs to "
                         f"uid {os.getuid()}")
        wait_for(lambda: settled(d, sentinel), what="a full window of the sentinel")
        no_signal_for(d, *procs)
        assert d.incidents() == []
    finally:
        sims.kill()


# ---------------------------------------------------------------- 3. the process-table scan
def test_3_scan_adopts_only_this_homes_gateway(tmp_path, decoys, daemons, isolated_home) -> None:
    h1 = tmp_path / "hermes"
    h2 = isolated_home / ".hermes"  # the watchdog user's own default home
    h3 = h2 / "profiles" / "coder"  # and its profile
    sentinel = tmp_path / "sentinel"
    for h in (h1, h3):
        h.mkdir(parents=True)
    procs = []
    # `s6-supervise hermes-gateway`: names a gateway as an argument; it is not one.
    (tmp_path / "hermes-gateway").write_text(SLEEP + "\n")
    procs.append(decoys.start(["s6-supervise", "hermes-gateway"], sim_env(h1), executable=PYTHON, cwd=tmp_path))
    # A gateway with no HERMES_HOME, of a user whose home is elsewhere: not the watchdog's ~/.hermes.
    stranger = {"HOME": str(tmp_path / "stranger"), "PATH": os.environ.get("PATH", "")}
    procs.append(decoys.start(["hermes-gateway", "-c", SLEEP], stranger, executable=PYTHON))
    # That user's `hermes --profile coder gateway run`: their profile, not the watchdog user's.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "hermes").write_text(SLEEP + "\n")
    procs.append(decoys.start([PYTHON, str(bin_dir / "hermes"), "--profile", "coder", "gateway", "run"], stranger))
    other = _nobody()
    if other is not None:  # another user's gateway whose HERMES_HOME is this home
        procs.append(decoys.start(["hermes-gateway", "-c", SLEEP], {"HERMES_HOME": str(h1), "HOME": "/"},
                                  executable=PYTHON, user=other))
    sims = start_sim(sentinel, "healthy")
    try:
        d = daemons(tmp_path / "state", "--hermes-home", str(h1), "--hermes-home", str(h2), "--hermes-home",
                    str(h3), "--hermes-home", str(sentinel), "--restart-with", "signal", *FAST)
        wait_for(lambda: settled(d, sentinel), what="a full window of the sentinel")
        no_signal_for(d, *procs)
        assert "found in the process table" not in d.events()
    finally:
        sims.kill()
    assert [looks_like_gateway(psutil.Process(p.pid).cmdline()) for p in procs] == [False] + [True] * (len(procs) - 1)


def test_3_an_adopted_gateway_is_dropped_when_the_files_name_another(tmp_path, decoys, daemons) -> None:
    home = tmp_path / "hermes"
    home.mkdir()
    # Proven by the scan (this user, HERMES_HOME is this home, a hermes-gateway program), no files yet.
    a = decoys.start(["hermes-gateway", "-c", SLEEP], sim_env(home), executable=PYTHON)
    d = daemons(tmp_path / "state", "--hermes-home", str(home), "--restart-with", "signal", *FAST)
    d.wait_event(f"gateway PID {a.pid} (found in the process table")
    b = start_sim(home, "healthy").wait_running()
    try:
        d.wait_event(f"gateway PID {b.pid} (gateway.pid names PID {b.pid})")
        assert f"gateway PID {a.pid} lost: the gateway files name another live gateway of this home" in d.events()
        assert alive(a)
    finally:
        b.kill()


def test_3_program_not_arguments_makes_a_gateway() -> None:
    yes = [
        ["/v/bin/python", "-m", "hermes_cli.main", "gateway", "run", "--replace"],
        ["/v/bin/python", "-m", "hermes_cli.main", "--profile", "coder", "gateway", "run"],
        ["/v/bin/python3.11", "-W", "ignore", "-X", "dev", "-m", "hermes_cli.main", "gateway"],
        ["/v/bin/python", "-uBm", "hermes_cli.main", "-p", "coder", "gateway", "run"],
        ["/v/bin/python", "/v/bin/hermes", "gateway", "run"],
        ["/v/bin/hermes", "--profile=coder", "gateway", "run"],
        ["/usr/bin/python3", "-m", "hermes_watchdog.sim.gateway", "--mode", "spin"],
        ["/usr/bin/hermes-gateway"],
        ["/usr/bin/python3", "/tmp/x/hermes-gateway", "8080"],
        ["/usr/bin/python3", "/opt/hermes/gateway/run.py"],
    ]
    no = [
        ["s6-supervise", "hermes-gateway"],
        ["journalctl", "-fu", "hermes-gateway"],
        ["tail", "-f", "/home/u/.hermes/logs/hermes-gateway"],
        ["python3", "-c", "import time; time.sleep(60)", "hermes-gateway"],
        ["python3", "spin.py"],
        ["/v/bin/python", "/v/bin/hermes", "gateway", "status"],
        ["/v/bin/hermes", "chat", "gateway", "run"],
        ["/v/bin/python", "-m", "hermes_cli.main", "gateway", "stop"],
        ["/v/bin/python", "-m", "hermes_watchdog.sim.supervisor", "--", "-m", "hermes_watchdog.sim.gateway"],
        ["/usr/bin/python3", "/opt/mygateway/run.py"],
        ["/usr/bin/python3"],
        [],
    ]
    assert [c for c in yes if not looks_like_gateway(c)] == []
    assert [c for c in no if looks_like_gateway(c)] == []
    assert program_of(["python3", "-Wignore", "-m", "mod", "a"]).name == "mod"
    assert program_of(["python3", "-X", "dev", "script.py", "a"]).name == "script.py"
    assert program_of(["python3", "--", "-script.py"]).kind == "script"
    assert program_of(["python3", "-c", "x", "hermes-gateway"]).kind == "code"


def test_3_the_home_a_process_serves_comes_from_its_own_environment(tmp_path) -> None:
    u = tmp_path / "u"
    gw = ("python", "-m", "hermes_cli.main", "gateway", "run")
    prof = ("python", "-m", "hermes_cli.main", "--profile", "coder", "gateway", "run")
    assert home_claimed({"HERMES_HOME": "/srv/h"}, gw, None) == Path("/srv/h")
    assert home_claimed({"HOME": str(u)}, gw, None) == u / ".hermes"
    assert home_claimed({}, gw, u) == u / ".hermes"  # no HOME in its environment: its user's home
    assert home_claimed({}, gw, None) is None
    assert home_claimed({"HOME": str(u)}, prof, None) == u / ".hermes" / "profiles" / "coder"
    assert home_claimed({"HERMES_HOME": "/srv/h", "HOME": str(u)}, prof, None) == Path("/srv/h/profiles/coder")
    assert home_claimed({"HERMES_HOME": "/srv/h/profiles/a"}, gw, None) == Path("/srv/h/profiles/a")
    assert home_claimed({"HERMES_HOME": "/srv/h/profiles/a"}, prof, None) == Path("/srv/h/profiles/coder")
    assert home_claimed({"HOME": str(u)}, ("python", "-m", "hermes_cli.main", "-p", "default", "gateway"),
                        None) == u / ".hermes"
    assert home_claimed({"HERMES_HOME": "relative"}, gw, None) is None
    (u / ".hermes").mkdir(parents=True)
    (u / ".hermes" / "active_profile").write_text("work\n")  # `hermes profile use work`
    assert home_claimed({"HOME": str(u)}, gw, None) == u / ".hermes" / "profiles" / "work"


# ---------------------------------------------------------------- 4. every state read of the window
def _read(pid: int, matches: bool, qqbot: str = "disconnected") -> StateSeen:
    data = {"pid": pid, "gateway_state": "running",
            "platforms": {"qqbot": {"state": qqbot, "updated_at": "2027-01-15T07:00:00+00:00"}}}
    return StateSeen(parse_state("s", json.dumps(data).encode()), matches, "" if matches else f"names PID {pid}")


def _pegged() -> Any:
    return usage([CpuSnapshot(0, 0, (ThreadTimes(11, 0),)), CpuSnapshot(9, 9, (ThreadTimes(11, 9),))])


def test_4_busy_loop_needs_every_read_of_the_window() -> None:
    th, now = Thresholds(), 1_800_000_000.0
    # PID A is judged; one early read named A, the next eight named PID B.
    reads = [_read(100, True)] + [_read(200, False) for _ in range(8)]
    v = judge(_pegged(), reads, None, th, now)
    assert v.signature == CPU_PEGGED
    assert any("8 of 9 state reads of the window did not describe this process" in r for r in v.reasons)
    missing = StateSeen(parse_state("s", None), False, "")
    assert judge(_pegged(), [_read(100, True), missing, _read(100, True)], None, th, now).signature == CPU_PEGGED
    assert judge(_pegged(), [_read(100, True)] * 9, None, th, now).signature == BUSY_LOOP


# ---------------------------------------------------------------- 5. one watchdog per home
def test_5_a_second_daemon_on_the_same_home_is_refused(tmp_path, sim, daemons, isolated_home) -> None:
    home = tmp_path / "hermes"
    s = sim("healthy", home=home).wait_running()
    first = daemons(tmp_path / "state-1", "--hermes-home", str(home), "--restart-with", "signal", *FAST)
    first.wait_event(f"gateway PID {s.pid}")
    r = cli("run", "--state-dir", str(tmp_path / "state-2"), "--hermes-home", str(home), *FAST)
    assert_one_line_error(r)
    assert f"another hermes-watchdog (PID {first.proc.pid}) is already watching {home}" in r.err
    # Found later with --all-profiles: that profile is left to the daemon that holds it, said once.
    coder = isolated_home / ".hermes" / "profiles" / "coder"
    c = sim("healthy", home=coder).wait_running()
    holder = daemons(tmp_path / "state-3", "--hermes-home", str(coder), "--restart-with", "signal", *FAST)
    holder.wait_event(f"gateway PID {c.pid}")
    fleet = daemons(tmp_path / "state-4", "--all-profiles", "--restart-with", "signal", *FAST)
    fleet.wait_event(f"another hermes-watchdog (PID {holder.proc.pid}) is already watching {coder}; not acting")
    assert f"gateway PID {c.pid}" not in fleet.events()
    assert fleet.events().count("is already watching") == 1


def test_5_lock_files_are_never_followed(tmp_path, isolated_home) -> None:
    home = tmp_path / "hermes"
    home.mkdir()
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me\n")
    state = tmp_path / "state"
    state.mkdir()
    (state / "watchdog.lock").symlink_to(victim)
    r = cli("run", "--state-dir", str(state), "--hermes-home", str(home), "--once", *FAST)
    assert_one_line_error(r)
    assert "symbolic link" in r.err and victim.read_text() == "keep me\n"
    (state / "watchdog.lock").unlink()
    (home / "watchdog.home.lock").symlink_to(victim)
    r = cli("run", "--state-dir", str(state), "--hermes-home", str(home), "--once", *FAST)
    assert_one_line_error(r)
    assert "symbolic link" in r.err and victim.read_text() == "keep me\n"
