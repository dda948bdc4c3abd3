"""``hermes-watchdog skill install|uninstall|show``: a Hermes skill, so the agent itself can answer "are you
healthy?", "what happened last night?" and "show the last incident" by running the watchdog's read-only
commands. Installed as ``HERMES_HOME/skills/hermes-watchdog/SKILL.md`` (the layout Hermes' own skill scanner
reads: a folder per skill, a SKILL.md with YAML front matter), through the private writer (no link followed)."""

from __future__ import annotations

import os
import shutil
import stat
import sys
from importlib import resources
from pathlib import Path

from hermes_watchdog import exitcodes, safepath
from hermes_watchdog.errors import UserError
from hermes_watchdog.observe.discovery import default_home
from hermes_watchdog.observe.statefile import hermes_home_default
from hermes_watchdog.record import private

SKILL = "hermes-watchdog"
ACTIONS = ("install", "uninstall", "show")


def skill_text(home: Path) -> str:
    text = resources.files("hermes_watchdog").joinpath("templates", "SKILL.md").read_text(encoding="utf-8")
    return text.replace("@HERMES_HOME@", str(home))


def _home(hermes_home: Path | None, profile: str | None) -> Path:
    if hermes_home and profile:
        raise UserError("use --hermes-home or --profile, not both")
    home = (default_home() / "profiles" / profile) if profile else (hermes_home or hermes_home_default())
    home = home.expanduser().absolute()
    if not home.is_dir():
        raise UserError(f"Hermes home {home} does not exist (is Hermes installed for this user?)")
    return home


def main(action: str, hermes_home: Path | None, profile: str | None) -> int:
    if action not in ACTIONS:
        raise UserError(f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
    home = _home(hermes_home, profile)
    folder = home / "skills" / SKILL
    if action == "show":
        sys.stdout.write(skill_text(home))
        return exitcodes.OK
    if action == "uninstall":
        try:
            st = safepath.lstat(folder)
        except FileNotFoundError:
            sys.stdout.write(f"no skill at {folder}: nothing to do\n")
            return exitcodes.OK
        ours = stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
        try:
            ours = ours and stat.S_ISREG(safepath.lstat(folder / "SKILL.md").st_mode)
        except OSError:
            ours = False
        if not ours:
            raise UserError(f"{folder} is not the skill this command installs (or not yours): not removing it")
        try:
            shutil.rmtree(folder)
        except OSError as exc:
            raise UserError(f"cannot remove {folder}: {exc.strerror or exc}") from None
        sys.stdout.write(f"removed {folder}\n")
        return exitcodes.OK
    owner = os.stat(home).st_uid
    if os.geteuid() != owner:
        raise UserError(f"{home} belongs to uid {owner}: install the skill as that user (the gateway reads it)")
    try:
        private.make_dir(folder)
        private.write_text(folder / "SKILL.md", skill_text(home))
    except OSError as exc:
        raise UserError(f"cannot write {folder / 'SKILL.md'}: {exc.strerror or exc}") from None
    sys.stdout.write(f"installed the skill in {folder / 'SKILL.md'}; the gateway offers it as /{SKILL} once it "
                     "rescans its skills (a restart, or /reload-skills)\n")
    return exitcodes.OK
