from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import capabilities
from tests.helpers import ON_FAILURE, Sim, on_failure, start_sim


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test and every process it starts sees a temporary HOME, never the developer's ~/.hermes."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("HERMES_HOME", raising=False)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    return home


@pytest.fixture
def sims() -> Iterator[list[Sim]]:
    started: list[Sim] = []
    yield started
    for s in started:
        s.kill()


@pytest.fixture
def sim(sims: list[Sim], tmp_path: Path):
    """Start a simulated gateway: sim(mode, *args, home=...) -> Sim, killed after the test."""

    def _start(mode: str, *args: str, home: Path | None = None, **kw) -> Sim:
        s = start_sim(home or tmp_path / "hermes", mode, *args, **kw)
        sims.append(s)
        return s

    return _start


def pytest_report_header() -> str:
    return f"HOME for tests: per-test temporary; uid {os.getuid()}"


@pytest.fixture
def supervised(tmp_path: Path):
    """Start a simulated gateway under a relaunching manager: supervised(home, *gateway_args) -> the real s6
    where it runs, else the stand-in supervisor (tests/managed.py); ``stand_in=True`` asks for the stand-in."""
    from tests.helpers import Supervised
    from tests.managed import S6Gateway, start_managed

    started: list[S6Gateway | Supervised] = []

    def _start(home: Path, *args: str, **kw) -> S6Gateway | Supervised:
        s = start_managed(home, *args, **kw)
        started.append(s)
        return s

    yield _start
    for s in started:
        s.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    rep = yield
    if rep.when == "call" and rep.failed:
        for title, text in item.stash.get(ON_FAILURE, []):
            try:
                rep.sections.append((title, text()))
            except Exception as exc:  # a report of the failure must not hide it
                rep.sections.append((title, f"cannot show: {exc!r}"))
    if rep.skipped and not hasattr(rep, "wasxfail") and capabilities.ci_strict():
        _fail_a_capability_skip(item, call, rep)
    return rep


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "capability(name): a test of a capability a CI=true run must prove "
                                       "(a skip of it fails CI): " + ", ".join(capabilities.CAPABILITIES))


def _fail_a_capability_skip(item: pytest.Item, call: pytest.CallInfo, rep: pytest.TestReport) -> None:
    """Under CI=true a skip that hides a capability (real systemd, s6, promtool, real Hermes) is a failure
    naming what is missing: a green CI run must have driven them all (issue 23)."""
    reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) and len(rep.longrepr) == 3 else str(rep.longrepr)
    # Where the skip was raised (the report shows the test's own line): a helper such as hermes_venv.
    frames = [str(entry.path) for entry in call.excinfo.traceback] if call.excinfo is not None else []
    marked = [str(m.args[0]) for m in item.iter_markers("capability") if m.args]
    caps = capabilities.capabilities_of(item.path.name, getattr(item, "fixturenames", ()), marked)
    failure = capabilities.ci_failure(caps, frames, str(reason))
    if failure is not None:
        rep.outcome = "failed"
        rep.longrepr = failure


@pytest.fixture
def daemons(request: pytest.FixtureRequest):
    """Start `hermes-watchdog run` in the background: daemons(state_dir, *args, env=...) -> DaemonProc.
    A failed test shows each daemon's log tail and the gateways in its state.json."""
    from tests.helpers import DaemonProc, start_daemon

    started: list[DaemonProc] = []

    def _start(state_dir: Path, *args: str, **kw) -> DaemonProc:
        d = start_daemon(state_dir, *args, **kw)
        started.append(d)
        on_failure(request, f"daemon {state_dir.name}: log tail",
                   lambda: "\n".join(d.events().splitlines()[-80:]))
        on_failure(request, f"daemon {state_dir.name}: gateways in state.json",
                   lambda: "\n".join(str(g) for g in d.status().get("gateways") or []))
        return d

    yield _start
    for d in started:
        if d.proc.poll() is None:
            # SIGTERM first: a daemon stopped mid-burst removes its py-spy temp folder (SIGKILL cannot).
            d.proc.terminate()
            try:
                d.proc.wait(15)
            except subprocess.TimeoutExpired:
                d.proc.kill()
                d.proc.wait(10)
        shutil.rmtree(d.log.parent, ignore_errors=True)  # its log's own temp folder


# ---------------------------------------------------------------- as another user; a real systemd --user

@pytest.fixture(scope="session")
def shared_dir() -> Iterator[Path]:
    """A folder another user can reach (pytest's own temp root is 0700)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="hermes-watchdog-as-user-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def user_site(shared_dir: Path) -> Path:
    """The package installed where the ordinary test user can import it (as root only; else skipped)."""
    from tests.usermode import Unavailable, install_site

    try:
        return install_site(shared_dir)
    except Unavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def systemd_user(shared_dir: Path, user_site: Path):
    """One real `systemd --user` of the test user for the whole session; stopped at the end, and the cgroups
    and folders it made (and only those, by their recorded paths) removed. Skipped, with the reason, when not
    root or systemd cannot run here (not installed, cgroupfs read-only)."""
    from tests.usermode import UID, Unavailable, UserManager, chown_tree

    home = shared_dir / "systemd-home"
    (home / ".config" / "systemd" / "user").mkdir(parents=True)
    chown_tree(home)
    manager = UserManager(home=home, site=user_site, runtime=Path(f"/run/user/{UID}"))
    try:
        manager.start()
    except Unavailable as exc:
        pytest.skip(str(exc))
    except BaseException:
        manager.stop()  # whatever it made so far goes
        raise
    yield manager
    manager.stop()


@pytest.fixture
def real_gateway(tmp_path: Path):
    """Start the real whole Hermes gateway: real_gateway(version, supervised=..., extra_env=..., pth=...)
    -> tests.realhermes.gateway_harness.Gateway, running with qqbot connected; killed after the test."""
    from tests.realgateway import real_gateways

    yield from real_gateways(tmp_path)
