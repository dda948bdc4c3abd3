"""The watchdog as a launchd agent: ~/Library/LaunchAgents/ai.hermes.watchdog[-<suffix>].plist, loaded
with ``launchctl bootstrap gui/<uid>`` (--system: /Library/LaunchDaemons and the system domain)."""

from __future__ import annotations

import os
import plistlib
from pathlib import Path

from hermes_watchdog.installers.base import Installer, Step, template


class LaunchdInstaller(Installer):
    manager = "launchd"

    @property
    def name(self) -> str:
        return f"ai.hermes.watchdog-{self.spec.suffix}" if self.spec.suffix else "ai.hermes.watchdog"

    @property
    def domain(self) -> str:
        return "system" if self.spec.system else f"gui/{os.getuid()}"

    @property
    def path(self) -> Path:
        base = Path("/Library/LaunchDaemons") if self.spec.system else Path.home() / "Library" / "LaunchAgents"
        return base / f"{self.name}.plist"

    def render(self) -> str:
        plist = plistlib.loads(template("ai.hermes.watchdog.plist").encode())
        home = str(self.spec.hermes_home)
        plist["Label"] = self.name
        plist["ProgramArguments"] = self.spec.argv
        plist["EnvironmentVariables"] = {"HERMES_HOME": home, "PATH": self.spec.path_env}
        plist["StandardOutPath"] = str(self.spec.hermes_home / "logs" / "watchdog.log")
        plist["StandardErrorPath"] = str(self.spec.hermes_home / "logs" / "watchdog.error.log")
        if self.spec.system and self.spec.user:
            plist["UserName"] = self.spec.user
        return plistlib.dumps(plist, sort_keys=False).decode()

    def install_steps(self) -> list[Step]:
        return [Step(["launchctl", "bootout", f"{self.domain}/{self.name}"], check=False),
                Step(["launchctl", "bootstrap", self.domain, str(self.path)])]

    def uninstall_steps(self) -> list[Step]:
        return [Step(["launchctl", "bootout", f"{self.domain}/{self.name}"], check=False)]

    def after_install(self) -> list[str]:
        return [f"check it: launchctl print {self.domain}/{self.name}",
                f"its log: {self.spec.hermes_home / 'logs' / 'watchdog.error.log'}"]
