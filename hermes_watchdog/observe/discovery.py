"""Locate a gateway's HERMES_HOME and tell whether the files there describe a given live process."""

from __future__ import annotations

import os
import pwd
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

from hermes_watchdog.facts.identity import Identity
from hermes_watchdog.facts.readings import FileRead, GatewayState, PidRecord
from hermes_watchdog.observe import processes, statefile
from hermes_watchdog.observe.processes import matches_record

_PROFILE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # hermes_cli.profiles' rule
_ACTIVE_PROFILE_MAX = 256  # a profile name is at most 64 characters; more is not a name


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
        return HomeChoice(root, "its gateway.pid names this PID")
    for name, home in profile_homes(root):
        if _names_pid(home, pid):
            return HomeChoice(home, f"profile '{name}' (its gateway.pid names this PID)", name)
    if root.is_dir():
        return HomeChoice(root, "the default; no gateway file there names this PID")
    return HomeChoice(None, "no Hermes home found (no --hermes-home, no HERMES_HOME, no ~/.hermes)")


@dataclass(frozen=True)
class FilesSeen:
    pid_record: PidRecord
    state: GatewayState
    state_matches: bool
    state_note: str
    pid_matches: bool
    pid_note: str


def read_files(home: Path | None, ident: Identity) -> FilesSeen:
    if home is None:
        missing = FileRead("", "missing", "no Hermes home")
        return FilesSeen(PidRecord(missing), GatewayState(missing), False,
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


def _profile_flag(args: tuple[str, ...]) -> str | None:
    """``--profile X`` / ``-p X`` / ``--profile=X`` among a program's arguments, as hermes_cli.main reads it
    (the first one; a value that is not a valid profile name is ignored, as Hermes ignores it)."""
    for i, arg in enumerate(args):
        if arg in {"--profile", "-p"} and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--profile="):
            value = arg.split("=", 1)[1]
        else:
            continue
        return value if _PROFILE_NAME.match(value) else None
    return None


def home_claimed(env: Mapping[str, str], cmdline: tuple[str, ...], user_home: Path | None) -> Path | None:
    """The HERMES_HOME a gateway process serves, worked out from its own environment and arguments the way
    hermes_cli.main does at start: ``--profile X`` under the Hermes root, else HERMES_HOME (or the root's
    ``active_profile``), else ``~/.hermes`` of the process's user. None when that cannot be told. Pure
    except for reading ``active_profile``."""
    base = Path(env["HOME"]) if env.get("HOME") else user_home
    native = base / ".hermes" if base is not None and base.is_absolute() else None
    env_home = Path(env["HERMES_HOME"]) if env.get("HERMES_HOME") else None
    if env_home is not None and not env_home.is_absolute():
        return None  # relative to a working directory we do not know
    if env_home is None or (native is not None and _within(env_home, native)):
        root = native
    else:
        root = env_home.parent.parent if env_home.parent.name == "profiles" else env_home
    if root is None:
        return None
    named = _profile_flag(processes.program_of(cmdline).args)
    if named is None and env_home is not None and env_home.parent.name == "profiles":
        return env_home
    if named is None:
        # The user's file: a FIFO must not hang us, nor a link to /dev/zero fill memory (regular, bounded).
        raw, _ = statefile.read_bytes(root / "active_profile", limit=_ACTIVE_PROFILE_MAX)  # safe: the safe reader
        active = (raw or b"").decode("utf-8", "replace").strip()
        named = active if _PROFILE_NAME.match(active) else None
    if named == "default":
        return root
    if named is not None:
        return root / "profiles" / named
    return env_home or root


def _within(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except (ValueError, OSError):
        return False


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def prove(pid: int, home: Path) -> tuple[Identity | None, str]:
    """Is live ``pid`` this home's gateway? The only proof the watchdog accepts, before it adopts a process
    and again before every signal; the pid and state files only name candidates. Returns (identity, "ok")
    or (None, why not).

    Same user as the home's owner (and as us, unless we are root); environment readable and naming this
    home; a Hermes gateway by its program and arguments."""
    try:
        owner = os.stat(home).st_uid
    except OSError as exc:
        return None, f"cannot read {home}: {exc.strerror or exc}"
    try:
        ident = processes.identity(pid)
    except (processes.ProcessGone, processes.ProcessHidden) as exc:
        return None, str(exc)
    if not processes.alive(pid):
        return None, f"PID {pid} has exited"
    if not ident.cmdline:
        return None, f"PID {pid} has no readable command line"
    program = os.path.basename(processes.program_of(ident.cmdline).name) or ident.cmdline[0]
    if ident.uid != owner:
        return None, f"PID {pid} ({program}) runs as uid {ident.uid}, but {home} belongs to uid {owner}"
    me = os.getuid()
    if me != 0 and ident.uid != me:
        return None, f"PID {pid} ({program}) belongs to uid {ident.uid}, not to this watchdog's uid {me}"
    if not processes.looks_like_gateway(ident.cmdline):
        return None, f"PID {pid} ({program}) does not look like a Hermes gateway"
    env = processes.environ(pid)
    if env is None:
        return None, f"PID {pid}'s environment cannot be read, so nothing shows which Hermes home it serves"
    try:
        user_home: Path | None = Path(pwd.getpwuid(ident.uid).pw_dir) if ident.uid is not None else None
    except KeyError:
        user_home = None
    claimed = home_claimed(env, ident.cmdline, user_home)
    if claimed is None or not _same_dir(claimed, home):
        return None, f"PID {pid} is the gateway of {claimed or 'an unknown Hermes home'}, not of {home}"
    return ident, "ok"


def reprove(expected: Identity, home: Path) -> tuple[bool, str]:
    """Is ``expected`` (identified earlier) still alive, the same process (create time, user, command
    line), and still provably this home's gateway? Checked before every signal."""
    if not expected.cmdline:
        return False, f"no command line was recorded for PID {expected.pid}, so its identity is unproven"
    same, why = processes.same_process(expected)
    if not same:
        return False, why
    if expected.uid is None:
        return False, f"no user was recorded for PID {expected.pid}, so its identity is unproven"
    ident, why = prove(expected.pid, home)
    if ident is None:
        return False, why
    if (ident.uid, ident.cmdline) != (expected.uid, expected.cmdline) or \
            abs(ident.create_time - expected.create_time) > 0.05:
        return False, f"PID {expected.pid} is no longer the process identified earlier"
    return True, ""


def _verify(pid: int, start_time: float | None, home: Path) -> tuple[Identity | None, str]:
    ident, why = prove(pid, home)
    if ident is None:
        return None, why
    ok, note = matches_record(ident, pid, start_time)
    if not ok:
        return None, f"PID {pid} is another process now ({note})"
    return ident, "ok"


SCAN_TTL = 1.0  # seconds one walk of the process table serves every home (one walk per tick, not per home)
_scan_cache: tuple[float, list[tuple[int, int]]] | None = None
_scan_lock = threading.Lock()


def _gateway_processes() -> list[tuple[int, int]]:
    """(pid, real uid) of every process that looks like a gateway; one walk of the process table serves all
    homes for SCAN_TTL seconds (3,000 profiles once meant 3,000 walks a tick). Candidates only: each is
    proven for its home before use."""
    global _scan_cache
    with _scan_lock:
        now = time.monotonic()
        if _scan_cache is not None and 0 <= now - _scan_cache[0] < SCAN_TTL:
            return _scan_cache[1]
        found = []
        for proc in psutil.process_iter(["pid", "cmdline", "uids"]):
            uids = proc.info.get("uids")
            if uids is not None and processes.looks_like_gateway(tuple(proc.info.get("cmdline") or ())):
                found.append((proc.pid, uids.real))
        _scan_cache = (now, found)
        return found


def _scan(home: Path) -> Identity | None:
    """This home's gateway from the process table, for when its files name none: only processes of the
    home's owner that look like a gateway are candidates, and each must pass the proof."""
    try:
        owner = os.stat(home).st_uid
    except OSError:
        return None
    for pid, uid in _gateway_processes():
        if uid != owner:
            continue
        ident, _ = prove(pid, home)
        if ident is not None:
            return ident
    return None


def _named(home: Path, pid_record: PidRecord, state: GatewayState,
           skip: int | None = None) -> Iterator[tuple[str, int, Identity | None, str]]:
    """Each PID the files name (gateway.pid first), with its proof: (file, pid, identity or None, why not)."""
    for label, pid, start in (("gateway.pid", pid_record.pid, pid_record.start_time),
                              ("gateway_state.json", state.pid, state.start_time)):
        if pid is not None and pid != skip:
            ident, note = _verify(pid, start, home)
            yield label, pid, ident, note


def named_live_gateway(home: Path, current: Identity, pid_record: PidRecord | None = None,
                       state: GatewayState | None = None) -> tuple[Identity | None, str]:
    """When the files name a PID other than ``current`` that is a live, proven gateway of this home:
    that gateway (the watched one was adopted wrongly or has been replaced). Cheap when they agree.
    The files may be passed in when the caller has just read them."""
    pid_record = pid_record if pid_record is not None else statefile.read_pid(home)
    state = state if state is not None else statefile.read_state(home)
    for label, pid, ident, _ in _named(home, pid_record, state, skip=current.pid):
        if ident is not None:
            return ident, f"{label} names PID {pid}"
    return None, ""


def find_gateway(home: Path, scan: bool = True) -> Found:
    """The live gateway of a HERMES_HOME: the pid file, else the state file, else (optionally) the
    process table. A dead or recycled PID behind those files is reported as stale, never trusted."""
    pid_record = statefile.read_pid(home)
    state = statefile.read_state(home)
    notes, stale = [], None
    for label, pid, ident, note in _named(home, pid_record, state):
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
