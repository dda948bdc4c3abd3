"""Issue 24 item 2: packaging a user can trust. `python -m build` makes an sdist and a wheel that `twine check`
accepts; the wheel installs into a clean venv and runs `hermes-watchdog demo`; the version comes from one
place (hermes_watchdog.__version__). Needs the package index (build's isolated environment, the wheel's
dependencies): the registries are reachable here and in CI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import hermes_watchdog

ROOT = Path(__file__).resolve().parent.parent


def run(*argv: str | Path, timeout: float = 600, cwd: Path | None = None) -> str:
    # TMPDIR in the test's folder: what a command keeps for the user (the demo's folder) goes with it.
    env = {**os.environ, "TMPDIR": str(cwd)} if cwd is not None else None
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False,
                       env=env)
    assert r.returncode == 0, f"{argv}: exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout + r.stderr


def test_sdist_and_wheel_pass_twine_and_the_wheel_runs_the_demo(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy: building never writes into the checkout
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "*.egg-info", "build", "dist",
                                                             "__pycache__", ".pytest_cache", ".ruff_cache"))
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--outdir", dist, src)
    version = hermes_watchdog.__version__
    built = sorted(p.name for p in dist.iterdir())
    assert built == [f"hermes_watchdog-{version}-py3-none-any.whl", f"hermes_watchdog-{version}.tar.gz"], built
    assert "PASSED" in run(sys.executable, "-m", "twine", "check", "--strict", *sorted(dist.iterdir()))
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "pip", "install", "-q", dist / built[0])
    assert run(venv / "bin" / "hermes-watchdog", "--version").strip().endswith(version)
    out = run(venv / "bin" / "hermes-watchdog", "demo", timeout=300, cwd=tmp_path)
    assert "demo passed" in out, out[-2000:]
