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
