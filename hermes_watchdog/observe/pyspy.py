"""Run the real py-spy binary against a process and turn its answers (or failures) into StackAnalysis.

Never with ``--locals``: local variables carry tokens and secrets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from hermes_watchdog.facts.stacks import Dump
from hermes_watchdog.observe.stacks import parse_dump

ENV_OVERRIDE = "HERMES_WATCHDOG_PY_SPY"  # path of the py-spy binary to use; mainly for tests


def find_py_spy() -> str | None:
    override = os.environ.get(ENV_OVERRIDE)
    if override is not None:
        return override if os.access(override, os.X_OK) and os.path.isfile(override) else None
    # py-spy's wheel installs the binary in the same bin/ as the interpreter, which may not be on PATH.
    beside = Path(sys.executable).parent / ("py-spy.exe" if os.name == "nt" else "py-spy")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("py-spy")


def permission_hint() -> str:
    if sys.platform == "darwin":
        return "on macOS py-spy needs root: run the same command with sudo to get the stack"
    if os.geteuid() == 0:
        # Root already: what blocks ptrace is a missing capability or a policy, not the user.
        return ("already root, so ptrace is blocked by something else: a missing CAP_SYS_PTRACE (in a "
                "container: --cap-add SYS_PTRACE), `kernel.yama.ptrace_scope` = 3, or a seccomp/AppArmor/SELinux "
                "policy")
    return ("run as root, or allow ptrace: `sudo sysctl kernel.yama.ptrace_scope=0`, "
            "or give py-spy CAP_SYS_PTRACE (in a container: --cap-add SYS_PTRACE)")


def _classify_failure(stderr: str) -> tuple[str, str | None]:
    first = next((ln.strip() for ln in stderr.splitlines() if ln.strip()), "py-spy failed")
    low = stderr.lower()
    if "permission denied" in low or "operation not permitted" in low or "elevated permissions" in low:
        return "permission denied (ptrace)", permission_hint()
    if "failed to find python version" in low or "python interpreter" in low or "not a python" in low:
        return "not a Python process (py-spy found no Python interpreter in it)", None
    if "no such process" in low or "failed to get process executable" in low:
        return "the process exited during the capture", None
    return first.removeprefix("Error: ")[:200], None


def dump_once(binary: str, pid: int, timeout: float, nonblocking: bool = False
              ) -> tuple[Dump | None, str | None, str | None]:
    """One ``py-spy dump --json``; returns (dump, failure reason, hint). ``nonblocking``: read the memory
    without stopping the process (no ptrace attach: a loop thread under a syscall watch stays watched)."""
    env = dict(os.environ, RUST_BACKTRACE="0", RUST_LIB_BACKTRACE="0")
    try:
        proc = subprocess.run(
            [binary, "dump", "--pid", str(pid), "--json", *(["--nonblocking"] if nonblocking else [])],
            capture_output=True, text=True, timeout=max(0.5, timeout), env=env, check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"py-spy did not answer within {timeout:.1f} s", None
    except OSError as exc:
        return None, f"py-spy could not run: {exc.strerror or exc}", None
    if proc.returncode != 0:
        reason, hint = _classify_failure(proc.stderr)
        return None, reason, hint
    try:
        return parse_dump(json.loads(proc.stdout)), None, None
    except json.JSONDecodeError:
        return None, "py-spy printed something that is not JSON", None
