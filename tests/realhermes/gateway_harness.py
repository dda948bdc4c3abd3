"""Runs the REAL WHOLE Hermes gateway (``python -m hermes_cli.main gateway run``, hermes-agent from PyPI in a
cached test venv) in a scratch HERMES_HOME with QQBot enabled, against the loopback fake QQ server.

Nothing of Hermes is copied or edited: the gateway process gets a scratch folder on its PYTHONPATH whose
``sitecustomize.py`` loads tests/realhermes/gateway_inject.py (QQ endpoints -> the fake server; trigger
files for test-only faults) and then processes any extra ``.pth`` files given to ``start_gateway`` (e.g. a
faulthandler hook) with ``site.addsitedir``. The process looks like a real gateway: its command line is
``<venv>/bin/python -m hermes_cli.main gateway run``, its HERMES_HOME is in its environment.

Used from the test process (the watchdog's venv), never inside the gateway. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hermes_watchdog.sim.s6service import count_launches, s6_here, s6_service

HERE = Path(__file__).resolve().parent
DEADLINE = 120.0  # generous: a gateway start imports a lot, and the machine is shared
QQ_CLIENT_SECRET = "fake-client-secret-for-tests"
_PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "wss_proxy", "ws_proxy", "ftp_proxy"}


def _poll(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclass
class FakeServer:
    """A loopback fake server of this folder, run with a Hermes venv's python: its process and port, its
    ``/stats`` and ``/control/<name>`` endpoints."""

    proc: subprocess.Popen[str]
    port: int

    def _post(self, path: str) -> dict[str, Any]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=b"", method="POST")
        with _no_proxy().open(req, timeout=30) as r:
            return json.loads(r.read())

    def stats(self) -> dict[str, Any]:
        with _no_proxy().open(f"http://127.0.0.1:{self.port}/stats", timeout=30) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class FakeQQ(FakeServer):
    """The loopback fake QQ server (tests/realhermes/fake_qq_server.py)."""

    def close_sockets(self) -> dict[str, Any]:
        """Close every open socket with 4009 and make GET /gateway fail: the 0.14.0 busy-loop trigger."""
        return self._post("/control/close")

    def heal(self) -> dict[str, Any]:
        return self._post("/control/heal")


class FakeTelegram(FakeServer):
    """The loopback fake Telegram Bot API (tests/realhermes/fake_telegram_server.py); the real Telegram adapter
    reaches it through its own ``base_url`` (telegram_setup)."""

    def drop_idle(self) -> dict[str, Any]:
        """From now on the server closes its end of every idle keep-alive connection (half a second idle)."""
        return self._post("/control/drop-idle")


def _no_proxy() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def clean_env() -> dict[str, str]:
    """The test's environment without proxies (only 127.0.0.1 is ever contacted) or a HERMES_HOME."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARS and k != "HERMES_HOME"}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


_Fake = TypeVar("_Fake", bound=FakeServer)


def _start_fake(kind: type[_Fake], python: Path, script: str, *args: str) -> _Fake:
    proc = subprocess.Popen([str(python), str(HERE / script), *args], stdout=subprocess.PIPE, text=True,
                            env=clean_env())
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise AssertionError(f"the fake server {script} did not start: {line!r}")
    return kind(proc, int(line.split()[1]))


def start_fake_qq(python: Path, *, hold: bool = True) -> FakeQQ:
    return _start_fake(FakeQQ, python, "fake_qq_server.py", *(["--hold"] if hold else []))


def start_fake_telegram(python: Path) -> FakeTelegram:
    return _start_fake(FakeTelegram, python, "fake_telegram_server.py")


def telegram_setup(home: Path, fake: FakeTelegram) -> dict[str, str]:
    """Enables the real Telegram adapter in ``home`` against the fake: its ``base_url`` in config.yaml (upstream's
    option for a self-hosted Bot API server) and what goes in the gateway's environment, returned: a bot token
    of its own per home (Hermes holds a machine-wide lock per token), and one fallback IP with the fallback
    transport off, because with none configured 0.19.0 looks them up over DNS-over-HTTPS at start."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(
        f"platforms:\n  telegram:\n    extra:\n      base_url: http://127.0.0.1:{fake.port}/bot\n")
    bot_id = 7000000000 + zlib.crc32(str(home).encode()) % 900000000
    return {"TELEGRAM_BOT_TOKEN": f"{bot_id}:fake-token-for-tests-only", "TELEGRAM_FALLBACK_IPS": "149.154.167.220",
            "HERMES_TELEGRAM_DISABLE_FALLBACK_IPS": "1"}


def qq_app_id(home: Path) -> str:
    """One bot per home: Hermes 0.19.0 holds a machine-wide lock per QQ app id (under
    ~/.local/state/hermes/gateway-locks) and refuses a second gateway with the same one."""
    return str(100000 + zlib.crc32(str(home).encode()) % 900000)


def write_home(home: Path) -> None:
    """What the real gateway needs to start with QQBot and no LLM at all: QQ credentials in HERMES_HOME/.env
    (0600, as Hermes writes it). No config.yaml (the defaults do) unless telegram_setup wrote one.
    TIRITH_ENABLED=false stops the gateway's background download of the tirith scanner from github.com at
    start (refused by gateway_inject anyway)."""
    home.mkdir(parents=True, exist_ok=True)
    env_file = home / ".env"
    env_file.write_text(f"QQ_APP_ID={qq_app_id(home)}\nQQ_CLIENT_SECRET={QQ_CLIENT_SECRET}\nTIRITH_ENABLED=false\n")
    env_file.chmod(0o600)


def write_site_dir(site: Path, pth: dict[str, str] | None = None) -> Path:
    """The gateway's test-only site folder: sitecustomize.py loads gateway_inject, then the extra .pth files
    (name -> content) are processed as if in site-packages."""
    site.mkdir(parents=True, exist_ok=True)
    for name, text in (pth or {}).items():
        (site / (name if name.endswith(".pth") else f"{name}.pth")).write_text(text)
    (site / "sitecustomize.py").write_text(
        "# test-only: written by tests/realhermes/gateway_harness.py\n"
        "import importlib.util, os, site, sys\n"
        f"_spec = importlib.util.spec_from_file_location('gateway_inject', {str(HERE / 'gateway_inject.py')!r})\n"
        "_mod = importlib.util.module_from_spec(_spec)\n"
        "sys.modules['gateway_inject'] = _mod\n"
        "_spec.loader.exec_module(_mod)\n"
        "_mod.install()\n"
        f"site.addsitedir({str(site)!r})\n"
        # The gateway's own children (tools, subprocesses) need none of this.
        "os.environ.pop('PYTHONPATH', None)\n")
    return site


def gateway_argv(python: Path) -> list[str]:
    return [str(python), "-m", "hermes_cli.main", "gateway", "run"]


def gateway_env(home: Path, fake: FakeQQ, site: Path, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    return {**clean_env(), "HERMES_HOME": str(home), "PYTHONPATH": str(site), "HERMES_TEST_QQ_PORT": str(fake.port),
            "PYTHONUNBUFFERED": "1", **(extra_env or {})}


@dataclass
class Gateway:
    """A real gateway, started directly (``proc`` is the gateway), or supervised: as a real s6 service
    (``proc`` is its s6-svscan, ``s6_service`` the service directory) where s6 is installed, else under the
    stand-in tests/realhermes/keepalive.py (``proc`` is it); either relaunches the gateway whenever it exits."""

    version: str
    python: Path
    home: Path
    fake: FakeQQ
    proc: subprocess.Popen[bytes]
    output: Path
    supervisor_state: Path | None = None
    s6_service: Path | None = None
    s6_launches: Path | None = None
    started_at: float = field(default_factory=time.monotonic)
    telegram: FakeTelegram | None = None  # set where the real Telegram adapter runs too (telegram_setup)

    # -- identity -------------------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        """The current gateway's PID (supervised: the manager's current child; 0 while there is none)."""
        if self.s6_service is not None:
            from hermes_watchdog.act.managers.s6 import supervised_pid

            return supervised_pid(self.s6_service) or 0
        if self.supervisor_state is None:
            return self.proc.pid
        info = read_json(self.supervisor_state) or {}
        return int(info.get("child") or 0)

    @property
    def launches(self) -> int:
        if self.s6_launches is not None:
            return count_launches(self.s6_launches)
        if self.supervisor_state is None:
            return 1
        return int((read_json(self.supervisor_state) or {}).get("launches") or 0)

    def alive(self, pid: int | None = None) -> bool:
        pid = pid or self.pid
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    # -- what the gateway writes -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return read_json(self.home / "gateway_state.json") or {}

    def heartbeat(self) -> dict[str, Any] | None:
        return read_json(self.home / "state" / "gateway.heartbeat")

    def heartbeat_mtime(self) -> float | None:
        try:
            return (self.home / "state" / "gateway.heartbeat").stat().st_mtime
        except OSError:
            return None

    def log(self, name: str = "gateway.log") -> str:
        try:
            return (self.home / "logs" / name).read_text(errors="replace")
        except OSError:
            return ""

    def out(self) -> str:
        try:
            return self.output.read_text(errors="replace")
        except OSError:
            return ""

    def network_refused(self) -> list[dict[str, Any]]:
        """Every non-loopback connection or name lookup the gateway tried (gateway_inject refuses them)."""
        try:
            text = (self.home / "test-inject" / "network-refused.jsonl").read_text()
        except OSError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def running_connected(self, pid: int | None = None) -> bool:
        st = self.state()
        qq = (st.get("platforms") or {}).get("qqbot") or {}
        tg = (st.get("platforms") or {}).get("telegram") or {}
        return st.get("pid") == (pid or self.pid) and st.get("gateway_state") == "running" \
            and qq.get("state") == "connected" and (self.telegram is None or tg.get("state") == "connected")

    def wait_ready(self, timeout: float = DEADLINE, pid: int | None = None) -> int:
        """Until gateway_state.json says running with qqbot (and telegram, where it runs) connected (and, on
        0.19+, the heartbeat of this PID exists). Returns the PID."""
        def ready() -> int | None:
            p = pid or self.pid
            if not p:
                return None
            if not self.alive(p):
                if self.supervisor_state is None:
                    raise AssertionError(f"gateway {p} exited before it was ready:\n{self.out()[-3000:]}")
                return None
            if not self.running_connected(p):
                return None
            if self.has_heartbeat and (self.heartbeat() or {}).get("pid") != p:
                return None
            return p

        return _poll(ready, timeout, f"Hermes {self.version} gateway to run with qqbot connected"
                     + (" and telegram" if self.telegram else ""))

    @property
    def has_heartbeat(self) -> bool:
        return tuple(int(x) for x in self.version.split(".")[:2]) >= (0, 19)

    def loop_stacks(self, dumps: int = 3) -> list[list[str]]:
        """The main (event-loop) thread's functions, innermost first, in ``dumps`` real py-spy dumps."""
        from hermes_watchdog.observe import pyspy

        binary = pyspy.find_py_spy()
        assert binary, "py-spy not found"
        pid, got = self.pid, []
        for _ in range(dumps):
            dump, reason, _hint = pyspy.dump_once(binary, pid, 30.0)
            assert dump is not None, f"py-spy dump of {pid} failed: {reason}"
            got += [[f.function for f in t.frames] for t in dump.threads if t.os_tid == pid]
        return got

    # -- test-only faults (see gateway_inject.py) ------------------------------------------------------
    def inject(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """Create the trigger file and wait for the gateway's answer; returns the ack (JSON)."""
        d = self.home / "test-inject"
        d.mkdir(exist_ok=True)
        ack = d / f"{name}.ack"
        with contextlib.suppress(FileNotFoundError):
            ack.unlink()
        (d / name).touch()
        got = _poll(lambda: read_json(ack), timeout, f"the gateway to act on the {name!r} trigger")
        if got.get("error"):
            raise AssertionError(f"injection {name!r} failed in the gateway: {got['error']}")
        return got

    # -- teardown --------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Kill everything at once (a starved gateway ignores SIGTERM); the process group holds them all."""
        pids = {self.proc.pid, self.pid}
        if self.s6_service is not None:  # no relaunch, before anything is killed
            subprocess.run(["s6-svc", "-O", "-k", str(self.s6_service)], capture_output=True, check=False)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for p in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if p:
                    os.kill(p, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(10)


def start_gateway(python: Path, version: str, home: Path, fake: FakeQQ, *, extra_env: dict[str, str] | None = None,
                  pth: dict[str, str] | None = None, supervised: bool = False,
                  telegram: FakeTelegram | None = None) -> Gateway:
    """Start the real gateway (not yet ready: call ``wait_ready``). ``extra_env`` is added to its environment,
    ``pth`` (file name -> content) are extra .pth files processed at its start. ``supervised`` runs it as a
    real s6 service where s6 is installed (tests/managed.py says when the stand-in is used instead:
    tests/realhermes/keepalive.py), which relaunches it on exit, healing the fake server first so the new
    gateway can connect. ``telegram``: the real Telegram adapter runs too, against that fake Bot API (the
    venv needs its library: ``hermes_venv(version, telegram=True)``)."""
    if telegram is not None:
        extra_env = {**(extra_env or {}), **telegram_setup(home, telegram)}
    gw = _launch(python, version, home, fake, extra_env, pth, supervised)
    gw.telegram = telegram
    return gw


def _launch(python: Path, version: str, home: Path, fake: FakeQQ, extra_env: dict[str, str] | None,
            pth: dict[str, str] | None, supervised: bool) -> Gateway:
    write_home(home)
    site = write_site_dir(home.parent / f"{home.name}-site", pth)
    env = gateway_env(home, fake, site, extra_env)
    output = home.parent / f"{home.name}-gateway.out"
    state = None
    argv = gateway_argv(python)
    if supervised and _use_s6():
        return _start_s6(python, version, home, fake, env, argv, output)
    fh = open(output, "ab")  # noqa: SIM115 - handed to the child
    if supervised:
        state = home.parent / f"{home.name}-keepalive.json"
        argv = [sys.executable, str(HERE / "keepalive.py"), "--state", str(state),
                "--heal", f"http://127.0.0.1:{fake.port}/control/heal", "--pythonpath", env.pop("PYTHONPATH"),
                "--", *argv]
    try:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    finally:
        fh.close()
    return Gateway(version, python, home, fake, proc, output, state)


# After each exit, before s6-supervise relaunches: heal the fake server so the new gateway can connect.
S6_FINISH = """#!/bin/sh
exec {python} - {url} <<'EOF'
import sys, urllib.request as u
u.build_opener(u.ProxyHandler({{}})).open(u.Request(sys.argv[1], data=b"", method="POST"), timeout=4).close()
EOF
"""


def _use_s6() -> bool:
    from tests.managed import start_managed_check

    start_managed_check()
    return s6_here()


def _start_s6(python: Path, version: str, home: Path, fake: FakeQQ, env: dict[str, str], argv: list[str],
              output: Path) -> Gateway:
    """The gateway as a real s6 service (as s6-overlay runs it in upstream's Docker image): s6-supervise
    relaunches it whenever it exits, after ./finish has healed the fake server."""
    import shlex

    finish = S6_FINISH.format(python=shlex.quote(sys.executable),
                              url=shlex.quote(f"http://127.0.0.1:{fake.port}/control/heal"))
    proc, service, launches = s6_service(home.parent / f"{home.name}-s6", argv, env, finish=finish, output=output)
    return Gateway(version, python, home, fake, proc, output, None, service, launches)
