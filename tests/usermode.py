"""Running the package as an ordinary user, and a real ``systemd --user`` for that user.

As root, the package is installed once per session (pip --target, non-editable) into a folder every user
can read, and runs under setpriv with the system Python of the same minor version: the venv and the
worktree may sit under a home only root can enter.

The user manager: PID 1 is not systemd on these machines, but ``systemd --user`` runs and supervises
units once it has a cgroup it may write. ``sd_booted()`` only checks that /run/systemd/system exists.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests import capabilities, pipfail

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = "/usr/bin/python3"
USER, GROUP, UID = "nobody", "nogroup", 65534
SYSTEMD = next((p for p in ("/lib/systemd/systemd", "/usr/lib/systemd/systemd") if os.access(p, os.X_OK)), None)


class Unavailable(Exception):
    """Why this machine cannot do it (the tests skip with this reason)."""


def setpriv() -> list[str]:
    return ["setpriv", f"--reuid={USER}", f"--regid={GROUP}", "--clear-groups"]


def install_site(shared: Path) -> Path:
    """The package and its dependencies where the test user can read them; Unavailable if not here."""
    if os.geteuid() != 0:
        raise Unavailable("not root: cannot become another user")
    if not shutil.which("setpriv") or not os.access(SYSTEM_PYTHON, os.X_OK):
        raise Unavailable(f"running as root without setpriv or {SYSTEM_PYTHON} to become another user")
    minor = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                           text=True, check=False).stdout.strip()
    if minor != str(tuple(sys.version_info[:2])):
        raise Unavailable(f"{SYSTEM_PYTHON} is {minor}, not this Python's {sys.version_info[:2]}")
    site = shared / "site"
    # From a copy of the sources: building in the checkout would write build/ and egg-info there, and two
    # test workers building at once would trip over each other's files.
    source = shared / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "tests", "bench", "__pycache__", ".pytest_cache", ".hypothesis"))
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(site), str(source)],
                       capture_output=True, text=True, check=False, timeout=600)
    if r.returncode != 0:
        # Only a proven unreachable index is "not here"; under CI=true not even that: the install-as-user and
        # real-systemd tests it would skip are what CI must prove.
        if pipfail.network_failure(r.stderr) and not capabilities.ci_strict():
            raise Unavailable("cannot reach the package registry to install the package for the test user: "
                              f"{pipfail.last_lines(r.stderr, 1)}")
        raise RuntimeError(pipfail.explain("pip install --target for the test user", r.stderr))
    for p in [site, *site.rglob("*")]:
        p.chmod(p.stat().st_mode | 0o755 if p.is_dir() else p.stat().st_mode | 0o644)
    for p in (site / "bin").glob("*"):
        p.chmod(0o755)
    return site


def chown_tree(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        os.lchown(p, UID, UID)


def _systemd_hierarchies() -> list[Path]:
    """The cgroup hierarchies systemd itself runs on: cgroup2 (unified) and v1 name=systemd. The v1
    controllers (memory, cpu...) are left alone: moving into them could escape the machine's limits."""
    found = []
    with open("/proc/self/mounts") as fh:
        for line in fh:
            _, mount, fstype, opts = line.split()[:4]
            ours = fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in opts.split(","))
            if ours and (Path(mount) / "cgroup.procs").exists():
                found.append(Path(mount))
    return found


@dataclass
class UserManager:
    """A running ``systemd --user`` of the test user, with its HOME and runtime dir."""

    home: Path
    site: Path
    runtime: Path
    proc: subprocess.Popen[bytes] | None = None
    cgroups: list[Path] = field(default_factory=list)
    made_booted_marker: bool = False
    log: Path | None = None

    @property
    def env(self) -> dict[str, str]:
        """What a login session of the test user would have, plus where the package is."""
        return {"HOME": str(self.home), "USER": USER, "LOGNAME": USER, "XDG_RUNTIME_DIR": str(self.runtime),
                "PATH": f"{self.site / 'bin'}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
                "PYTHONPATH": str(self.site)}

    def run(self, *argv: str, timeout: float = 60, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        """argv as the test user, in its session environment."""
        return subprocess.run([*setpriv(), *argv], capture_output=True, text=True, env={**self.env, **(env or {})},
                              timeout=timeout, check=False, cwd=self.home)

    def popen(self, *argv: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with open(log, "w") as fh:
            return subprocess.Popen([*setpriv(), *argv], stdout=fh, stderr=subprocess.STDOUT,
                                    env={**self.env, **(env or {})}, cwd=self.home)

    def systemctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("systemctl", "--user", *args)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.systemctl("show", "-p", ",".join(props), unit).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def start(self) -> None:
        if SYSTEMD is None or not shutil.which("systemctl"):
            raise Unavailable("systemd is not installed")
        hierarchies = _systemd_hierarchies()
        if not hierarchies:
            raise Unavailable("no cgroup hierarchy for systemd is mounted")
        marker = Path("/run/systemd/system")
        if not marker.exists():
            marker.mkdir(parents=True)
            self.made_booted_marker = True
        for h in hierarchies:
            group = h / "user.slice" / f"user-{UID}.slice" / f"user@{UID}.service"
            group.mkdir(parents=True, exist_ok=True)
            self.cgroups.append(h / "user.slice")
            for p in (group.parent.parent, group.parent, group, *group.iterdir()):
                os.chown(p, UID, UID)
        self.runtime.mkdir(parents=True, exist_ok=True)
        os.chown(self.runtime, UID, UID)
        self.runtime.chmod(0o700)
        groups = [h / "user.slice" / f"user-{UID}.slice" / f"user@{UID}.service" / "cgroup.procs"
                  for h in hierarchies]

        def enter_cgroups() -> None:  # in the starter, before it becomes the user and execs systemd
            for procs in groups:
                with open(procs, "w") as fh:
                    fh.write("0")

        self.log = self.home.parent / "systemd-user.log"
        with open(self.log, "w") as fh:
            self.proc = subprocess.Popen([*setpriv(), SYSTEMD, "--user"], env=self.env, stdout=fh,
                                         stderr=subprocess.STDOUT, preexec_fn=enter_cgroups,
                                         start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = self.systemctl("is-system-running").stdout.strip()
            if state in {"running", "degraded"}:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        log = self.log.read_text()[-500:]
        self.stop()
        raise Unavailable(f"systemd --user did not come up: {log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the user manager stops its units and exits
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        for top in self.cgroups:
            # Deepest first; a cgroup with a process left in it stays (and says so in the directory).
            for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()
        if self.made_booted_marker:
            with contextlib.suppress(OSError):
                Path("/run/systemd/system").rmdir()
        shutil.rmtree(self.runtime, ignore_errors=True)
