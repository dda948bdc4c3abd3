"""Cached test venvs of hermes-agent from PyPI, shared by the real-Hermes tests.

Built once per machine in ~/.cache/hermes-watchdog-tests (or $HERMES_WATCHDOG_TEST_CACHE) and reused;
a test skips, saying so, only when the package registry cannot be reached (tests/pipfail.py); any other pip
failure fails it with pip's own last lines.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import pipfail

CACHE = Path(os.environ.get("HERMES_WATCHDOG_TEST_CACHE")
             or Path(pwd.getpwuid(os.getuid()).pw_dir) / ".cache" / "hermes-watchdog-tests")


# The Telegram adapter's own library, as hermes-agent's "messaging" extra pins it (0.19.0: 22.6); installed
# into the same cached venv only when a test drives the real Telegram adapter.
TELEGRAM = {"0.19.0": "python-telegram-bot[webhooks]==22.6"}


def hermes_venv(version: str, *, telegram: bool = False) -> Path:
    """A venv with hermes-agent==version and aiohttp (and, with ``telegram``, the Telegram adapter's library),
    built once per machine and reused: its python."""
    python = _base_venv(version)
    if telegram:
        _add_telegram(python, version)
    return python


def _add_telegram(python: Path, version: str) -> None:
    req = TELEGRAM.get(version)
    if req is None:
        raise AssertionError(f"no known python-telegram-bot pin for hermes-agent {version}: add it to TELEGRAM")
    venv = python.parent.parent
    done = venv / ".telegram-complete"
    if done.exists():
        return
    with open(CACHE / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return
        _pip_install(python, req)
        done.write_text(req)


def _base_venv(version: str) -> Path:
    py_tag = f"py{sys.version_info[0]}{sys.version_info[1]}"
    venv = CACHE / f"hermes-agent-{version}-{py_tag}"
    python = venv / "bin" / "python"
    done = venv / ".complete"
    if done.exists() and python.exists():
        return python
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run building the same venv: wait for it
        if done.exists() and python.exists():
            return python
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        try:
            _pip_install(python, f"hermes-agent=={version}", "aiohttp")
        except BaseException:  # a skip too: no half-built venv is left for the next run to trust
            shutil.rmtree(venv, ignore_errors=True)
            raise
        done.write_text(version)
    return python


def _pip_install(python: Path, *reqs: str) -> None:
    r = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *reqs],
                       capture_output=True, text=True, timeout=1200, check=False)
    if r.returncode != 0:
        # Only an unreachable index is a skip (and under CI=true conftest fails even that). "No matching
        # distribution" is also what pip says for a Python outside the release's Requires-Python: a failure.
        if pipfail.network_failure(r.stderr):
            pytest.skip(f"cannot reach the package registry to install {' '.join(reqs)}: "
                        f"{pipfail.last_lines(r.stderr, 1)}")
        raise AssertionError(pipfail.explain(f"pip install {' '.join(reqs)}", r.stderr))
