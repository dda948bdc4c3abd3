"""What every installer needs: the program to run, its arguments and environment, and the manager calls."""

from __future__ import annotations

import os
import sys
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from hermes_watchdog.act.managers.base import run_argv


@dataclass(frozen=True)
class Spec:
    hermes_home: Path
    suffix: str  # "" for ~/.hermes, else the profile name (or Hermes' hash for another home)
    run_args: tuple[str, ...]  # after the program: run --hermes-home ... plus the user's extra flags
    system: bool = False
    user: str | None = None  # for --system: the account the watchdog runs as
    s6_scandir: Path | None = None  # s6: the scan directory to add the service to

    @property
    def program(self) -> list[str]:
        return program_argv()

    @property
    def argv(self) -> list[str]:
        return [*self.program, *self.run_args]

    @property
    def path_env(self) -> str:
        # The venv's bin first, so py-spy (installed beside the interpreter) is found.
        bins = [str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        return os.pathsep.join(dict.fromkeys(bins))


def program_argv() -> list[str]:
    """The installed console script beside this interpreter, else ``python -m hermes_watchdog``.
    sys.executable is not resolved: a venv's bin/python must stay a venv's."""
    script = Path(sys.executable).parent / "hermes-watchdog"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script.absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "hermes_watchdog"]


def template(name: str) -> str:
    return resources.files("hermes_watchdog").joinpath("templates", name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Step:
    argv: list[str]
    check: bool = True  # a failure stops the install (False: expected to fail when nothing is loaded)


class Installer(ABC):
    manager = "base"
    per_user = True  # belongs in the gateway user's own service manager: refused as root without --system
    file_mode = 0o644  # service managers refuse group/world-writable files

    def __init__(self, spec: Spec) -> None:
        self.spec = spec

    @property
    @abstractmethod
    def name(self) -> str:
        """Label or unit name."""

    @property
    @abstractmethod
    def path(self) -> Path:
        """Where the rendered file goes."""

    @abstractmethod
    def render(self) -> str: ...

    @abstractmethod
    def install_steps(self) -> list[Step]: ...

    @abstractmethod
    def uninstall_steps(self) -> list[Step]: ...

    def remove(self) -> None:
        """Remove what install wrote (after the uninstall steps)."""
        self.path.unlink()

    def after_install(self) -> list[str]:
        """Lines to print once installed: how to check it, warnings."""
        return []

    def run_steps(self, steps: list[Step]) -> list[str]:
        """Run each manager call (argv, no shell); returns what failed, stopping at a failed check."""
        stop = threading.Event()
        failures = []
        for step in steps:
            code, out = run_argv(step.argv, 60.0, stop)
            if code != 0 and step.check:
                failures.append(f"`{' '.join(step.argv)}` failed ({'exit ' + str(code) if code is not None else out})"
                                + (f": {out.splitlines()[-1]}" if out and code is not None else ""))
                break
        return failures
