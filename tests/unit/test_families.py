"""Release families as plain data (issue 19): recognition from what a home shows, who wrote the heartbeat,
and the witness rules that follow from it. No processes, no clock."""

from __future__ import annotations

from hermes_watchdog.facts.readings import HeartbeatSeen, TickProbe
from hermes_watchdog.judge import policy
from hermes_watchdog.judge.families import (
    FAMILIES,
    GIT_RELEASE,
    HB_LOOP,
    HB_NONE,
    HB_THREAD,
    LOOP_HEARTBEAT,
    ROLE_REPORT,
    ROLE_SECOND,
    ROLE_WITNESS,
    UNKNOWN,
    USR2_CHAINS,
    USR2_DUMPS,
    family_of,
    heartbeat_role,
    heartbeat_writer,
    parse_version,
    recognise,
    recognise_clues,
)
from hermes_watchdog.judge.loop import findings
from hermes_watchdog.judge.signatures import judge
from hermes_watchdog.judge.verdict import BUSY_LOOP, BY_STACK, CPU_PEGGED, HEALTHY, LOOP_FROZEN, W_HEARTBEAT, Seen
from hermes_watchdog.observe import heartbeat
from hermes_watchdog.observe.release import loop_watchdog_setting
from tests.unit.test_loop import NOW, PID, TH, blocked_bursts, cpu_over, snaps_for, spin_bursts, state

ON_LOOP = frozenset({"pid", "updated_at", "monotonic", "start_time"})  # 0.19.0's payload
OFF_LOOP = ON_LOOP | {"mem", "loop_tick_socket", "loop_tick_tcp_port"}  # after upstream #92315
F = {f.name: f for f in FAMILIES}


# ---------------------------------------------------------------- recognition

def test_versions_pick_their_family() -> None:
    assert parse_version("0.21.3") == (0, 21, 3) and parse_version("0.20.0rc1") == (0, 20, 0)
    assert parse_version("0.19") == (0, 19, 0) and parse_version("garbage") is None and parse_version(None) is None
    assert family_of((0, 14, 0)).name == family_of((0, 18, 2)).name == "0.14-0.18"
    assert family_of((0, 19, 0)).name == "0.19.0"
    assert family_of((0, 19, 1)).name == family_of((0, 21, 3)).name == "0.19.1-0.21.3"
    assert family_of((0, 21, 4)).name == family_of((0, 23, 4)).name == "0.21.4+"
    assert family_of((0, 13, 0)) is UNKNOWN and family_of(None) is UNKNOWN
    # SIGUSR2 chained to its default action until #111435 (0.21.4): the line the family table draws.
    assert F["0.19.1-0.21.3"].sigusr2 == USR2_CHAINS and F["0.21.4+"].sigusr2 == USR2_DUMPS


def test_payload_flags_come_first_then_the_version() -> None:
    r = recognise((0, 21, 0), "hermes_cli/__init__.py of the git checkout /h/hermes-agent", OFF_LOOP, True, True)
    assert r.family is F["0.19.1-0.21.3"]
    assert r.source.startswith("heartbeat payload flag loop_tick_socket")
    assert "version 0.21.0 from hermes_cli/__init__.py" in r.source
    assert r.describe().startswith("0.19.1-0.21.3 (recognised from: heartbeat payload flag loop_tick_socket")
    # The version narrows a files-only recognition, never contradicts it: a 0.19.0 wheel left behind while
    # a git checkout runs.
    stale_wheel = recognise((0, 19, 0), "METADATA", OFF_LOOP, True, False)
    assert stale_wheel.family is GIT_RELEASE and "version 0.19.0 ignored" in stale_wheel.source
    assert stale_wheel.to_dict()["family"] == GIT_RELEASE.name


def test_files_alone_recognise_a_git_release() -> None:
    flagged = recognise(None, None, OFF_LOOP, True, False)
    assert flagged.family is GIT_RELEASE
    assert flagged.source == "heartbeat payload flag loop_tick_socket; a loop-tick socket for its PID"
    assert GIT_RELEASE.sigusr2 == USR2_CHAINS  # the worst of the releases it may be: nobody signals on a guess
    assert recognise(None, None, None, False, True).family is GIT_RELEASE  # a lifecycle ledger
    assert recognise(None, None, None, True, False).family is GIT_RELEASE  # a tick socket for the PID
    on_loop = recognise(None, None, ON_LOOP, False, False)
    assert on_loop.family is LOOP_HEARTBEAT and "without the loop_tick_socket flag" in on_loop.source
    nothing = recognise(None, None, None, False, False)
    assert nothing.family is UNKNOWN and nothing.source == "no version and no release-specific file"
    # A heartbeat is a 0.19.0+ file: a version before that is not believed over it.
    assert recognise((0, 14, 0), "METADATA", ON_LOOP, False, False).family is LOOP_HEARTBEAT
    assert recognise((0, 14, 0), "METADATA", None, False, False).family is F["0.14-0.18"]


def test_the_loop_watchdog_switch_in_config_yaml() -> None:
    text = (b"model: x\ngateway:\n  platforms:\n    qq: {}\n  loop_watchdog: false  # off\n"
            b"other:\n  loop_watchdog: true\n")
    assert loop_watchdog_setting(text) is False
    assert loop_watchdog_setting(b"gateway:\n  loop_watchdog: true\n") is True
    assert loop_watchdog_setting(b"gateway:\n  loop_watchdog_interval: 5\n") is None
    assert loop_watchdog_setting(b"other:\n  loop_watchdog: false\n") is None
    assert loop_watchdog_setting(None) is None
    off = recognise((0, 22, 4), "METADATA", OFF_LOOP, True, True, loop_watchdog=False)
    assert off.family.loop_watchdog and not off.loop_watchdog_on
    assert recognise((0, 22, 4), "METADATA", OFF_LOOP, True, True).loop_watchdog_on
    assert not recognise((0, 19, 0), "METADATA", ON_LOOP, False, False).loop_watchdog_on


def test_the_heartbeat_payload_keeps_its_keys_and_flags() -> None:
    raw = (b'{"pid": 42, "updated_at": "2027-01-15T08:00:00+00:00", "monotonic": 1.0, "start_time": 1.0, '
           b'"mem": {"rss_kib": 1024, "mem_available_kib": true}, "loop_tick_socket": true, '
           b'"loop_tick_tcp_port": null}')
    hb = heartbeat.parse("h", raw)
    assert hb is not None and hb.keys == OFF_LOOP and hb.off_loop and hb.loop_tick_socket is True
    assert hb.mem == {"rss_kib": 1024} and hb.loop_tick_tcp_port is None
    seen, _ = heartbeat.assess(hb, 42, hb.updated_at + 5)
    assert seen is not None and seen.off_loop and seen.keys == OFF_LOOP
    assert "written off the event loop" in seen.describe() and seen.to_dict()["written_off_loop"] is True
    plain = heartbeat.parse("h", b'{"pid": 42, "updated_at": "2027-01-15T08:00:00+00:00"}')
    assert plain is not None and not plain.off_loop and plain.loop_tick_socket is None


# ---------------------------------------------------------------- who wrote the heartbeat

def test_heartbeat_writer_flag_first_family_second() -> None:
    for fam in (*FAMILIES, GIT_RELEASE, LOOP_HEARTBEAT, UNKNOWN):
        assert heartbeat_writer(fam, OFF_LOOP) == HB_THREAD  # the flag's key, whatever the family
        assert heartbeat_writer(fam, None) == HB_NONE
    assert heartbeat_writer(F["0.19.0"], ON_LOOP) == HB_LOOP
    assert heartbeat_writer(F["0.19.1-0.21.3"], ON_LOOP) == HB_LOOP  # before #92315, inside the family
    assert heartbeat_writer(UNKNOWN, ON_LOOP) == HB_LOOP
    assert heartbeat_writer(F["0.14-0.18"], ON_LOOP) == HB_NONE  # the family writes none: not its loop's


def test_heartbeat_roles() -> None:
    r019 = recognise((0, 19, 0), "METADATA", ON_LOOP, False, False)
    assert heartbeat_role(r019, ON_LOOP) == ROLE_WITNESS
    assert heartbeat_role(recognise(None, None, ON_LOOP, False, False), ON_LOOP) == ROLE_WITNESS
    assert heartbeat_role(recognise(None, None, OFF_LOOP, True, False), OFF_LOOP) == ROLE_REPORT
    assert heartbeat_role(r019, OFF_LOOP) == ROLE_REPORT
    assert heartbeat_role(None, ON_LOOP) == ROLE_SECOND  # not recognised: never alone
    assert heartbeat_role(recognise(None, None, None, False, False), None) == ROLE_SECOND


# ---------------------------------------------------------------- the witness rules

def flagged(age: float) -> HeartbeatSeen:
    return HeartbeatSeen(age, 60.0, OFF_LOOP, True)


def on_loop(age: float) -> HeartbeatSeen:
    return HeartbeatSeen(age, 60.0, ON_LOOP, False)


SILENT = TickProbe(11.0, False, "gateway.loop-tick.100.sock stayed silent: 3 probes of 1 s")
R_FLAGGED = recognise(None, None, OFF_LOOP, True, False)
R_019 = recognise((0, 19, 0), "METADATA", ON_LOOP, False, False)
RULES = policy.Rules(60, 5, 0.5, 600, 900, "alert")  # the defaults: alert on loop-frozen


def test_a_fresh_flagged_heartbeat_never_vetoes_a_stack_proven_busy_loop() -> None:
    """The observed bug: a 0.20+ gateway's loop thread spins at 0.98 core with every platform connected,
    never in its selector, tick socket silent, while a thread keeps its heartbeat fresh. It was judged
    loop-frozen and only alerted; it is a busy loop, restarted at default settings."""
    snaps = snaps_for(PID, 0.98)
    loop = findings(spin_bursts(3, start=1.0), snaps)
    for rel in (R_FLAGGED, recognise((0, 22, 4), "METADATA", OFF_LOOP, True, True)):
        v = judge(cpu_over(snaps), [state(qqbot="connected", telegram="connected")], None, TH, NOW,
                  seen=Seen(loop=loop, heartbeat=flagged(1.0), tick=SILENT, mono=12.0, release=rel))
        assert v.signature == BUSY_LOOP and v.proof == BY_STACK, v
        assert any("written off the event loop" in r for r in v.reasons)
        assert policy.decide(v, 0, RULES).kind == policy.RESTART
    # Not yet the proof window: a loop that wants a core is never called frozen, whatever the tick says.
    short = findings(spin_bursts(1, start=8.0), snaps)
    early = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW,
                  seen=Seen(loop=short, heartbeat=flagged(1.0), tick=SILENT, mono=12.0, release=R_FLAGGED))
    assert early.signature != LOOP_FROZEN and early.signature == CPU_PEGGED, early


def test_a_stale_flagged_heartbeat_is_not_a_frozen_witness() -> None:
    snaps = snaps_for(PID, 0.0, seconds=70)
    idle = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW,
                 seen=Seen(heartbeat=flagged(130.0), mono=70.0, release=R_FLAGGED))
    assert idle.signature == HEALTHY and any("written off the event loop" in r for r in idle.reasons), idle
    # The tick socket is this release's loop witness: alone, one witness (an alert, never a restart).
    tick = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW,
                 seen=Seen(heartbeat=flagged(130.0), tick=TickProbe(69.0, False, "silent"), mono=70.0,
                           release=R_FLAGGED))
    assert tick.signature == LOOP_FROZEN and tick.witnesses == ("loop-tick",) and W_HEARTBEAT not in tick.witnesses


def test_the_0_19_0_on_loop_heartbeat_still_witnesses_the_loop() -> None:
    snaps = snaps_for(PID, 0.0, seconds=70)
    stale = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW,
                  seen=Seen(heartbeat=on_loop(130.0), mono=70.0, release=R_019))
    assert stale.signature == LOOP_FROZEN and stale.witnesses == ("heartbeat",)
    # A beat the loop wrote during the stretch proves it turned: no busy loop on the samples alone.
    spin = snaps_for(PID, 1.0)
    loop = findings(spin_bursts(3, start=1.0), spin)
    v = judge(cpu_over(spin), [state(qqbot="connected")], None, TH, NOW,
              seen=Seen(loop=loop, heartbeat=on_loop(3.0), mono=12.0, release=R_019))
    assert v.signature == CPU_PEGGED


def test_unknown_family_the_heartbeat_never_decides_alone() -> None:
    idle = snaps_for(PID, 0.0, seconds=70)
    for rel in (None, recognise(None, None, None, False, False)):
        alone = judge(cpu_over(idle), [state(qqbot="connected")], None, TH, NOW,
                      seen=Seen(heartbeat=on_loop(130.0), mono=70.0, release=rel))
        assert alone.signature == HEALTHY and any("never a witness on its own" in r for r in alone.reasons), alone
        # Beside the stack, it is a second witness.
        loop = findings(blocked_bursts(66), idle)
        both = judge(cpu_over(idle), [state(qqbot="connected")], None, TH, NOW,
                     seen=Seen(loop=loop, heartbeat=on_loop(130.0), mono=70.0, release=rel))
        assert both.signature == LOOP_FROZEN and both.witnesses == ("stack", "heartbeat")
        # And a fresh one never vetoes what the stack and the demand prove.
        spin = snaps_for(PID, 1.0)
        v = judge(cpu_over(spin), [state(qqbot="connected")], None, TH, NOW,
                  seen=Seen(loop=findings(spin_bursts(3, start=1.0), spin), heartbeat=on_loop(3.0), mono=12.0,
                            release=rel))
        assert v.signature == BUSY_LOOP and v.proof == BY_STACK


# ---------------------------------------------------------------- observe/release.py on real files

def test_release_read_from_a_real_home() -> None:
    """The I/O side on real files and a real socket: the tick socket for this PID, the lifecycle ledger, a
    checkout in HERMES_HOME/hermes-agent, and config.yaml's one switch. Nothing else of config.yaml is kept."""
    import os
    import shutil
    import socket
    import tempfile
    from pathlib import Path

    from hermes_watchdog.observe import looptick, processes, release

    home = Path(tempfile.mkdtemp(prefix="fam", dir="/tmp"))  # short: AF_UNIX paths are limited to ~104 bytes
    try:
        ident = processes.identity(os.getpid())
        nothing = recognise_clues(release.read(home, ident, {}, None))
        assert nothing.family is UNKNOWN and nothing.version is None
        (home / "hermes-agent" / "hermes_cli").mkdir(parents=True)
        (home / "hermes-agent" / "hermes_cli" / "__init__.py").write_text('__version__ = "0.21.3"\n')
        (home / "config.yaml").write_text("gateway:\n  api_key: sk-not-kept\n  loop_watchdog: off\n")
        by_version = recognise_clues(release.read(home, ident, {}, None))
        assert by_version.family is F["0.19.1-0.21.3"] and by_version.version == "0.21.3"
        assert by_version.source.startswith("version 0.21.3 from hermes_cli/__init__.py of the git checkout ")
        assert by_version.loop_watchdog is False and not by_version.loop_watchdog_on
        assert "sk-not-kept" not in repr(by_version)
        (home / "hermes-agent" / "hermes_cli" / "__init__.py").write_text('__version__ = "0.19.0"\n')
        (home / "state").mkdir()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.bind(str(looptick.socket_path(home, os.getpid())))
            files = recognise_clues(release.read(home, ident, {}, OFF_LOOP))
        assert files.family is GIT_RELEASE, files  # the files win over a version they contradict
        assert files.source.startswith("heartbeat payload flag loop_tick_socket; a loop-tick socket for its PID; ")
        (home / "state" / "gateway.lifecycle.json").write_text('{"phase": "running"}')
        ledger = recognise_clues(release.read(home, ident, {}, None))
        assert ledger.family is GIT_RELEASE and "state/gateway.lifecycle.json" in ledger.source
        # Another PID's socket says nothing about this gateway.
        other = recognise_clues(release.read(home, processes.Identity(os.getpid() + 1, 0.0, (), None), {}, None))
        assert "loop-tick socket" not in other.source
    finally:
        shutil.rmtree(home)


def test_a_loop_that_wants_a_core_is_never_frozen_before_any_stretch() -> None:
    """Seen in CI on the 0.22 shape under load: the spin's thread wanted 0.88 core (just under the 0.9
    threshold), the only burst so far had no stretch without the selector yet, and the silent tick socket
    alone made it loop-frozen. Frozen is off the CPU: the burst names the loop thread, and it wants a core."""
    from hermes_watchdog.facts.loop_samples import Burst
    from hermes_watchdog.judge.loop import LoopFindings

    snaps = snaps_for(PID, 0.88)
    one = Burst(10.0, 11.0, "py-spy record", loop_found=True, tid=PID, samples=50, callback=0, rate=100)
    assert one.usable
    v = judge(cpu_over(snaps), [state(qqbot="connected")], None, TH, NOW,
              seen=Seen(loop=LoopFindings(bursts=(one,)), tick=SILENT, mono=12.0, release=R_FLAGGED))
    assert v.signature != LOOP_FROZEN, v
    # The control: the same loop off the CPU, the silent socket is its witness.
    idle = snaps_for(PID, 0.0)
    v = judge(cpu_over(idle), [state(qqbot="connected")], None, TH, NOW,
              seen=Seen(loop=LoopFindings(bursts=(one,)), tick=SILENT, mono=12.0, release=R_FLAGGED))
    assert v.signature == LOOP_FROZEN and v.witnesses == ("loop-tick",), v
