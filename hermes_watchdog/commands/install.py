"""``hermes-watchdog install`` / ``uninstall``: the watchdog as a service beside the gateway, supervised
by the same manager (launchd on macOS, systemd on Linux, s6 in containers), running as the gateway's user."""

from __future__ import annotations

import contextlib
import io
import os
import pwd
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from hermes_watchdog import exitcodes
from hermes_watchdog.act.managers.naming import suffixes
from hermes_watchdog.act.managers.systemd import unit_names
from hermes_watchdog.errors import UserError
from hermes_watchdog.installers import Installer, Spec, select
from hermes_watchdog.installers import gateway_watchdog as gw_watchdog
from hermes_watchdog.observe.discovery import default_home
from hermes_watchdog.observe.statefile import hermes_home_default
from hermes_watchdog.record import private


def _home_and_suffix(hermes_home: Path | None, profile: str | None) -> tuple[Path, str]:
    if hermes_home and profile:
        raise UserError("use --hermes-home or --profile, not both")
    if profile:
        home = default_home() / "profiles" / profile
        if not home.is_dir():
            raise UserError(f"no Hermes profile {profile!r} ({home} does not exist)")
        return home, profile
    home = (hermes_home or hermes_home_default()).expanduser().absolute()
    return home, suffixes(home)[0]


def _owner(path: Path) -> str | None:
    try:
        return pwd.getpwuid(path.stat().st_uid).pw_name
    except (OSError, KeyError):
        return None


RunCheck = Callable[[list[str]], object]  # runs `run ARGS --check` and raises on bad flags (given by cli.py)


def _check_run_flags(home: Path, extra: list[str], run_check: RunCheck) -> None:
    """Validate the flags the service will run with now, not in a crash loop later."""
    try:
        # run --check says what it would do; here only its verdict on the flags matters.
        with contextlib.redirect_stdout(io.StringIO()):
            run_check(["run", "--hermes-home", str(home), *extra, "--check"])
    except UserError as exc:
        raise UserError(f"the run flags would not start: {exc}") from None
    except Exception as exc:
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        raise UserError(f"the run flags would not start: {message}") from None


def _installer(manager: str, hermes_home: Path | None, profile: str | None, extra: list[str],
               system: bool, dry_run: bool = False, s6_scandir: Path | None = None) -> Installer:
    home, suffix = _home_and_suffix(hermes_home, profile)
    inst = select(manager, Spec(hermes_home=home, suffix=suffix, run_args=("run", "--hermes-home", str(home), *extra),
                                system=system, user=_owner(home) if system else None, s6_scandir=s6_scandir))
    # A dry run changes nothing: show it to root too.
    if inst.per_user and os.geteuid() == 0 and not system and not dry_run:
        raise UserError("refusing to install as root: the watchdog must run as the gateway's user, in that "
                        "user's service manager. Run this without sudo as that user (or pass --system for a "
                        "system-wide service)")
    return inst


def install(manager: str, hermes_home: Path | None, profile: str | None, extra: list[str], dry_run: bool,
            system: bool, run_check: RunCheck, s6_scandir: Path | None = None) -> int:
    if s6_scandir is not None and not any(a == "--s6-scandir" or a.startswith("--s6-scandir=") for a in extra):
        # The gateway's s6 service sits beside the watchdog's: the watchdog searches that scan directory too
        # (besides s6-overlay's live ones), or a scan directory of the user's own would never be found.
        extra = [*extra, "--s6-scandir", str(s6_scandir.absolute())]
    inst = _installer(manager, hermes_home, profile, extra, system, dry_run, s6_scandir)
    home = inst.spec.hermes_home
    if not home.is_dir() and not dry_run:
        raise UserError(f"Hermes home {home} does not exist (is Hermes installed for this user?)")
    _check_run_flags(home, extra, run_check)
    text = inst.render()
    steps = inst.install_steps()
    if dry_run:
        # A preview works anywhere, a new machine included: what is missing is a note, not an error.
        sys.stdout.write(f"# service name: {inst.name}\n# would write {inst.path}\n{text}\n# would run:\n")
        sys.stdout.writelines(f"{' '.join(s.argv)}\n" for s in steps)
        if not home.is_dir():
            sys.stdout.write(f"# note: Hermes home {home} does not exist yet; the real install needs it (start the "
                             "gateway once, or pass --hermes-home)\n")
        if inst.per_user and os.geteuid() == 0 and not system:
            sys.stdout.write("# note: as root, the real install is refused: run it as the gateway's user, "
                             "or pass --system for a system-wide service\n")
        return exitcodes.OK
    try:
        inst.path.parent.mkdir(parents=True, exist_ok=True)
        (home / "logs").mkdir(parents=True, exist_ok=True)
        tmp = inst.path.with_name(f".{inst.path.name}.tmp")
        tmp.write_text(text)
        tmp.chmod(inst.file_mode)
        tmp.replace(inst.path)
    except OSError as exc:
        raise UserError(f"cannot write {inst.path}: {exc.strerror or exc}") from None
    failures = inst.run_steps(steps)
    if failures:
        raise UserError(f"wrote {inst.path}, but {failures[0]}")
    sys.stdout.write(f"installed {inst.manager} service {inst.name}: {inst.path}\n")
    sys.stdout.writelines(f"{line}\n" for line in inst.after_install())
    return exitcodes.OK


def uninstall(manager: str, hermes_home: Path | None, profile: str | None, system: bool,
              s6_scandir: Path | None = None) -> int:
    inst = _installer(manager, hermes_home, profile, [], system, s6_scandir=s6_scandir)
    if not inst.path.exists():
        sys.stdout.write(f"not installed: {inst.path} does not exist; nothing to do\n")
        return exitcodes.OK
    inst.run_steps(inst.uninstall_steps())
    try:
        inst.remove()
    except OSError as exc:
        raise UserError(f"cannot remove {inst.path}: {exc.strerror or exc}") from None
    after = getattr(inst, "after_uninstall_steps", None)
    if after is not None:
        inst.run_steps(after())
    sys.stdout.write(f"uninstalled {inst.manager} service {inst.name}: removed {inst.path}\n")
    return exitcodes.OK



def gateway_watchdog(hermes_home: Path | None, profile: str | None, dry_run: bool, remove: bool = False) -> int:
    """``install --gateway-watchdog`` / ``uninstall --gateway-watchdog``: systemd's own loop watchdog on the
    gateway's unit (installers/gateway_watchdog.py)."""
    home, _ = _home_and_suffix(hermes_home, profile)
    reload = ["systemctl", "--user", "daemon-reload"]
    if remove:
        # Only the units this home's gateway may run as: another profile's drop-in is not ours to remove.
        removed = [p for u in unit_names(home)
                   if (p := gw_watchdog.user_unit_dir() / f"{u}.d" / gw_watchdog.DROPIN).is_file()
                   and not p.is_symlink()]
        try:
            for p in removed:
                p.unlink()
        except OSError as exc:
            raise UserError(f"cannot remove {p}: {exc.strerror or exc}") from None
        if removed:
            _reload(reload)
        sys.stdout.write("".join(f"removed {p}\n" for p in removed) or "no gateway watchdog drop-in: nothing to do\n")
        return exitcodes.OK
    plan = gw_watchdog.plan(home)
    if dry_run:
        sys.stdout.write(f"# would write {plan.path}\n{plan.text}# would run:\n{' '.join(reload)}\n")
        return exitcodes.OK
    try:
        private.make_dir(plan.path.parent)
        private.write_text(plan.path, plan.text)
    except OSError as exc:
        raise UserError(f"cannot write {plan.path}: {exc.strerror or exc}") from None
    why = _reload(reload)
    if why:
        raise UserError(f"wrote {plan.path}, but systemctl --user daemon-reload failed: {why}")
    sys.stdout.write(f"installed systemd's loop watchdog for {plan.unit}: {plan.path}\n"
                     f"it applies from the gateway's next start: systemctl --user restart {plan.unit}\n")
    return exitcodes.OK


def _reload(argv: list[str]) -> str | None:
    """None when systemd reloaded, else why not (one line)."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        return "systemctl is not installed"
    except subprocess.TimeoutExpired:
        return "it did not answer within 60 s"
    return None if r.returncode == 0 else (r.stderr.strip()[-200:] or f"exit {r.returncode}")
