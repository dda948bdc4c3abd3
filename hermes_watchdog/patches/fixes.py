"""hermes-watchdog's runtime fixes for Hermes gateway bugs, as a pack, and the loader of the stack hook.

Self-contained and standard library only: ``hermes-watchdog patch install`` copies this file into the gateway
interpreter's site-packages as ``hermes_watchdog_fixes.py`` (with ``hermes_watchdog_hook.py`` beside it) and
adds a ``.pth`` line that calls ``install()`` at interpreter start. It never imports Hermes itself: a
``sys.meta_path`` finder waits for each fix's adapter module to be imported, probes the class by behaviour,
and wraps it only where the bug is there.

The fixes (``FIXES``), each named after its upstream issue:

- ``qqbot`` (#17703, fixed upstream in 0.17.0): QQBot's ``_read_events`` returns at once on a closed socket
  and ``_listen_loop`` re-enters without awaiting: one core pinned, SIGTERM never handled.
- ``wecom`` (#49918, #55487, open in 0.19.0): WeCom's ``_read_events`` has no guard on entry either; a
  reconnect that fails during authentication leaves the closed socket in ``_ws`` and the loop spins.

Both wrappers make ``_read_events`` raise on a closed socket (and when its read loop ends while the adapter
still runs), so the listener takes its own reconnect-with-backoff path.

Switches, read from the gateway's environment: ``HERMES_WATCHDOG_PATCHES=0`` turns everything off (fixes and
hook); ``HERMES_WATCHDOG_FIXES=none`` or a comma list of fix names selects fixes while the hook stays armed.
A fix does nothing where the class is missing, has another shape, or already raises on a closed socket (the
installed code is fixed). Any exception inside leaves Hermes as it was. What this interpreter has (Hermes
version, checkout, each fix needed or not) is asked by patches/probe.py, run in it as a script.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.abc
import inspect
import json
import logging
import os
import sys
import time

ENV_SWITCH = "HERMES_WATCHDOG_PATCHES"
ENV_FIXES = "HERMES_WATCHDOG_FIXES"
MARKER_ATTR = "_hermes_watchdog_patched"
NOTE = "hermes-watchdog-patch.json"
HOOK_MODULE = "hermes_watchdog_hook"  # the installed name; in the source tree: hermes_watchdog.patches.hook


class Fix:
    """One fix: the upstream issue, where the class lives (one module per layout of Hermes), and how to
    tell the bug by behaviour."""

    def __init__(self, name: str, title: str, issues: str, targets: tuple[str, ...], cls: str,
                 needs: tuple[str, ...], closed_message: str, upstream: str, drop_closed_on_failed_reconnect: bool):
        self.name, self.title, self.issues, self.targets, self.cls = name, title, issues, targets, cls
        self.needs, self.closed_message, self.upstream = needs, closed_message, upstream
        self.drop_closed = drop_closed_on_failed_reconnect

    @property
    def patch_id(self) -> str:
        return f"hermes-watchdog-{self.name}-busy-loop/1"


FIXES = (
    Fix("qqbot", "QQBot busy-loop", "#17703", ("gateway.platforms.qqbot.adapter",), "QQAdapter",
        ("_read_events", "_reconnect"), "WebSocket closed", "fixed upstream in 0.17.0",
        drop_closed_on_failed_reconnect=True),
    Fix("wecom", "WeCom closed-socket", "#49918, #55487",
        ("gateway.platforms.wecom", "plugins.platforms.wecom.adapter"), "WeComAdapter",
        ("_read_events", "_open_connection"), "WeCom websocket closed", "still open upstream in 0.19.0",
        drop_closed_on_failed_reconnect=False),
)
BY_TARGET = {t: f for f in FIXES for t in f.targets}


class _ClosedSocket:
    """A stand-in for a closed aiohttp ClientWebSocketResponse, for the behaviour probe."""

    closed = True

    async def receive(self) -> None:
        raise AssertionError("a closed socket must not be read")

    async def close(self) -> None:
        return None


def probe(fix: Fix, cls: type) -> str:
    """'buggy' when the original _read_events returns at once on a closed socket, 'fixed' when it raises
    RuntimeError, 'unknown' for any other shape. Drives the coroutine by hand: no event loop needed."""
    if not all(inspect.iscoroutinefunction(getattr(cls, m, None)) for m in fix.needs):
        return "unknown"
    stub = object.__new__(cls)
    try:
        stub._running = True
        stub._ws = _ClosedSocket()
    except Exception:
        return "unknown"
    coro = cls._read_events(stub)
    try:
        coro.send(None)
    except StopIteration:
        return "buggy"
    except RuntimeError:
        return "fixed"
    except Exception:
        return "unknown"
    else:
        return "unknown"  # it suspended: not the shape we know
    finally:
        coro.close()


def _wrap(fix: Fix, cls: type) -> None:
    original_read = cls._read_events
    message = fix.closed_message

    @functools.wraps(original_read)
    async def _read_events(self):  # type: ignore[no-untyped-def]
        ws = getattr(self, "_ws", None)
        if ws is not None and getattr(ws, "closed", False):
            raise RuntimeError(message)
        await original_read(self)
        if getattr(self, "_running", False):
            # The read loop ended while the adapter still runs: the socket closed without a close frame
            # reaching us. Re-entering now would spin; raising takes the listener's backoff path.
            raise RuntimeError(message)

    cls._read_events = _read_events
    if fix.drop_closed:
        original_reconnect = cls._reconnect

        @functools.wraps(original_reconnect)
        async def _reconnect(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            ok = await original_reconnect(self, *args, **kwargs)
            if not ok:
                ws = getattr(self, "_ws", None)
                if ws is not None and getattr(ws, "closed", False):
                    self._ws = None  # the next pass must not take a closed socket for a live one
            return ok

        cls._reconnect = _reconnect
    setattr(cls, MARKER_ATTR, fix.patch_id)


def apply(fix: Fix, module: object) -> str:
    """Patch the loaded adapter module; returns what was done. Never raises."""
    try:
        cls = getattr(module, fix.cls, None)
        if not isinstance(cls, type):
            result = f"skipped: no {fix.cls} class"
        elif getattr(cls, MARKER_ATTR, None):
            return "already patched"
        else:
            found = probe(fix, cls)
            if found == "fixed":
                result = "not needed: this Hermes already raises on a closed socket; nothing wrapped"
            elif found == "unknown":
                result = f"skipped: {fix.cls} has another shape; nothing wrapped"
            else:
                _wrap(fix, cls)
                result = "applied: _read_events raises on a closed socket" + \
                    (", _reconnect drops a closed socket" if fix.drop_closed else "")
        with contextlib.suppress(Exception):
            # The adapter's own logger: our line lands in the gateway's log.
            logging.getLogger(getattr(module, "__name__", fix.targets[0])).warning(
                "hermes-watchdog %s fix %s", fix.title, result)
        _note({fix.name: result})
        return result
    except Exception as exc:  # leave Hermes exactly as it was
        with contextlib.suppress(Exception):
            logging.getLogger(fix.targets[0]).warning("hermes-watchdog %s fix failed and did nothing: %r",
                                                      fix.title, exc)
        return f"failed: {exc!r}"


def selected(env: dict[str, str] | os._Environ[str] | None = None) -> tuple[Fix, ...]:
    """The fixes HERMES_WATCHDOG_FIXES asks for: unset or ``all`` -> every fix; ``none`` -> none."""
    raw = (env if env is not None else os.environ).get(ENV_FIXES, "all").strip().lower()
    if raw in {"", "all"}:
        return FIXES
    names = {n.strip() for n in raw.split(",") if n.strip()}
    return tuple(f for f in FIXES if f.name in names)


def _home() -> str:
    hook = _hook_module()
    home = hook.status().get("home") if hook is not None else None
    return str(home) if home else os.environ.get("HERMES_HOME") or os.path.join(os.path.expanduser("~"), ".hermes")


_notes: dict[str, object] = {}


def _in_gateway() -> bool:
    hook = _hook_module()
    return bool(hook is not None and hook.gateway_argv(list(getattr(sys, "orig_argv", sys.argv)))[0])


def _note(update: dict[str, object]) -> None:
    """Leave a note in HERMES_HOME/state so `hermes-watchdog patch status` can tell what the running gateway
    loaded. Only a gateway writes it: a `hermes` CLI run in the same venv must not overwrite the gateway's."""
    if not _in_gateway():
        return
    hook = _hook_module()
    fixes = _notes.setdefault("fixes", {})
    assert isinstance(fixes, dict)
    fixes.update(update)
    try:
        folder = os.path.join(_home(), "state")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, NOTE)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as fh:
            json.dump({"pid": os.getpid(), "start_time": hook.start_time() if hook is not None else None,
                       "at": time.time(), "argv": sys.argv[:1],
                       "hook": hook.status().get("result") if hook is not None else None, **_notes}, fh)
        os.replace(tmp, path)
    except OSError:
        pass


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader, fix: Fix) -> None:
        self._inner, self._fix = inner, fix

    def create_module(self, spec):  # type: ignore[no-untyped-def]
        return self._inner.create_module(spec)

    def exec_module(self, module) -> None:  # type: ignore[no-untyped-def]
        self._inner.exec_module(module)
        apply(self._fix, module)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._inner, name)  # get_source, resource readers...


class _Finder(importlib.abc.MetaPathFinder):
    """Only ever answers for the selected fixes' adapter modules, and only to wrap the real loader."""

    def __init__(self, fixes: tuple[Fix, ...]) -> None:
        self.by_target = {t: f for f in fixes for t in f.targets}

    def find_spec(self, fullname, path, target=None):  # type: ignore[no-untyped-def]
        fix = self.by_target.get(fullname)
        if fix is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader, fix)
                return spec
        return None


def _hook_module():  # type: ignore[no-untyped-def]
    name = f"{__package__}.hook" if __package__ else HOOK_MODULE
    try:
        return importlib.import_module(name)
    except Exception:
        return None


def _off(value: str | None) -> bool:
    return (value or "").strip().lower() in {"0", "false", "no", "off"}


def install() -> None:
    """Called from the .pth file at interpreter start: cheap, silent unless a target module loads."""
    try:
        if _off(os.environ.get(ENV_SWITCH)):
            return
        hook = _hook_module()
        if hook is not None:
            hook.arm()
        fixes = selected()
        _notes["selected"] = [f.name for f in fixes]
        _note({})
        for fix in fixes:
            for target in fix.targets:
                if target in sys.modules:
                    apply(fix, sys.modules[target])
        if fixes and not any(isinstance(f, _Finder) for f in sys.meta_path):
            sys.meta_path.insert(0, _Finder(fixes))
    except Exception:
        pass
