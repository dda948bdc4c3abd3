"""Install, remove and inspect the fix pack and the stack hook in a gateway interpreter's site-packages.

What is written is recorded in ``hermes_watchdog_patch.record`` beside it, and ``uninstall`` removes
exactly the files named there.
"""

from __future__ import annotations

import hashlib
import json
import os
import plistlib
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hermes_watchdog.act.managers import launchd, systemd
from hermes_watchdog.act.managers.base import Target
from hermes_watchdog.errors import UserError
from hermes_watchdog.observe import discovery, processes, versions
from hermes_watchdog.observe.statefile import read_bytes, read_json_object

MODULE_NAME = "hermes_watchdog_fixes"
HOOK_NAME = "hermes_watchdog_hook"
TURNS_NAME = "hermes_watchdog_loop_turns"  # the loop-turn counter, imported by the hook by this name
STACKS_NAME = "hermes_watchdog_stack_thread"  # the stack thread, imported by the hook by this name
OLD_MODULE_NAMES = ("hermes_watchdog_qqbot_fix",)  # what earlier versions installed: cleaned up on install
PTH_NAME = "hermes_watchdog_fixes.pth"
RECORD_NAME = "hermes_watchdog_patch.record"
PTH_LINE = f"import {MODULE_NAME}; {MODULE_NAME}.install()\n"
SOURCE = Path(__file__).with_name("fixes.py")
PROBE = Path(__file__).with_name("probe.py")  # run in the gateway interpreter: what it has
SOURCES = {MODULE_NAME: SOURCE, HOOK_NAME: Path(__file__).with_name("hook.py"),
           TURNS_NAME: Path(__file__).with_name("loop_turns.py"),
           STACKS_NAME: Path(__file__).with_name("stack_thread.py")}
PROBE_TIMEOUT = 120.0
FIRST_FIXED = (0, 17, 0)
FIRST_BUGGY = (0, 14, 0)


@dataclass(frozen=True)
class Interpreter:
    python: Path
    how: str


@dataclass(frozen=True)
class Probe:
    hermes: str | None
    purelib: Path
    python_version: str
    adapter: str  # the qqbot fix: buggy | fixed | unknown | absent | import failed: ...
    fixes: dict[str, str] = field(default_factory=dict)  # fix name -> buggy | fixed | unknown | absent | ...
    checkout: dict[str, Any] | None = None  # a git checkout of Hermes: root, version, commit

    @property
    def hermes_label(self) -> str | None:
        """``0.14.0`` for a wheel, ``git 0.21.0 (1a2b3c4)`` for a git checkout."""
        if self.checkout:
            return versions.git_label(self.checkout.get("version"), self.checkout.get("commit"))
        return self.hermes


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def version_needs_fix(version: str | None) -> bool | None:
    """By version alone (for reports where the interpreter is not run): 0.14.0 up to 0.17.0."""
    if not version:
        return None
    try:
        parts = tuple(int(p) for p in version.split(".")[:3])
    except ValueError:
        return None
    return FIRST_BUGGY <= parts < FIRST_FIXED


def _python_of(cmdline: tuple[str, ...], exe: str | None) -> Path | None:
    """The interpreter that runs a gateway: argv[0] when it is a Python (a venv's bin/python keeps its
    venv; the resolved exe would not), else the console script's shebang, else the executable."""
    if cmdline:
        first = Path(cmdline[0])
        if "python" in first.name and first.is_file():
            return first
        script = Path(cmdline[1]) if len(cmdline) > 1 and Path(cmdline[1]).is_file() else first
        try:
            raw, _ = read_bytes(script, 256, follow=True)  # a FIFO or a huge binary is never waited on
            head = (raw or b"").splitlines()[0].decode(errors="replace")
            if head.startswith("#!") and "python" in head:
                return Path(shlex.split(head[2:])[0])
        except (OSError, IndexError, ValueError):
            pass
    return Path(exe) if exe else None


def find_interpreter(python: Path | None, hermes_home: Path | None) -> Interpreter:
    if python is not None:
        if not (python.is_file() and os.access(python, os.X_OK)):
            raise UserError(f"--python {python} is not an executable file")
        return Interpreter(python, "--python")
    home = (hermes_home or discovery.default_home()).expanduser()
    found = discovery.find_gateway(home)
    if found.ident is not None:
        py = _python_of(found.ident.cmdline, found.ident.exe)
        if py is not None:
            return Interpreter(py, f"the running gateway (PID {found.ident.pid})")
    fake = Target(home, discovery.profile_of(home), processes.Identity(0, 0.0, (), None))
    for label in launchd.labels_for(fake):
        plist = launchd.plist_path(label)
        try:
            args = plistlib.loads(plist.read_bytes()).get("ProgramArguments") or []
            if args:
                return Interpreter(Path(args[0]), f"launchd plist {plist}")
        except (OSError, plistlib.InvalidFileException, AttributeError):
            continue
    for unit in systemd.unit_candidates(fake):
        path = systemd.user_unit_dir() / unit
        try:
            for line in path.read_text().splitlines():
                if line.strip().startswith("ExecStart="):
                    return Interpreter(Path(shlex.split(line.split("=", 1)[1])[0].lstrip("-@+!:")),
                                       f"systemd unit {path}")
        except (OSError, ValueError, IndexError):
            continue
    default = discovery.default_home() / "hermes-agent" / "venv" / "bin" / "python"
    if default.is_file():
        return Interpreter(default, "the default install (~/.hermes/hermes-agent/venv)")
    raise UserError("cannot find the gateway's Python: no running gateway, launchd plist or systemd unit "
                    "names one, and ~/.hermes/hermes-agent/venv/bin/python does not exist; pass --python")


def probe(interp: Interpreter) -> Probe:
    try:
        # The switch must be in the environment before the interpreter starts: the .pth runs first.
        env = {**os.environ, "HERMES_WATCHDOG_PATCHES": "0"}
        r = subprocess.run([str(interp.python), str(PROBE)], capture_output=True, text=True,
                           timeout=PROBE_TIMEOUT, check=False, stdin=subprocess.DEVNULL, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"cannot run {interp.python}: {exc}") from None
    try:
        data: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise UserError(f"{interp.python} did not answer the probe (exit {r.returncode}): "
                        f"{(r.stderr.strip().splitlines() or ['no output'])[-1]}") from None
    fixes = data.get("fixes") if isinstance(data.get("fixes"), dict) else {}
    checkout = data.get("checkout") if isinstance(data.get("checkout"), dict) else None
    return Probe(data.get("hermes"), Path(str(data["purelib"])), str(data.get("python")), str(data.get("adapter")),
                 {str(k): str(v) for k, v in fixes.items()}, checkout)


# Top-level find_spec only: it locates the packages without running any Hermes code.
_HAS_HERMES = ("import importlib.util as u, sys; "
               "sys.exit(0 if u.find_spec('hermes_cli') and u.find_spec('gateway') else 3)")


def has_hermes(interp: Interpreter) -> bool:
    """Can this interpreter import Hermes (``hermes_cli`` and ``gateway``)? Asked of the interpreter itself,
    so a venv, a --python of another version or a git checkout on its path all answer for themselves."""
    env = {**os.environ, "HERMES_WATCHDOG_PATCHES": "0"}
    try:
        r = subprocess.run([str(interp.python), "-c", _HAS_HERMES], capture_output=True, text=True,
                           timeout=PROBE_TIMEOUT, check=False, stdin=subprocess.DEVNULL, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"cannot run {interp.python}: {exc}") from None
    return r.returncode == 0


def installed(purelib: Path) -> dict[str, Any]:
    """What our record says was written, and whether it is still there and current."""
    record = purelib / RECORD_NAME
    read = read_json_object(record)  # bounded, never a FIFO: diagnose and incidents read it too
    if not read.ok or read.data is None:
        return {"installed": False, "files": []}
    data = read.data
    entries = data.get("files")
    files = [Path(f["path"]) for f in entries if isinstance(f, dict) and isinstance(f.get("path"), str)] \
        if isinstance(entries, list) else []
    present = bool(files) and all(p.is_file() for p in files)
    current = all((purelib / f"{name}.py").is_file()
                  and _sha((purelib / f"{name}.py").read_bytes()) == _sha(src.read_bytes())
                  for name, src in SOURCES.items())
    return {"installed": present, "current": current, "files": [str(p) for p in files],
            "installed_at": data.get("installed_at")}


def install(purelib: Path) -> list[Path]:
    if not purelib.is_dir():
        raise UserError(f"site-packages {purelib} does not exist")
    if (purelib / RECORD_NAME).exists():
        uninstall(purelib)  # an earlier version's files (another .pth name) must not load twice
    pth = purelib / PTH_NAME
    try:
        files = []
        for name, src in SOURCES.items():
            (purelib / f"{name}.py").write_bytes(src.read_bytes())
            files.append(purelib / f"{name}.py")
        pth.write_text(PTH_LINE)  # last: the .pth never names a module not yet written
        files.append(pth)
        (purelib / RECORD_NAME).write_text(json.dumps({
            "installed_by": f"hermes-watchdog ({sys.executable})",
            "installed_at": __import__("time").time(),
            "files": [{"path": str(p), "sha256": _sha(p.read_bytes())} for p in files],
        }, indent=2) + "\n")
    except OSError as exc:
        raise UserError(f"cannot write into {purelib}: {exc.strerror or exc}") from None
    return [*files, purelib / RECORD_NAME]


def uninstall(purelib: Path) -> list[Path]:
    record = purelib / RECORD_NAME
    try:
        data = json.loads(record.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {record}: {exc}") from None
    removed = []
    for f in data.get("files", []):
        path = Path(f["path"])
        if path.parent == purelib and path.is_file():  # only what we wrote, only there
            path.unlink()
            removed.append(path)
    cache = purelib / "__pycache__"
    for name in (*SOURCES, *OLD_MODULE_NAMES):
        for stale in cache.glob(f"{name}.*.pyc") if cache.is_dir() else []:
            stale.unlink()
    record.unlink()
    return [*removed, record]


def loaded_by(home: Path, pid: int | None) -> dict[str, Any] | None:
    """The note the fix leaves in HERMES_HOME/state when it loads, if it belongs to ``pid``."""
    # In the Hermes home: read like the gateway's own files (regular file only, bounded, no symlink).
    read = read_json_object(home / "state" / "hermes-watchdog-patch.json")
    data = read.data if read.ok else None
    return data if data is not None and pid is not None and data.get("pid") == pid else None


def fix_result(note: dict[str, Any] | None, name: str) -> str | None:
    """What the running gateway's loader said about one fix (None: the adapter was not imported)."""
    fixes = note.get("fixes") if note else None
    return str(fixes[name]) if isinstance(fixes, dict) and name in fixes else None


def report_line(site_packages: list[Path], hermes_version: str | None, home: Path | None,
                pid: int | None) -> str | None:
    """For diagnose and incident reports: does this version need the fix, is it installed, loaded?"""
    need = version_needs_fix(hermes_version)
    if need is None:
        return None
    if not need:
        return f"not needed (Hermes {hermes_version} has the fix)"
    inst = next((installed(sp) for sp in site_packages if (sp / RECORD_NAME).exists()), {"installed": False})
    loaded = loaded_by(home, pid) if home else None
    state = "installed" if inst["installed"] else "NOT installed (hermes-watchdog patch install)"
    if inst["installed"]:
        state += ", loaded by this gateway" if str(fix_result(loaded, "qqbot")).startswith("applied") \
            else ", not loaded by this gateway (restart it)"
    return f"needed (Hermes {hermes_version} has the busy loop); patch {state}"
