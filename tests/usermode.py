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


@dataclass(frozen=True)
class Hierarchy:
    mount: Path
    read_only: bool


def systemd_hierarchies(mounts: str) -> list[Hierarchy]:
    """The cgroup hierarchies systemd itself runs on, from the text of /proc/self/mounts: cgroup2 (unified)
    and v1 name=systemd. The v1 controllers (memory, cpu...) are left alone: moving into them could escape
    the machine's limits. Pure."""
    found = []
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        mount, fstype, opts = fields[1], fields[2], fields[3].split(",")
        if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in opts):
            found.append(Hierarchy(Path(mount), "ro" in opts))
    return found


@dataclass
class Made:
    """What the fixture made on the host, by path, so that the end removes exactly that: the folders it
    created (a cgroup or /run/systemd/system), the cgroups its ``systemd --user`` created below them, and the
    owners of what already existed and it chowned. Nothing it found there is removed."""

    dirs: list[Path] = field(default_factory=list)  # created, parents first
    trees: list[Path] = field(default_factory=list)  # created, and removed whole with what was put in them
    before: dict[Path, set[Path]] = field(default_factory=dict)  # a cgroup -> the folders below it at the start
    owners: dict[Path, tuple[int, int]] = field(default_factory=dict)  # chowned: its owner before

    def mkdir(self, path: Path) -> None:
        """mkdir -p, recording each level it creates. Raises OSError."""
        missing = []
        while not path.exists():
            missing.append(path)
            path = path.parent
        for p in reversed(missing):
            p.mkdir()
            self.dirs.append(p)

    def chown(self, path: Path, uid: int) -> None:
        st = path.stat()
        self.owners.setdefault(path, (st.st_uid, st.st_gid))
        os.chown(path, uid, uid)

    def watch(self, group: Path) -> None:
        """Note what is below ``group`` now: folders that appear later were made by our manager."""
        self.before[group] = {p for p in group.rglob("*") if p.is_dir()}

    def undo(self) -> None:
        """Remove what was made, deepest first; a cgroup with a process left in it stays. Give back owners."""
        for tree in self.trees:
            shutil.rmtree(tree, ignore_errors=True)
        made = list(self.dirs)
        for group, before in self.before.items():
            with contextlib.suppress(OSError):
                made += [p for p in group.rglob("*") if p.is_dir() and p not in before]
        for d in sorted(set(made), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                d.rmdir()
        for path, (uid, gid) in self.owners.items():
            with contextlib.suppress(OSError):
                os.chown(path, uid, gid)
        self.dirs, self.trees, self.before, self.owners = [], [], {}, {}


def prepare_cgroups(hierarchies: list[Hierarchy], uid: int, made: Made) -> list[Path]:
    """A cgroup ``user.slice/user-UID.slice/user@UID.service`` in each hierarchy, owned by the test user, as
    logind would delegate it; its paths. Unavailable (after undoing what it made) where cgroupfs is read-only
    or will not let us."""
    read_only = [str(h.mount) for h in hierarchies if h.read_only]
    if read_only:
        raise Unavailable(f"cgroupfs mounted read-only at {', '.join(read_only)}: no cgroup for systemd --user")
    groups = []
    try:
        for h in hierarchies:
            group = h.mount / "user.slice" / f"user-{uid}.slice" / f"user@{uid}.service"
            made.mkdir(group)
            for p in (group.parent.parent, group.parent, group, *group.iterdir()):
                made.chown(p, uid)
            made.watch(group)
            groups.append(group)
    except OSError as exc:
        made.undo()
        raise Unavailable(f"cannot make a cgroup for systemd --user: {exc}") from exc
    return groups


@dataclass
class UserManager:
    """A running ``systemd --user`` of the test user, with its HOME and runtime dir."""

    home: Path
    site: Path
    runtime: Path
    proc: subprocess.Popen[bytes] | None = None
    made: Made = field(default_factory=Made)
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
        with open("/proc/self/mounts") as fh:
            hierarchies = systemd_hierarchies(fh.read())
        if not hierarchies:
            raise Unavailable("no cgroup hierarchy for systemd is mounted")
        groups = [g / "cgroup.procs" for g in prepare_cgroups(hierarchies, UID, self.made)]
        try:
            self.made.mkdir(Path("/run/systemd/system"))  # sd_booted(); removed at the end only if made here
            if not self.runtime.exists():  # a runtime dir found here is left as it is at the end
                self.made.mkdir(self.runtime)
                self.made.trees.append(self.runtime)
            self.made.chown(self.runtime, UID)
            self.runtime.chmod(0o700)
        except OSError as exc:
            self.made.undo()
            raise Unavailable(f"cannot create /run/systemd/system or {self.runtime}: {exc}") from exc

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
        # Only what this manager made, by its recorded paths: other empty cgroups of the host stay.
        self.made.undo()
