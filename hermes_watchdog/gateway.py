"""Locate a gateway's HERMES_HOME and tell whether the files there describe a given live process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hermes_watchdog import statefile
from hermes_watchdog.processes import Identity, matches_record


@dataclass(frozen=True)
class HomeChoice:
    home: Path | None
    source: str  # how it was chosen, in words
    profile: str | None = None


def default_home(user_home: Path | None = None) -> Path:
    return (user_home or Path.home()) / ".hermes"


def profile_homes(root: Path) -> list[tuple[str, Path]]:
    base = root / "profiles"
    try:
        return sorted((p.name, p) for p in base.iterdir() if p.is_dir())
    except OSError:
        return []


def profile_of(home: Path, user_home: Path | None = None) -> str | None:
    """'work' for ~/.hermes/profiles/work, None for the default home or any other directory."""
    root = default_home(user_home)
    try:
        rel = home.resolve().relative_to((root / "profiles").resolve())
    except (ValueError, OSError):
        return None
    return rel.parts[0] if len(rel.parts) == 1 else None


def _names_pid(home: Path, pid: int) -> bool:
    return statefile.read_pid(home).pid == pid or statefile.read_state(home).pid == pid


def profile_in_cmdline(cmdline: tuple[str, ...]) -> str | None:
    """Hermes' ``hermes_cli.main --profile X gateway run`` (also -p X, --profile=X)."""
    for i, arg in enumerate(cmdline):
        if arg in {"--profile", "-p"} and i + 1 < len(cmdline):
            return cmdline[i + 1] or None
        if arg.startswith("--profile="):
            return arg.split("=", 1)[1] or None
    return None


def home_for_pid(pid: int, flag: Path | None, process_env: dict[str, str] | None,
                 user_home: Path | None = None, cmdline: tuple[str, ...] = ()) -> HomeChoice:
    """--hermes-home, else the process's own HERMES_HOME, else its --profile, else the default home or
    the profile whose gateway.pid names this PID, else the default home if it exists."""
    if flag is not None:
        return HomeChoice(flag.expanduser(), "--hermes-home", profile_of(flag.expanduser(), user_home))
    if process_env and process_env.get("HERMES_HOME"):
        home = Path(process_env["HERMES_HOME"]).expanduser()
        return HomeChoice(home, "HERMES_HOME of the process", profile_of(home, user_home))
    root = default_home(user_home)
    named = profile_in_cmdline(cmdline)
    if named:
        return HomeChoice(root / "profiles" / named, f"--profile {named} on the command line", named)
    if _names_pid(root, pid):
        return HomeChoice(root, "~/.hermes (its gateway.pid names this PID)")
    for name, home in profile_homes(root):
        if _names_pid(home, pid):
            return HomeChoice(home, f"profile '{name}' (its gateway.pid names this PID)", name)
    if root.is_dir():
        return HomeChoice(root, "~/.hermes (default; no gateway file there names this PID)")
    return HomeChoice(None, "no Hermes home found (no --hermes-home, no HERMES_HOME, no ~/.hermes)")


@dataclass(frozen=True)
class FilesSeen:
    pid_record: statefile.PidRecord
    state: statefile.GatewayState
    state_matches: bool
    state_note: str
    pid_matches: bool
    pid_note: str


def read_files(home: Path | None, ident: Identity) -> FilesSeen:
    if home is None:
        missing = statefile.FileRead("", "missing", "no Hermes home")
        return FilesSeen(statefile.PidRecord(missing), statefile.GatewayState(missing), False,
                         "no state file", False, "no pid file")
    pid_record = statefile.read_pid(home)
    state = statefile.read_state(home)
    s_ok, s_note = matches_record(ident, state.pid, state.start_time) if state.ok else (False, "unreadable")
    p_ok, p_note = (matches_record(ident, pid_record.pid, pid_record.start_time) if pid_record.read.ok
                    else (False, "unreadable"))
    return FilesSeen(pid_record, state, s_ok, s_note, p_ok, p_note)


@dataclass(frozen=True)
class Found:
    ident: Identity | None
    how: str  # how it was found, or why none was
    stale_pid: int | None = None  # a pid named by the files that is dead or another process now
    state_says_running: bool = False


def _verify(pid: int, start_time: float | None, argv: tuple[str, ...]) -> tuple[Identity | None, str]:
    import psutil

    from hermes_watchdog import processes

    try:
        ident = processes.identity(pid)
    except psutil.NoSuchProcess:
        return None, f"PID {pid} is not running"
    except psutil.AccessDenied:
        return None, f"PID {pid} cannot be inspected (permission denied)"
    ok, note = matches_record(ident, pid, start_time)
    if not ok:
        return None, f"PID {pid} is another process now ({note})"
    # The gateway's own argv (from its pid file) at the end of the live command line also proves it.
    wrote_it = len(argv) > 1 and tuple(ident.cmdline[-(len(argv) - 1):]) == argv[1:]
    if not processes.looks_like_gateway(ident.cmdline) and not wrote_it:
        return None, f"PID {pid} does not look like a Hermes gateway ({ident.command[:100]})"
    return ident, "ok"


def _scan(home: Path) -> Identity | None:
    """A gateway process whose HERMES_HOME (or --profile) is this home, for when its files say nothing."""
    import psutil

    from hermes_watchdog import processes

    target = home.expanduser().resolve()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = tuple(proc.info.get("cmdline") or ())
        if not cmd or not processes.looks_like_gateway(cmd):
            continue
        env = processes.environ(proc.pid) or {}
        named = profile_in_cmdline(cmd)
        if named:
            home_of = default_home() / "profiles" / named
        elif env.get("HERMES_HOME"):
            home_of = Path(env["HERMES_HOME"]).expanduser()
        else:
            home_of = default_home()
        try:
            if home_of.resolve() == target:
                return processes.identity(proc.pid)
        except (OSError, psutil.Error):
            continue
    return None


def find_gateway(home: Path, scan: bool = True) -> Found:
    """The live gateway of a HERMES_HOME: the pid file, else the state file, else (optionally) the
    process table. A dead or recycled PID behind those files is reported as stale, never trusted."""
    pid_record = statefile.read_pid(home)
    state = statefile.read_state(home)
    notes, stale = [], None
    for label, pid, start, argv in (("gateway.pid", pid_record.pid, pid_record.start_time, pid_record.argv),
                                    ("gateway_state.json", state.pid, state.start_time, ())):
        if pid is None:
            continue
        ident, note = _verify(pid, start, argv)
        if ident is not None:
            return Found(ident, f"{label} names PID {pid}")
        notes.append(f"{label}: {note}")
        stale = stale or pid
    if scan:
        ident = _scan(home)
        if ident is not None:
            return Found(ident, "found in the process table (its files name no live gateway)")
    running = state.ok and state.gateway_state in {"running", "starting", "degraded", "draining"}
    why = "; ".join(notes) or "no gateway.pid or state file names a process"
    return Found(None, why, stale_pid=stale, state_says_running=running)
