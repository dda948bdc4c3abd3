"""Versions for reports: ours, the host's, and the target's Python and Hermes (read from disk)."""

from __future__ import annotations

import platform
import re
import sys
from pathlib import Path

from hermes_watchdog import __version__
from hermes_watchdog.observe.statefile import read_bytes

_MAX_READ = 256 * 1024  # METADATA and pyvenv.cfg are small; a FIFO or a huge file is never waited on


def _site_packages_under(prefix: Path) -> list[Path]:
    return [*sorted(prefix.glob("lib/python3*/site-packages")), prefix / "Lib" / "site-packages"]


def _site_packages_of_file(path: str) -> Path | None:
    parts = Path(path).parts
    for i in range(len(parts) - 1, 0, -1):
        if parts[i] in {"site-packages", "dist-packages"}:
            return Path(*parts[: i + 1])
    return None


def candidate_site_packages(cmdline: tuple[str, ...], exe: str | None, env: dict[str, str] | None,
                            frame_files: tuple[str, ...] = ()) -> list[Path]:
    """Where the target's packages probably live: its venv (from argv[0], a console script, the
    VIRTUAL_ENV it runs with, its executable) and any site-packages its stack frames come from."""
    out: list[Path] = []
    for f in frame_files:
        sp = _site_packages_of_file(f)
        if sp is not None and sp not in out:
            out.append(sp)
    prefixes = []
    for arg in (*cmdline[:2], exe or ""):
        if arg and "/" in arg:
            prefixes.append(Path(arg).parent.parent)
    if env and env.get("VIRTUAL_ENV"):
        prefixes.insert(0, Path(env["VIRTUAL_ENV"]))
    for prefix in prefixes:
        for sp in _site_packages_under(prefix):
            if sp not in out:
                out.append(sp)
    return out


def hermes_version(site_packages: list[Path]) -> str | None:
    for sp in site_packages:
        for dist in sorted(sp.glob("hermes_agent-*.dist-info")):
            raw, _ = read_bytes(dist / "METADATA", _MAX_READ, follow=True)
            for line in (raw or b"").decode(errors="replace").splitlines():
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip()
    return None


def git_label(version: str | None, commit: str | None) -> str:
    """How a git-installed Hermes is named in reports: ``git 0.21.0 (1a2b3c4d5e6f)``."""
    return f"git {version or 'unknown version'}" + (f" ({commit[:12]})" if commit else "")


_VERSION = re.compile(rb"""^__version__\s*=\s*["']([^"']+)["']""", re.M)


def checkout_version(root: Path) -> tuple[str | None, str | None] | None:
    """(version, commit) of a Hermes git checkout at ``root`` (``hermes_cli/__init__.py`` there), or None.
    The commit is read from .git's files, never by running git."""
    raw, _ = read_bytes(root / "hermes_cli" / "__init__.py", 65536)
    if raw is None:
        return None
    m = _VERSION.search(raw)
    return (m.group(1).decode(errors="replace") if m else None), git_commit(root)


def _small(path: Path) -> str | None:
    raw, _ = read_bytes(path, 4096)
    return raw.decode(errors="replace").strip() if raw else None


def git_commit(root: Path) -> str | None:
    git = root / ".git"
    if git.is_file():  # a linked worktree: "gitdir: <path>"
        text = _small(git) or ""
        git = (root / text.split(":", 1)[1].strip()) if ":" in text else git
    head = _small(git / "HEAD")
    if not head:
        return None
    if not head.startswith("ref:"):
        return head[:40]
    ref = head.split(":", 1)[1].strip()
    common = _small(git / "commondir")
    for base in (git, (git / common) if common else git):
        loose = _small(base / ref)
        if loose:
            return loose[:40]
        raw, _ = read_bytes(base / "packed-refs", _MAX_READ)
        for line in (raw or b"").decode(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref:
                return parts[0][:40]
    return None


def checkout_roots(cmdline: tuple[str, ...], exe: str | None, env: dict[str, str] | None,
                   frame_files: tuple[str, ...] = ()) -> list[Path]:
    """Where the git checkout of Hermes that runs may be: above a stack frame's ``hermes_cli/`` or
    ``gateway/`` outside site-packages, and the folder holding the venv that runs it (``hermes-agent/venv``)."""
    out: list[Path] = []
    for f in frame_files:
        parts = Path(f).parts
        if "site-packages" in parts or "dist-packages" in parts:
            continue
        for i in range(len(parts) - 1, 0, -1):
            if parts[i] in {"hermes_cli", "gateway"}:
                out.append(Path(*parts[:i]))
                break
    venvs = [Path(env["VIRTUAL_ENV"])] if env and env.get("VIRTUAL_ENV") else []
    venvs += [Path(a).parent.parent for a in (*cmdline[:2], exe or "") if a and "/" in a]
    out += [v.parent for v in venvs]
    unique: list[Path] = []
    for p in out:
        if p not in unique:
            unique.append(p)
    return unique


def hermes_label(site_packages: list[Path], roots: list[Path],
                 home: Path | None = None) -> tuple[str | None, str | None]:
    """(label for reports, bare version): ``git <version> (<commit>)`` when a checkout runs it (found from
    its frames or its venv), else the installed wheel's version, else a checkout in HERMES_HOME/hermes-agent
    (the upstream installer's place)."""
    for root in roots:
        found = checkout_version(root)
        if found is not None:
            return git_label(*found), found[0]
    version = hermes_version(site_packages)
    if version is None and home is not None:
        found = checkout_version(home / "hermes-agent")
        if found is not None:
            return git_label(*found), found[0]
    return version, version


def python_version_of(site_packages: list[Path], exe: str | None) -> str | None:
    for sp in site_packages:
        raw, _ = read_bytes(sp.parent.parent.parent / "pyvenv.cfg", _MAX_READ, follow=True)
        for line in (raw or b"").decode(errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() in {"version", "version_info"}:
                return value.strip()
        m = re.search(r"python(3\.\d+)", str(sp))
        if m:
            return m.group(1)
    if exe:
        m = re.search(r"python(3\.\d+)", exe)
        if m:
            return m.group(1)
    return None


def host() -> dict[str, str]:
    return {
        "hermes_watchdog": __version__,
        "watchdog_python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "platform": sys.platform,
    }
