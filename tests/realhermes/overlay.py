"""A private venv layered over a cached Hermes venv, for tests that install the fix pack.

The cached venvs (tests/realhermes/venvs.py) are shared by every test run on the machine, some at the same
time: a patch installed into one would change what the others see. An overlay is a fresh venv (no pip,
made in a second) whose site-packages holds one ``.pth`` line naming the cached venv's site-packages, so it
imports the very same Hermes while ``hermes-watchdog patch install --python`` writes only into the overlay.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def purelib(python: Path) -> Path:
    code = "import json, sysconfig; print(json.dumps(sysconfig.get_paths()['purelib']))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin"}).stdout
    return Path(json.loads(out))


def overlay_venv(base_python: Path, dest: Path) -> Path:
    """A venv at ``dest`` that imports everything of ``base_python``'s venv; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(dest)], check=True)
    python = dest / "bin" / "python"
    # "00-" sorts first: Hermes is importable before any other .pth of the overlay (ours) runs.
    (purelib(python) / "00-hermes-base.pth").write_text(f"{purelib(base_python)}\n")
    return python
