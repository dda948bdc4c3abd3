"""The code base stays ruff-clean: part of the test command so CI enforces it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.fail("ruff is not installed: it is part of the [test] extra")
    r = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
