"""How the command line shows its parameters, and the options several commands share.

Arguments are shown as click shows them, and every option's help ends with its default written one way,
whether typer knows the default or the config file does. cli.py declares the commands with these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand


class Argument(TyperArgument):
    """An argument shown as click shows it: "PID" in the usage line (typer writes "{PID}"), and no "<str>"
    type tag beside a name that already says what it is."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        return self.display_name_raw if self.required else f"[{self.display_name_raw}]"


class Command(TyperCommand):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if type(param) is TyperArgument:
                param.__class__ = Argument


def opt(*decls: str, help: str, default: object = None, metavar: str | None = None) -> Any:
    """An option whose help ends with its default written one way, "[default: 5]", whether typer knows
    the default (diagnose) or the config file does (run's options are None until merged with it)."""
    text = help if default is None else f"{help}  [default: {default}]"
    return typer.Option(*decls, help=text, show_default=False, metavar=metavar)


STACK_WITH_HELP = ("How to take the Python stack: auto (py-spy where it can attach, else the fix pack's "
                   "hook: a thread in the gateway answers, no signal), py-spy, hook or none.")

EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}
# Shared by install and uninstall.
Manager = Annotated[str, opt("--manager", help="auto, launchd, systemd or s6.", default="auto", metavar="MANAGER")]
S6Scandir = Annotated[Path | None, opt("--s6-scandir", help="s6: the scan directory to add the service to.",
                                       default="/run/service, else /var/run/s6/services", metavar="DIR")]
ServiceHome = Annotated[Path | None, opt("--hermes-home", help="The gateway's HERMES_HOME.",
                                         default="$HERMES_HOME, else ~/.hermes", metavar="PATH")]
Profile = Annotated[str | None, opt("--profile", help="A Hermes profile: ~/.hermes/profiles/NAME.", metavar="NAME")]
