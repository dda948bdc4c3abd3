"""``hermes-watchdog patch status|install|uninstall``: the fix pack and the stack hook inside an installed Hermes."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

from hermes_watchdog import exitcodes
from hermes_watchdog.act.managers import Target, select
from hermes_watchdog.errors import UserError
from hermes_watchdog.observe import discovery, processes
from hermes_watchdog.observe.hook_marker import read_marker
from hermes_watchdog.observe.signals import guarded_signal
from hermes_watchdog.patches import installer
from hermes_watchdog.patches.fixes import FIXES

ACTIONS = ("status", "install", "uninstall")


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


_NEED = {"buggy": "NEEDED (this Hermes has the bug)", "fixed": "not needed (this Hermes has the fix)",
         "unknown": "not applicable (the class has another shape; nothing would be wrapped)",
         "absent": "not applicable (this Hermes has no such adapter)"}


def _status(interp: installer.Interpreter, p: installer.Probe, home: Path) -> None:
    inst = installer.installed(p.purelib)
    _say(f"gateway Python: {interp.python} ({interp.how}), Python {p.python_version}")
    _say(f"Hermes: {p.hermes_label or 'not installed in this interpreter'}"
         + (f" in {p.checkout['root']}" if p.checkout else ""))
    _say(f"patch: {'installed' if inst['installed'] else 'not installed'} in {p.purelib}"
         + ("" if not inst["installed"] or inst.get("current") else " (an older copy: run patch install)"))
    found = discovery.find_gateway(home, scan=False)
    note = installer.loaded_by(home, found.ident.pid) if found.ident is not None else None
    for fix in FIXES:
        found_fix = p.fixes.get(fix.name) or ("absent" if fix.name != "qqbot" else p.adapter)
        loaded = installer.fix_result(note, fix.name)
        _say(f"fix {fix.name} ({fix.title}, {fix.issues}; {fix.upstream}): "
             + _NEED.get(found_fix, f"unknown ({found_fix})")
             + (f"; running gateway: {loaded}" if loaded else ""))
    if found.ident is None:
        _say("running gateway: none found")
        _say("stack hook: " + ("installed; arms in the next gateway" if inst["installed"] else "not installed"))
        return
    if note is None:
        _say(f"running gateway PID {found.ident.pid}: has not loaded the patch")
    else:
        chosen = note.get("selected")
        _say(f"running gateway PID {found.ident.pid}: loaded the patch (fixes selected: "
             + (", ".join(map(str, chosen)) or "none" if isinstance(chosen, list) else "all") + ")")
    marker, why = read_marker(found.ident, home)
    if marker is None:
        _say(f"stack hook: not usable: {why}")
        return
    _say(f"stack hook: armed in PID {found.ident.pid} (stack thread: "
         f"{marker.stacks or 'none, ' + marker.stacks_why}; {marker.registration()})")


def _restart(home: Path, grace: float = 20.0, timeout: float = 90.0) -> None:
    found = discovery.find_gateway(home)
    if found.ident is None:
        _say("no running gateway to restart; the patch loads when it next starts")
        return
    target = Target(home, discovery.profile_of(home), found.ident)
    manager = select("auto", target)
    stop = threading.Event()
    result = manager.restart(target, stop)
    _say(f"restart via {manager.describe()}: {'ok' if result.ok else 'failed'} ({result.detail})")
    if not result.ok and result.manager != "signal":
        _say(guarded_signal(found.ident, signal.SIGTERM, home)[1])
    end = time.monotonic() + grace
    while processes.same_process(found.ident)[0] and time.monotonic() < end:
        time.sleep(0.2)
    if processes.same_process(found.ident)[0]:
        _say(guarded_signal(found.ident, signal.SIGKILL, home)[1] + " (SIGTERM was ignored)")
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        new = discovery.find_gateway(home)
        if new.ident is not None and new.ident.pid != found.ident.pid:
            _say(f"new gateway PID {new.ident.pid}")
            return
        time.sleep(0.5)
    _say(f"no new gateway within {timeout:g} s: is it supervised (launchd KeepAlive / systemd Restart=)?")


def main(action: str, python: Path | None, hermes_home: Path | None, restart: bool) -> int:
    if action not in ACTIONS:
        raise UserError(f"patch takes one of {', '.join(ACTIONS)}, not {action!r}")
    home = (hermes_home or discovery.default_home()).expanduser()
    interp = installer.find_interpreter(python, hermes_home)
    p = installer.probe(interp)
    if action == "status":
        _status(interp, p, home)
        return exitcodes.OK
    if action == "install":
        if not installer.has_hermes(interp):
            raise UserError(f"Hermes is not installed in {interp.python} (it cannot import hermes_cli and "
                            "gateway): pass the gateway's own Python with --python")
        if "buggy" not in {p.adapter, *p.fixes.values()}:
            _say("note: this Hermes needs none of the fixes; the patch will wrap nothing (the stack hook still arms)")
        written = installer.install(p.purelib)
        _say("installed: " + ", ".join(str(w) for w in written))
    else:
        removed = installer.uninstall(p.purelib)
        if not removed:
            _say("not installed; nothing to remove")
            return exitcodes.OK  # nothing changed: no restart to ask for
        _say("removed: " + ", ".join(str(r) for r in removed))
    if restart:
        _restart(home)
    else:
        _say("the gateway must restart to " + ("load" if action == "install" else "drop") + " it "
             "(add --restart, or restart it yourself)")
    return exitcodes.OK
