"""The watchdog as an s6 service (s6-overlay in containers): ``<scandir>/hermes-watchdog[-<suffix>]/run``,
picked up by the running s6-svscan with ``s6-svscanctl -a``. The scan directory is ``--s6-scandir``, else
s6-overlay's live one (``/run/service`` for v3, ``/var/run/s6/services`` for v2). A directory no s6-svscan
runs on (``/etc/services.d`` in an image being built) is only written: s6 reads it at the next start."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from hermes_watchdog.act.managers.s6 import SCANDIRS, scandir_is_live
from hermes_watchdog.errors import UserError
from hermes_watchdog.installers.base import Installer, Spec, Step

_RUN = """#!/bin/sh
# hermes-watchdog as an s6 service, written by `hermes-watchdog install --manager s6`.
# The shell only sets the environment and execs the watchdog: every argument is quoted, nothing expands.
exec 2>&1
export HERMES_HOME={home}
export PATH={path}
# It must never compete with the gateway it watches.
exec nice -n 10 {argv}
"""


def default_scandir() -> Path:
    for d in SCANDIRS:
        if scandir_is_live(d):
            return d
    raise UserError("no running s6 found (no s6-svscan on " + " or ".join(map(str, SCANDIRS))
                    + "): pass --s6-scandir DIR")


class S6Installer(Installer):
    manager = "s6"
    per_user = False  # in a container the gateway and s6 usually run as root
    file_mode = 0o755  # s6-supervise executes ./run

    def __init__(self, spec: Spec) -> None:
        super().__init__(spec)
        self.scandir = (spec.s6_scandir or default_scandir()).absolute()

    @property
    def name(self) -> str:
        return f"hermes-watchdog-{self.spec.suffix}" if self.spec.suffix else "hermes-watchdog"

    @property
    def service(self) -> Path:
        return self.scandir / self.name

    @property
    def path(self) -> Path:
        return self.service / "run"

    @property
    def live(self) -> bool:
        return scandir_is_live(self.scandir)

    def render(self) -> str:
        return _RUN.format(home=shlex.quote(str(self.spec.hermes_home)), path=shlex.quote(self.spec.path_env),
                           argv=shlex.join(self.spec.argv))

    def install_steps(self) -> list[Step]:
        return [Step(["s6-svscanctl", "-a", str(self.scandir)])] if self.live else []

    def uninstall_steps(self) -> list[Step]:
        return [Step(["s6-svc", "-wd", "-T", "15000", "-d", str(self.service)], check=False)] if self.live else []

    def remove(self) -> None:
        shutil.rmtree(self.service)

    def after_uninstall_steps(self) -> list[Step]:
        # -n: s6-svscan also stops the s6-supervise of a service that is gone.
        return [Step(["s6-svscanctl", "-an", str(self.scandir)], check=False)] if self.live else []

    def after_install(self) -> list[str]:
        if not self.live:
            return [f"no s6-svscan runs on {self.scandir}: s6 starts the watchdog when it next scans it "
                    "(at container start for /etc/services.d)"]
        return [f"check it: s6-svstat {self.service}",
                "its log: the container's output (docker logs), as the gateway's"]
