"""The watchdog as a systemd user unit: ~/.config/systemd/user/hermes-watchdog[-<suffix>].service,
enabled with ``systemctl --user enable --now`` (--system: /etc/systemd/system, no --user)."""

from __future__ import annotations

import getpass
import re
import threading
from pathlib import Path
from string import Template

from hermes_watchdog.act.managers.base import run_argv
from hermes_watchdog.act.managers.systemd import user_unit_dir
from hermes_watchdog.installers.base import Installer, Step, template

_PLAIN = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


def quote(arg: str) -> str:
    """One argument for ExecStart= / Environment=: systemd splits on spaces and honours double quotes
    with C escapes; '%' starts a specifier and '$' a variable, so both are doubled."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if _PLAIN.match(arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


class SystemdInstaller(Installer):
    manager = "systemd"

    @property
    def name(self) -> str:
        return f"hermes-watchdog-{self.spec.suffix}.service" if self.spec.suffix else "hermes-watchdog.service"

    @property
    def path(self) -> Path:
        return (Path("/etc/systemd/system") if self.spec.system else user_unit_dir()) / self.name

    @property
    def systemctl(self) -> list[str]:
        return ["systemctl"] if self.spec.system else ["systemctl", "--user"]

    def render(self) -> str:
        text = Template(template("hermes-watchdog.service")).substitute(
            HERMES_HOME=str(self.spec.hermes_home).replace("%", "%%"),
            EXEC_START=" ".join(quote(a) for a in self.spec.argv),
            ENV_HERMES_HOME=quote(f"HERMES_HOME={self.spec.hermes_home}"),
            ENV_PATH=quote(f"PATH={self.spec.path_env}"),
        )
        if self.spec.system:
            text = text.replace("[Service]\n", f"[Service]\nUser={self.spec.user or 'root'}\n", 1)
            text = text.replace("WantedBy=default.target", "WantedBy=multi-user.target")
            # Webhook notifications need the network; network.target is not pulled in by multi-user.target's
            # own ordering, so this adds no cycle.
            text = re.sub(r"(?m)^(Description=.*\n)", r"\1After=network.target\n", text, count=1)
        return text

    def install_steps(self) -> list[Step]:
        return [Step([*self.systemctl, "daemon-reload"]), Step([*self.systemctl, "enable", "--now", self.name])]

    def uninstall_steps(self) -> list[Step]:
        return [Step([*self.systemctl, "disable", "--now", self.name], check=False)]

    def after_uninstall_steps(self) -> list[Step]:
        return [Step([*self.systemctl, "daemon-reload"], check=False)]

    def after_install(self) -> list[str]:
        lines = [f"check it: {' '.join(self.systemctl)} status {self.name}",
                 f"its log: journalctl {'--user ' if not self.spec.system else ''}-u {self.name}"]
        if not self.spec.system:
            lines += self.linger_warning()
        return lines

    def linger_warning(self) -> list[str]:
        user = getpass.getuser()
        code, out = run_argv(["loginctl", "show-user", user, "-p", "Linger"], 15.0, threading.Event())
        if code == 0 and out.strip().endswith("=no"):
            return [f"warning: lingering is off for {user}: user services, the watchdog among them, stop when you "
                    f"log out. Keep them running with: sudo loginctl enable-linger {user}"]
        return []

