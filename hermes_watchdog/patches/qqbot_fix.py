"""hermes-watchdog's runtime fix for the QQBot closed-WebSocket busy loop (hermes-agent 0.14.0 - 0.16.0).

Self-contained and standard library only: ``hermes-watchdog patch install`` copies this file into the
gateway interpreter's site-packages as ``hermes_watchdog_qqbot_fix.py`` and adds a ``.pth`` line that
calls ``install()`` at interpreter start. It never imports Hermes itself: a ``sys.meta_path`` finder
waits for ``gateway.platforms.qqbot.adapter`` to be imported, then wraps ``QQAdapter``:

- ``_read_events`` raises ``RuntimeError("WebSocket closed")`` when entered with a closed socket, and
  when its read loop ends normally while the adapter still wants to run, so ``_listen_loop`` takes its
  own reconnect-with-backoff path instead of re-entering at once without awaiting;
- ``_reconnect``: after a failed attempt, a socket that is already closed is dropped (``_ws = None``), so
  the next pass cannot take it for a live one.

It does nothing when ``HERMES_WATCHDOG_PATCHES=0``, when the class or methods are missing or have
another shape, or when the installed code already raises on a closed socket (0.17.0 on), which it
checks by behaviour, not by version. Any exception inside is logged once and leaves Hermes as it was.
Run as a script (``python qqbot_fix.py --probe``) it prints what it finds, as JSON, changing nothing.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.abc
import importlib.machinery
import inspect
import json
import logging
import os
import sys
import time

TARGET = "gateway.platforms.qqbot.adapter"
PATCH_ID = "hermes-watchdog-qqbot-busy-loop/1"
MARKER_ATTR = "_hermes_watchdog_patched"
ENV_SWITCH = "HERMES_WATCHDOG_PATCHES"
_log = logging.getLogger(TARGET)  # the adapter's own logger: our line lands in the gateway's log


class _ClosedSocket:
    """A stand-in for a closed aiohttp ClientWebSocketResponse, for the behaviour probe."""

    closed = True

    async def receive(self) -> None:
        raise AssertionError("a closed socket must not be read")

    async def close(self) -> None:
        return None


def probe(cls: type) -> str:
    """'buggy' when the original _read_events returns at once on a closed socket, 'fixed' when it raises
    RuntimeError, 'unknown' for any other shape. Drives the coroutine by hand: no event loop needed."""
    read = getattr(cls, "_read_events", None)
    reconnect = getattr(cls, "_reconnect", None)
    if not (inspect.iscoroutinefunction(read) and inspect.iscoroutinefunction(reconnect)):
        return "unknown"
    stub = object.__new__(cls)
    try:
        stub._running = True
        stub._ws = _ClosedSocket()
    except Exception:
        return "unknown"
    coro = read(stub)
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


def _wrap(cls: type) -> None:
    original_read = cls._read_events
    original_reconnect = cls._reconnect

    @functools.wraps(original_read)
    async def _read_events(self):  # type: ignore[no-untyped-def]
        ws = getattr(self, "_ws", None)
        if ws is not None and getattr(ws, "closed", False):
            raise RuntimeError("WebSocket closed")
        await original_read(self)
        if getattr(self, "_running", False):
            # The read loop ended while the adapter still runs: the socket closed without a close frame
            # reaching us. Re-entering now would spin; raising takes the listener's backoff path.
            raise RuntimeError("WebSocket closed")

    @functools.wraps(original_reconnect)
    async def _reconnect(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        ok = await original_reconnect(self, *args, **kwargs)
        if not ok:
            ws = getattr(self, "_ws", None)
            if ws is not None and getattr(ws, "closed", False):
                self._ws = None
        return ok

    cls._read_events = _read_events
    cls._reconnect = _reconnect
    setattr(cls, MARKER_ATTR, PATCH_ID)


def _record(result: str) -> None:
    """Leave a note in HERMES_HOME/state so `hermes-watchdog patch status` can tell whether the running
    gateway loaded the fix."""
    home = os.environ.get("HERMES_HOME") or os.path.join(os.path.expanduser("~"), ".hermes")
    try:
        folder = os.path.join(home, "state")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "hermes-watchdog-patch.json")
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as fh:
            json.dump({"pid": os.getpid(), "result": result, "patch": PATCH_ID, "at": time.time(),
                       "argv": sys.argv[:1]}, fh)
        os.replace(tmp, path)
    except OSError:
        pass


def apply(module: object) -> str:
    """Patch the loaded adapter module; returns what was done. Never raises."""
    try:
        cls = getattr(module, "QQAdapter", None)
        if not isinstance(cls, type):
            result = "skipped: no QQAdapter class"
        elif getattr(cls, MARKER_ATTR, None):
            return "already patched"
        else:
            found = probe(cls)
            if found == "fixed":
                result = "not needed: this Hermes already raises on a closed socket; nothing wrapped"
            elif found == "unknown":
                result = "skipped: QQAdapter._read_events/_reconnect have another shape; nothing wrapped"
            else:
                _wrap(cls)
                result = "applied: _read_events raises on a closed socket, _reconnect drops a closed socket"
        _log.warning("hermes-watchdog QQBot busy-loop fix %s", result)
        _record(result)
        return result
    except Exception as exc:  # leave Hermes exactly as it was
        with contextlib.suppress(Exception):
            _log.warning("hermes-watchdog QQBot busy-loop fix failed and did nothing: %r", exc)
        return f"failed: {exc!r}"


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def create_module(self, spec):  # type: ignore[no-untyped-def]
        return self._inner.create_module(spec)

    def exec_module(self, module) -> None:  # type: ignore[no-untyped-def]
        self._inner.exec_module(module)
        apply(module)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._inner, name)  # get_source, resource readers...


class _Finder(importlib.abc.MetaPathFinder):
    """Only ever answers for the adapter module, and only to wrap the real loader."""

    def find_spec(self, fullname, path, target=None):  # type: ignore[no-untyped-def]
        if fullname != TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader)
                return spec
        return None


def install() -> None:
    """Called from the .pth file at interpreter start: cheap, and silent unless the adapter loads."""
    try:
        if os.environ.get(ENV_SWITCH, "1").strip().lower() in {"0", "false", "no", "off"}:
            return
        if TARGET in sys.modules:
            apply(sys.modules[TARGET])
            return
        if not any(isinstance(f, _Finder) for f in sys.meta_path):
            sys.meta_path.insert(0, _Finder())
    except Exception:
        pass


def _probe_main() -> int:
    """Print, as JSON, what this interpreter has: Hermes version, site-packages, and whether the fix
    is needed (by behaviour). Imports the adapter with the patch switched off."""
    import sysconfig

    os.environ[ENV_SWITCH] = "0"
    out: dict[str, object] = {"python": sys.version.split()[0], "executable": sys.executable,
                              "purelib": sysconfig.get_paths()["purelib"]}
    try:
        from importlib.metadata import version

        out["hermes"] = version("hermes-agent")
    except Exception:
        out["hermes"] = None
    try:
        import importlib

        module = importlib.import_module(TARGET)
        out["adapter"] = probe(module.QQAdapter)
    except Exception as exc:
        out["adapter"] = f"import failed: {type(exc).__name__}: {exc}"
    print(json.dumps(out))
    return 0


if __name__ == "__main__" and "--probe" in sys.argv:
    sys.exit(_probe_main())
