"""Which Hermes release family a gateway is: read what its home and install show (the clues), for
judge/families.recognise_clues to name. I/O only, through the safe readers; a file that cannot be read is simply not
evidence. Cheap (a few lstat calls and small reads), and done once per gateway identity by the daemon.

What is read from which file (the README's table says the same):
- the heartbeat's payload keys (``state/gateway.heartbeat``, already read and matched to this PID by the
  caller): ``loop_tick_socket`` present means the off-loop writer of upstream #92315;
- ``state/gateway.loop-tick.<pid>.sock`` and ``state/gateway.lifecycle.json``: exist only in git releases
  0.19.1+ (an lstat through safepath only: a socket of the gateway's user, a regular file);
- the version: ``hermes_cli/__init__.py`` of the git checkout that runs it (found from its stack frames or
  its venv, then ``HERMES_HOME/hermes-agent``), else the installed wheel's ``METADATA``;
- ``config.yaml``: only the one key ``gateway.loop_watchdog`` (true/false); nothing else is kept.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

from hermes_watchdog import safepath
from hermes_watchdog.facts.identity import Identity
from hermes_watchdog.facts.readings import ReleaseClues
from hermes_watchdog.observe import looptick, versions
from hermes_watchdog.observe.statefile import read_bytes
from hermes_watchdog.observe.upstream import LIFECYCLE_FILE

CONFIG_FILE = "config.yaml"
_CONFIG_MAX = 512 * 1024
_BOOL = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
_KEY = re.compile(r"^(\s*)([A-Za-z_][\w-]*)\s*:\s*(.*?)\s*(?:#.*)?$")


def version_and_source(ident: Identity, proc_env: dict[str, str] | None, home: Path | None,
                       frame_files: tuple[str, ...] = ()) -> tuple[str | None, str | None]:
    """(version, where it was read), in versions.hermes_label's order: a git checkout that runs it, the
    installed wheel, a checkout in HERMES_HOME/hermes-agent (upstream's installer puts it there)."""
    for root in versions.checkout_roots(ident.cmdline, ident.exe, proc_env, frame_files):
        found = versions.checkout_version(root)
        if found is not None and found[0]:
            commit = f", commit {found[1][:12]}" if found[1] else ""
            return found[0], f"hermes_cli/__init__.py of the git checkout {root}{commit}"
    sps = versions.candidate_site_packages(ident.cmdline, ident.exe, proc_env, frame_files)
    version = versions.hermes_version(sps)
    if version:
        return version, "the installed hermes-agent package's METADATA"
    if home is not None:
        found = versions.checkout_version(home / "hermes-agent")
        if found is not None and found[0]:
            return found[0], f"hermes_cli/__init__.py of the git checkout {home / 'hermes-agent'}"
    return None, None


def loop_watchdog_setting(raw: bytes | None) -> bool | None:
    """``gateway.loop_watchdog`` from config.yaml's text, or None when it is not set to a plain boolean.
    A line scan of the one block: no YAML library, and nothing else of the file (it holds secrets) is kept."""
    if not raw:
        return None
    in_gateway, child_indent = False, None
    for line in raw.decode("utf-8", "replace").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _KEY.match(line)
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            in_gateway = bool(m) and m.group(2) == "gateway" and m.group(3) == ""
            child_indent = None
            continue
        if not in_gateway or m is None:
            continue
        if child_indent is None:
            child_indent = indent
        if indent == child_indent and m.group(2) == "loop_watchdog":
            return _BOOL.get(m.group(3).strip("'\"").lower())
    return None


def _is_socket_of(path: Path, uid: int | None) -> bool:
    try:
        st = safepath.lstat(path)  # no link the home's user planted is followed on the way
    except OSError:
        return False
    return stat.S_ISSOCK(st.st_mode) and (uid is None or st.st_uid == uid)


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(safepath.lstat(path).st_mode)
    except OSError:
        return False


def read(home: Path | None, ident: Identity, proc_env: dict[str, str] | None,
         heartbeat_keys: frozenset[str] | None, frame_files: tuple[str, ...] = ()) -> ReleaseClues:
    """What shows the release of the gateway ``ident`` serving ``home``. ``heartbeat_keys``: the keys of
    the heartbeat payload this very process wrote (None: no heartbeat of its own)."""
    version, source = version_and_source(ident, proc_env, home, frame_files)
    tick = lifecycle = False
    setting = None
    if home is not None:
        tick = _is_socket_of(looptick.socket_path(home, ident.pid), ident.uid)
        lifecycle = _is_regular(home / LIFECYCLE_FILE)
        raw, _ = read_bytes(home / CONFIG_FILE, _CONFIG_MAX)
        setting = loop_watchdog_setting(raw)
    return ReleaseClues(version, source, heartbeat_keys, tick, lifecycle, setting)
