"""The stack hook: lets hermes-watchdog take a Hermes gateway's Python stacks without root, ptrace or a signal.

Installed beside the fixes as ``hermes_watchdog_hook.py`` and armed from the ``.pth`` loader at interpreter
start, only in a Hermes gateway process (``hermes gateway run``, ``python -m hermes_cli.main gateway run``,
a ``hermes-gateway`` program). Standard library only; it never imports Hermes.

Armed, it starts the stack thread installed beside it (``hermes_watchdog_stack_thread.py``,
patches/stack_thread.py: the gateway's stacks on request over a Unix socket, no signal), arms the loop-turn
counter (``hermes_watchdog_loop_turns.py``, patches/loop_turns.py), enables faulthandler for fatal signals on
stderr (so a SIGABRT to a gateway being stopped anyway leaves every thread's stack in the service log), and
writes a marker, ``HERMES_HOME/state/hermes-watchdog-hook.json`` (0600): pid, start time (as Hermes records
it), main thread id, the stack thread's address, and how SIGUSR2 is registered. The watchdog trusts the marker
only when it names the live process (observe/hook_marker.py).

The watchdog never sends SIGUSR2 (faulthandler's dump in a signal handler can crash a busy gateway: cpython
#116008, see patches/stack_thread.py). The hook still makes SIGUSR2 harmless for whoever else sends it:
Hermes 0.19.1 to 0.21.3 register it with ``chain=True`` (upstream #84373, fixed by #111435), so after the dump
the signal falls through to its default action and kills the gateway. Upstream calls it through the module
attribute -- ``faulthandler.register(_sigusr2, file=<logs/gateway_faulthandler.log opened "a">,
all_threads=True, chain=True)`` in ``GatewayStartupMixin._start_install_faulthandler`` (NousResearch/
hermes-agent, gateway/run_startup.py at commit 00067189dfecf833d4d009c2dd977ae85cf800e0; ``import
faulthandler`` at the top of the module) -- so the wrapper this hook puts on ``faulthandler.register`` at
interpreter start (before any Hermes import) catches it and registers with ``chain=False`` whatever was asked.
The marker says so (``sigusr2``: file, ``"chain": false`` and what the caller asked for), for ``patch status``.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import os
import signal
import sys
import threading
import time

ENV_SWITCH = "HERMES_WATCHDOG_HOOK"  # 0/off: no hook (the fixes still load)
MARKER = "hermes-watchdog-hook.json"
SIGNAL_NAME = "SIGUSR2"

_GATEWAY_PROGRAMS = ("hermes-gateway",)
_GATEWAY_SCRIPTS = ("gateway/run.py",)
_state: dict[str, object] = {}  # what was done, for the status note; keeps the dump file open


def _program(argv: list[str]) -> tuple[str, str, list[str]]:
    """(kind, name, args) of an interpreter command line (``sys.orig_argv``): script, module or code."""
    args = [a.replace("\\", "/") for a in argv]
    i = 1
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if arg == "-" or arg.startswith("--"):
            return "code", arg, []
        if not arg.startswith("-"):
            break
        for j, letter in enumerate(arg[1:], start=1):
            if letter in "mcWX":
                value = arg[j + 1:]
                if not value:
                    i += 1
                    value = args[i] if i < len(args) else ""
                if letter == "m":
                    return "module", value, args[i + 1:]
                if letter == "c":
                    return "code", value, []
                break
        i += 1
    if i >= len(args):
        return "code", "", []
    return "script", args[i], args[i + 1:]


def _subcommand(args: list[str]) -> tuple[list[str], str | None]:
    """The first two positional arguments past ``--profile X`` / ``-p X``, and the profile."""
    out: list[str] = []
    profile, skip = None, False
    for arg in args:
        if skip:
            profile, skip = arg, False
        elif arg in {"--profile", "-p"}:
            skip = True
        elif arg.startswith("--profile="):
            profile = arg.split("=", 1)[1]
        elif not arg.startswith("-"):
            out.append(arg)
            if len(out) == 2:
                break
    return out, profile


def gateway_argv(argv: list[str]) -> tuple[bool, str | None]:
    """Is this interpreter command line a Hermes gateway (and with which profile)? The same rule as the
    watchdog's ``looks_like_gateway``: ``gateway status`` and the like are not the gateway."""
    kind, name, args = _program(argv)
    base = name.rsplit("/", 1)[-1]
    if kind == "script" and (base in _GATEWAY_PROGRAMS or any(name == s or name.endswith("/" + s)
                                                                for s in _GATEWAY_SCRIPTS)):
        return True, None
    hermes = (kind == "script" and (base == "hermes" or name.endswith("hermes_cli/main.py"))) or \
        (kind == "module" and name == "hermes_cli.main")
    if not hermes:
        return False, None
    sub, profile = _subcommand(args)
    return sub[:1] == ["gateway"] and sub[1:] in ([], ["run"]), profile


def hermes_home(profile: str | None) -> str:
    """HERMES_HOME as the gateway will use it: the environment's, else ~/.hermes (or its profile)."""
    env = os.environ.get("HERMES_HOME")
    if env:
        return env
    base = os.path.join(os.path.expanduser("~"), ".hermes")
    return os.path.join(base, "profiles", profile) if profile else base


def start_time() -> int | None:
    """Hermes' ``start_time`` for this process: /proc/self/stat field 22 on Linux, else psutil's
    create_time in centiseconds (psutil is a Hermes dependency). None: the watchdog will not trust the marker."""
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/self/stat") as fh:
                return int(fh.read().rsplit(")", 1)[1].split()[19])
        except (OSError, IndexError, ValueError):
            return None
    try:
        import psutil  # type: ignore[import-not-found]

        return round(psutil.Process(os.getpid()).create_time() * 100)
    except Exception:
        return None


def _private_open(path: str, flags: int) -> int:
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o600)  # an older file of ours keeps no wider mode
    return fd


def write_marker(home: str, data: dict[str, object]) -> None:
    folder = os.path.join(home, "state")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, MARKER)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = _private_open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def _marker() -> dict[str, object]:
    return {"pid": os.getpid(), "start_time": _state.get("start_time"), "main_thread": _state.get("main_thread"),
            "stacks": _state.get("stacks"), "stacks_error": _state.get("stacks_error"),
            "sigusr2": _state.get("sigusr2"), "fatal_handler": faulthandler.is_enabled(), "armed_at": time.time(),
            "python": sys.version.split()[0]}


def _is_sig(signum: object, sig: int) -> bool:
    try:
        return int(signum) == sig  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False


def _watch_register(home: str, sig: int) -> None:
    """Anyone registering SIGUSR2 (Hermes 0.19.1+ does): registered without chaining whatever was asked
    (#84373), and the marker says so. Other signals pass through untouched."""
    original, original_unregister = faulthandler.register, faulthandler.unregister

    def register(signum, file=None, all_threads=True, chain=False):  # type: ignore[no-untyped-def]
        if not _is_sig(signum, sig):
            return original(signum, file=file if file is not None else sys.stderr, all_threads=all_threads,
                            chain=chain)
        # Re-registering an armed signal updates file and chain in place (CPython keeps the first
        # previous handler), so a chain=True call after an earlier registration is turned too.
        original(signum, file=file if file is not None else sys.stderr, all_threads=all_threads, chain=False)
        name = getattr(file, "name", None)
        _state["sigusr2"] = {"file": os.path.abspath(name) if isinstance(name, str) else None,
                             "chain": False, "chain_requested": bool(chain)}
        with contextlib.suppress(Exception):
            write_marker(home, _marker())

    def unregister(signum):  # type: ignore[no-untyped-def]
        if _is_sig(signum, sig):
            _state["sigusr2"] = None
            with contextlib.suppress(Exception):
                write_marker(home, _marker())
        return original_unregister(signum)

    register.__wrapped__ = original  # type: ignore[attr-defined]
    unregister.__wrapped__ = original_unregister  # type: ignore[attr-defined]
    faulthandler.register = register  # type: ignore[assignment]
    faulthandler.unregister = unregister  # type: ignore[assignment]


def arm(argv: list[str] | None = None) -> str:
    """Arm the hook if this is a gateway; returns what was done. Never raises; idempotent (a venv's
    lib64 link makes site read the same .pth twice)."""
    try:
        if "result" in _state:
            return str(_state["result"])
        if os.environ.get(ENV_SWITCH, "1").strip().lower() in {"0", "false", "no", "off"}:
            return _done("off: HERMES_WATCHDOG_HOOK=0")
        is_gateway, profile = gateway_argv(list(argv if argv is not None else getattr(sys, "orig_argv", sys.argv)))
        if not is_gateway:
            return _done("not armed: not a Hermes gateway process")
        home = hermes_home(profile)
        _state.update(home=home, start_time=start_time(), main_thread=threading.get_ident())
        _state["turns"] = _arm_turns(home)  # the loop-turn counter (patches/loop_turns.py)
        if sys.stderr is not None and not faulthandler.is_enabled():
            with contextlib.suppress(Exception):
                faulthandler.enable(all_threads=True)  # a fatal signal (SIGABRT) prints every stack to stderr
        sig = getattr(signal, SIGNAL_NAME, None)
        if sig is not None and hasattr(faulthandler, "register"):
            _watch_register(home, sig)
        stacks, why = _start_stacks(home)
        _state.update(stacks=stacks, stacks_error=why or None)
        write_marker(home, _marker())
        if stacks is None:
            return _done(f"armed without stacks ({why}); loop-turn counter: {_state['turns']}")
        return _done(f"armed: every thread's stack on request at {stacks}")
    except Exception as exc:
        return _done(f"failed: {exc!r}")


def _start_stacks(home: str) -> tuple[str | None, str]:
    """Start the stack thread installed beside this module: (its address or None, why not). Never raises."""
    try:
        if __package__:  # in the source tree (the simulated gateway, tests)
            from hermes_watchdog.patches import stack_thread
        else:
            import hermes_watchdog_stack_thread as stack_thread  # type: ignore[import-not-found,no-redef]
        st = _state.get("start_time")
        addr = stack_thread.start(home, st if isinstance(st, int) else None)
        return addr, "" if addr else str(stack_thread.status().get("failed") or "not started")
    except Exception as exc:
        return None, f"failed: {exc!r}"


def _arm_turns(home: str) -> str:
    """Arm the loop-turn counter installed beside this module. Never raises."""
    try:
        if __package__:  # in the source tree (the simulated gateway, tests)
            from hermes_watchdog.patches import loop_turns
        else:
            import hermes_watchdog_loop_turns as loop_turns  # type: ignore[import-not-found,no-redef]
        st = _state.get("start_time")
        return str(loop_turns.arm(home, st if isinstance(st, int) else None, threading.get_ident()))
    except Exception as exc:
        return f"failed: {exc!r}"


def _done(result: str) -> str:
    _state["result"] = result
    return result


def status() -> dict[str, object]:
    return {k: v for k, v in _state.items() if k in {"result", "home", "stacks", "sigusr2", "turns"}}
