"""Cached test venvs of hermes-agent from PyPI, shared by the real-Hermes tests.

Built once per machine in ~/.cache/hermes-watchdog-tests (or $HERMES_WATCHDOG_TEST_CACHE) and reused;
a test skips, saying so, only when the package registry cannot be reached.
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

CACHE = Path(os.environ.get("HERMES_WATCHDOG_TEST_CACHE")
             or Path(pwd.getpwuid(os.getuid()).pw_dir) / ".cache" / "hermes-watchdog-tests")
_NETWORK_ERRORS = ("Could not find a version", "No matching distribution", "Failed to establish",
                   "Temporary failure in name resolution", "Network is unreachable", "ConnectTimeout",
                   "Max retries exceeded", "ProxyError")


def hermes_venv(version: str) -> Path:
    """A venv with hermes-agent==version and aiohttp, built once per machine and reused: its python."""
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
        r = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                            f"hermes-agent=={version}", "aiohttp"], capture_output=True, text=True, timeout=1200,
                           check=False)
        if r.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            if any(e in r.stderr for e in _NETWORK_ERRORS):
                pytest.skip(f"cannot reach the package registry to install hermes-agent=={version}: "
                            f"{r.stderr.strip().splitlines()[-1]}")
            raise AssertionError(f"pip install hermes-agent=={version} failed:\n{r.stderr[-2000:]}")
        done.write_text(version)
    return python
