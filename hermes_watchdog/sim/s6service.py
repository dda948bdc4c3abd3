"""A command run as a real s6 service (`s6-svscan` + `s6-supervise`, Debian's `s6`), as s6-overlay runs
Hermes in upstream's Docker image: the one builder the tests (tests/managed.py, the real-Hermes harness)
and bench/ share. A service that exits, or is killed, is started again by s6-supervise."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

from hermes_watchdog.sim.poll import poll

RUN = """#!/bin/sh
# One line per launch, for a count; then the command itself, with exactly the given environment.
echo launch >> {launches}
exec env -i {env} {argv}
"""


def s6_here() -> bool:
    return shutil.which("s6-svscan") is not None and shutil.which("s6-svstat") is not None


def count_launches(path: Path) -> int:
    """Launches so far, from the line each run of a service's ./run appends."""
    try:
        return len(path.read_text().split())
    except OSError:
        return 0


def s6_service(root: Path, argv: list[str], env: dict[str, str], *, finish: str | None = None,
               finish_timeout: float | None = None, output: Path | None = None
               ) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """A service running ``argv`` with exactly ``env``, under its own s6-svscan in ``root/scan``:
    (s6-svscan, the service directory, the launches file). ``finish``: a ./finish script's text (run after
    each exit, before the relaunch), let run ``finish_timeout`` s (s6 kills it after 5 s otherwise);
    ``output``: where the service's output goes (s6-svscan hands its own down)."""
    staged, scan, launches = root / ".service", root / "scan", root / "launches"
    staged.mkdir(parents=True)
    q = shlex.quote
    # Bytes: an argument may be any bytes a command line can hold (surrogate-escaped here, as Python does).
    (staged / "run").write_bytes(RUN.format(
        launches=q(str(launches)), env=" ".join(q(f"{k}={v}") for k, v in env.items() if "=" not in k),
        argv=" ".join(q(a) for a in argv)).encode("utf-8", "surrogateescape"))
    (staged / "run").chmod(0o755)
    if finish is not None:
        (staged / "finish").write_text(finish)
        (staged / "finish").chmod(0o755)
    if finish_timeout is not None:
        (staged / "timeout-finish").write_text(f"{int(finish_timeout * 1000)}\n")
    scan.mkdir()
    service = scan / "hermes-gateway"
    staged.rename(service)  # whole before s6-svscan sees it
    with open(output or os.devnull, "ab") as fh:
        proc = subprocess.Popen(["s6-svscan", str(scan)], stdin=subprocess.DEVNULL, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
    if not poll(lambda: (scan / ".s6-svscan" / "control").exists(), 60.0):
        proc.kill()
        raise RuntimeError(f"s6-svscan did not start on {scan} within 60 s")
    return proc, service, launches
