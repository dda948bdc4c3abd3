"""The real s6 (Debian's `s6` package: s6-svscan, s6-supervise, s6-svc, s6-svstat), as s6-overlay runs it
in upstream's Docker image: a SIGTERM-deaf gateway service restarted with `s6-svc -r`, and the watchdog
installed as a service beside it. Skipped, with the reason, where s6 is not installed."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from hermes_watchdog.act.managers.s6 import supervised_pid
from tests.helpers import assert_one_line_error, cli, read_json, wait_for

pytestmark = pytest.mark.skipif(not shutil.which("s6-svscan"), reason="s6 is not installed (apt-get install s6)")

FAST = ("--interval", "0.5", "--window", "3", "--grace", "1", "--cooldown", "0", "--start-timeout", "30")

RUN = """#!/bin/sh
export HERMES_HOME={home}
exec {python} -m hermes_watchdog.sim.gateway --mode spin --spin-after 1 --spin-once-marker {marker}
"""


@pytest.fixture
def scandir(tmp_path: Path) -> Iterator[Path]:
    """A scan directory with a real s6-svscan on it; at the end every service is killed (a deaf gateway
    would hold a polite stop up) and s6-svscan is told to exit."""
    scan = tmp_path / "scan"
    scan.mkdir()
    proc = subprocess.Popen(["s6-svscan", str(scan)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    wait_for(lambda: (scan / ".s6-svscan" / "control").exists(), what="s6-svscan to start")
    yield scan
    for service in scan.iterdir():
        if not service.name.startswith(".") and (service / "supervise").is_dir():
            subprocess.run(["s6-svc", "-O", "-k", str(service)], capture_output=True, check=False)
    subprocess.run(["s6-svscanctl", "-t", str(scan)], capture_output=True, check=False)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait(10)


def supervisors(scan: Path) -> set[tuple[str, ...]]:
    """The arguments of each s6-supervise the s6-svscan of ``scan`` runs (the service names)."""
    out = set()
    for p in psutil.process_iter(["cmdline"]):
        if p.info["cmdline"] == ["s6-svscan", str(scan)]:
            for child in p.children():
                with contextlib.suppress(psutil.Error):
                    out.add(tuple(child.cmdline()[1:]))
    return out


def add_gateway_service(scan: Path, home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    # Written beside the scan directory, then moved in: s6-svscan never sees a half-made service.
    staged = scan.parent / "hermes-gateway"
    staged.mkdir()
    (staged / "run").write_text(RUN.format(home=home, python=sys.executable, marker=home / "spun-once"))
    (staged / "run").chmod(0o755)
    service = scan / "hermes-gateway"
    staged.rename(service)
    subprocess.run(["s6-svscanctl", "-a", str(scan)], check=True)
    return service


def gateway_running(service: Path, home: Path, other_than: int | None = None) -> int:
    def ready() -> int | None:
        pid = supervised_pid(service)
        st = read_json(home / "gateway_state.json") or {}
        return pid if pid and pid != other_than and st.get("pid") == pid and st.get("gateway_state") == "running" \
            else None

    return wait_for(ready, what="the s6 service to run the gateway")


@pytest.mark.parametrize("restart_with", ["s6", "auto"])
def test_sigterm_deaf_gateway_service_is_restarted_with_s6_svc(scandir: Path, tmp_path: Path, daemons,
                                                                restart_with: str) -> None:
    home = tmp_path / "hermes"
    service = add_gateway_service(scandir, home)
    old = gateway_running(service, home)
    d = daemons(tmp_path / "state", "--hermes-home", str(home), "--restart-with", restart_with,
                "--s6-scandir", str(scandir), *FAST)
    wait_for(lambda: d.incidents() and d.incident().get("result") in {"restarted", "restart-failed"},
             what="the restart's outcome")
    inc = d.incident()
    assert inc["result"] == "restarted", (inc, d.events())
    assert inc["signature"] == "busy-loop" and inc["pid"] == old
    assert inc["restart"]["manager"] == "s6" and inc["restart"]["argv"] == ["s6-svc", "-r", str(service)]
    # s6's SIGTERM was ignored by the starved loop: the watchdog's SIGKILL, after the grace, ended it.
    assert inc["verify"]["sigkill_needed"] is True and "SIGKILL" in inc["restart"]["signals"]
    new = gateway_running(service, home, other_than=old)
    assert inc["new_pid"] == new != old and not psutil.pid_exists(old)
    d.terminate()


def test_a_service_supervising_another_process_is_not_restarted(scandir: Path, tmp_path: Path, sim) -> None:
    """Identity first: a service whose supervised PID is not the gateway is never the one restarted."""
    from hermes_watchdog.act.managers import Target, select
    from hermes_watchdog.observe.processes import identity

    other = scandir.parent / "other"
    other.mkdir()
    (other / "run").write_text("#!/bin/sh\nexec sleep 600\n")
    (other / "run").chmod(0o755)
    other.rename(scandir / "other")
    subprocess.run(["s6-svscanctl", "-a", str(scandir)], check=True)
    sleeper = wait_for(lambda: supervised_pid(scandir / "other"), what="the other service to run")
    g = sim("healthy", home=tmp_path / "hermes").wait_running()
    target = Target(tmp_path / "hermes", None, identity(g.pid))
    manager = select("s6", target, s6_scandirs=(scandir,))
    result = manager.restart(target, threading.Event())
    assert result.ok is False and "no s6 service supervises" in result.detail and result.argv == []
    assert select("auto", target, s6_scandirs=(scandir,)).name == "signal"
    assert supervised_pid(scandir / "other") == sleeper and g.proc.poll() is None


def test_install_adds_a_live_service_and_uninstall_removes_it(scandir: Path, isolated_home: Path) -> None:
    (isolated_home / ".hermes" / "profiles" / "coder").mkdir(parents=True)
    r = cli("install", "--manager", "s6", "--s6-scandir", str(scandir), "--dry-run", "--profile", "coder")
    assert r.code == 0 and f"# would write {scandir / 'hermes-watchdog-coder' / 'run'}" in r.out
    assert f"s6-svscanctl -a {scandir}" in r.out and not (scandir / "hermes-watchdog-coder").exists()

    # As root too: in a container s6 and the gateway usually run as root.
    r = cli("install", "--manager", "s6", "--s6-scandir", str(scandir), "--", "--interval", "1")
    assert r.code == 0, r.out + r.err
    service = scandir / "hermes-watchdog"
    run = service / "run"
    assert stat.S_IMODE(run.stat().st_mode) == 0o755 and run.read_text().startswith("#!/bin/sh\n")
    assert f"s6-svstat {service}" in r.out

    def watchdog_pid() -> int | None:
        pid = supervised_pid(service)
        try:
            cmd = psutil.Process(pid).cmdline() if pid else []
        except psutil.Error:
            return None
        return pid if "run" in cmd and str(isolated_home / ".hermes") in cmd and "--interval" in cmd else None

    pid = wait_for(watchdog_pid, what="s6 to run the watchdog")
    assert psutil.Process(pid).nice() == 10  # never competes with the gateway

    r = cli("uninstall", "--manager", "s6", "--s6-scandir", str(scandir))
    assert r.code == 0, r.out + r.err
    assert not service.exists()
    wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
             what="the watchdog to stop")
    # Its s6-supervise is gone too (s6-svscanctl -an).
    wait_for(lambda: ("hermes-watchdog",) not in supervisors(scandir), what="its s6-supervise to exit")
    r = cli("uninstall", "--manager", "s6", "--s6-scandir", str(scandir))
    assert r.code == 0 and "nothing to do" in r.out


def test_install_without_a_running_s6_says_so(isolated_home: Path, tmp_path: Path) -> None:
    (isolated_home / ".hermes").mkdir()
    if any((Path(d) / ".s6-svscan").is_dir() for d in ("/run/service", "/var/run/s6/services")):
        pytest.skip("this machine runs s6-overlay")
    r = cli("install", "--manager", "s6")
    assert_one_line_error(r)
    assert "no running s6 found" in r.err and "--s6-scandir" in r.err


def test_a_hostile_scandir_never_stalls_the_search(tmp_path: Path) -> None:
    """Issue 20: services whose `supervise/status` is a FIFO and whose `supervise/lock` is held made each
    real s6-svstat wait its whole 15 s, one after another on the daemon's tick (8 of them: two minutes, past
    the unit's WatchdogSec). The search now skips what is not a live service and has one budget for all."""
    import fcntl

    from hermes_watchdog.act.managers.s6 import FIND_BUDGET, find_service

    scan = tmp_path / "hostile"
    held = []
    for i in range(8):
        sup = scan / f"svc{i}" / "supervise"
        sup.mkdir(parents=True)
        os.mkfifo(sup / "status")
        os.mkfifo(sup / "control")
        # A reader on control is what s6-svstat takes for a running s6-supervise; the lock held too.
        held.append(os.open(sup / "control", os.O_RDONLY | os.O_NONBLOCK))
        fh = open(sup / "lock", "w")  # noqa: SIM115 - held for the test, as a hung s6-supervise would
        fcntl.lockf(fh, fcntl.LOCK_EX)  # s6 locks with fcntl (POSIX) locks
        held.append(fh)
    # The control: the real s6-svstat does wait on such a service.
    probe = subprocess.run(["timeout", "3", "s6-svstat", "-o", "pid", str(scan / "svc0")], capture_output=True,
                           check=False)
    assert probe.returncode == 124, "s6-svstat no longer waits on a FIFO status: this test proves nothing"
    found: list[object] = []
    t = threading.Thread(target=lambda: found.append(find_service(os.getpid(), [scan])), daemon=True)
    t.start()
    t.join(8 * 15 / 2)  # generous: only there so a regression fails instead of hanging
    try:
        assert not t.is_alive(), "the search of 8 hostile services outlived half of their 8 x 15 s"
        assert found == [None]
    finally:
        for fh in held:
            os.close(fh) if isinstance(fh, int) else fh.close()
    assert FIND_BUDGET < 120 / 4  # the search can never come near the unit's WatchdogSec=120


def _dockerfile_block() -> list[str]:
    """The README's Docker quick start: its Dockerfile's instructions, continuation lines joined."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = text[text.index("```dockerfile\n") + len("```dockerfile\n"):]
    block = block[:block.index("```")]
    return [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def test_the_readmes_docker_quick_start_under_a_real_s6(scandir: Path, isolated_home: Path) -> None:
    """Issue 24: the README's Dockerfile, its steps typed against the simulated gateway supervised by the real
    s6 (as s6-overlay runs it in upstream's image), at the watchdog's defaults: the install line of its RUN
    puts the watchdog beside the gateway, which it restarts with s6-svc when the loop spins; its HEALTHCHECK
    command says healthy afterwards. Only the scan directory differs: the image's /etc/services.d is this
    test's s6-svscan's. ``hermes-watchdog`` runs as ``python -m hermes_watchdog`` (the installed package)."""
    lines = _dockerfile_block()
    assert [ln.split()[0] for ln in lines] == ["ARG", "FROM", "COPY", "RUN", "HEALTHCHECK"], lines
    install = lines[3].split("&&")[1].split()  # after `pip install /opt/hermes-watchdog-src`, not typed here
    assert lines[3].split("&&")[0].split() == ["RUN", "pip", "install", "/opt/hermes-watchdog-src"], lines[3]
    assert install[:2] == ["hermes-watchdog", "install"] and "/etc/services.d" in install, install
    health = lines[4].split(" CMD ", 1)[1]
    assert health == "hermes-watchdog check || exit 1", health

    home = isolated_home / ".hermes"
    service = add_gateway_service(scandir, home)
    old = gateway_running(service, home)
    args = [str(scandir) if a == "/etc/services.d" else a for a in install[1:]]
    r = cli(*args)
    assert r.code == 0, r.out + r.err
    watchdog = scandir / "hermes-watchdog"
    try:
        incidents = home / "watchdog" / "incidents"  # the installed watchdog's default state dir

        def restarted() -> dict | None:
            for f in sorted(incidents.glob("*/incident.json")) if incidents.is_dir() else []:
                rec = read_json(f) or {}
                if rec.get("result") in {"restarted", "restart-failed"}:
                    return rec
            return None

        rec = wait_for(restarted, timeout=300, step=1.0, what="the installed watchdog's restart, at its defaults")
        assert rec["result"] == "restarted" and rec["pid"] == old, rec.get("timeline")
        assert rec["restart"]["manager"] == "s6" and rec["restart"]["argv"] == ["s6-svc", "-r", str(service)]
        new = gateway_running(service, home, other_than=old)
        assert rec["new_pid"] == new
        # The HEALTHCHECK, as Docker runs it (through a shell: `|| exit 1` maps "cannot tell" to unhealthy).
        cmd = health.replace("hermes-watchdog", f"{sys.executable} -m hermes_watchdog", 1)
        probe = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, timeout=60, check=False)
        assert probe.returncode == 0, probe.stdout + probe.stderr
    finally:
        cli("uninstall", "--manager", "s6", "--s6-scandir", str(scandir))
        assert not watchdog.exists()
