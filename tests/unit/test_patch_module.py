"""The fix pack's own logic on small stand-in classes (not Hermes code): shape checks, the behaviour
probe, the wrappers, the selection switch, and the import hook on a throwaway package."""

from __future__ import annotations

import asyncio
import importlib
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from hermes_watchdog.patches import fixes
from hermes_watchdog.patches.installer import version_needs_fix


class Socket:
    def __init__(self, closed: bool) -> None:
        self.closed = closed


QQ = next(f for f in fixes.FIXES if f.name == "qqbot")
WECOM = next(f for f in fixes.FIXES if f.name == "wecom")


def make_adapter(kind: str) -> type:
    class Adapter:
        def __init__(self) -> None:
            self._running = True
            self._ws: Socket | None = Socket(closed=True)
            self.reconnects = 0

        async def _read_events(self) -> None:
            if not self._ws:
                raise RuntimeError("WebSocket not connected")
            if kind == "fixed" and self._ws.closed:
                raise RuntimeError("WebSocket closed")
            while self._running and self._ws and not self._ws.closed:
                await asyncio.sleep(0)

        async def _reconnect(self, backoff_idx: int) -> bool:
            self.reconnects += 1
            return False

    Adapter.__name__ = "QQAdapter"
    return Adapter


def test_probe_tells_buggy_fixed_and_other_shapes() -> None:
    assert fixes.probe(QQ, make_adapter("buggy")) == "buggy"
    assert fixes.probe(QQ, make_adapter("fixed")) == "fixed"

    class Sync:
        def _read_events(self) -> None: ...

        def _reconnect(self) -> None: ...

    assert fixes.probe(QQ, Sync) == "unknown"
    assert fixes.probe(QQ, object) == "unknown"


def test_apply_wraps_a_buggy_adapter_and_the_wrappers_behave() -> None:
    cls = make_adapter("buggy")
    module = types.SimpleNamespace(QQAdapter=cls)
    assert fixes.apply(QQ, module).startswith("applied")
    assert fixes.apply(QQ, module) == "already patched"
    a = cls()
    with pytest.raises(RuntimeError, match="WebSocket closed"):
        asyncio.run(a._read_events())
    assert asyncio.run(a._reconnect(0)) is False and a._ws is None and a.reconnects == 1
    a._ws, a._running = Socket(closed=False), False  # shutting down: a normal return stays normal
    asyncio.run(a._read_events())


def test_apply_leaves_fixed_missing_and_odd_shapes_alone() -> None:
    fixed = make_adapter("fixed")
    original = fixed._read_events
    assert fixes.apply(QQ, types.SimpleNamespace(QQAdapter=fixed)).startswith("not needed")
    assert fixed._read_events is original and not hasattr(fixed, fixes.MARKER_ATTR)
    assert fixes.apply(QQ, types.SimpleNamespace()).startswith("skipped: no QQAdapter")

    class Other:  # a read loop of another shape: the probe sees an error it does not know
        async def _read_events(self) -> None:
            await self._ws.reader.read()

        async def _reconnect(self, backoff_idx: int) -> bool:
            return False

    original_other = Other._read_events
    assert fixes.apply(QQ, types.SimpleNamespace(QQAdapter=Other)).startswith("skipped: QQAdapter")
    assert Other._read_events is original_other


@pytest.fixture
def fake_hermes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    pkg = tmp_path / "gateway" / "platforms" / "qqbot"
    pkg.mkdir(parents=True)
    for d in (tmp_path / "gateway", tmp_path / "gateway" / "platforms", pkg):
        (d / "__init__.py").write_text("")
    (pkg / "adapter.py").write_text(
        "import asyncio\n"
        "class QQAdapter:\n"
        "    async def _read_events(self):\n"
        "        while self._running and self._ws and not self._ws.closed:\n"
        "            await asyncio.sleep(0)\n"
        "    async def _reconnect(self, backoff_idx):\n"
        "        return False\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("HERMES_HOME", str(tmp_path / "home"))
    saved = list(sys.meta_path)
    yield tmp_path
    sys.meta_path[:] = saved
    for name in [n for n in sys.modules if n == "gateway" or n.startswith("gateway.")]:
        del sys.modules[name]


def test_import_hook_patches_the_adapter_when_it_is_imported(fake_hermes: Path) -> None:
    fixes.install()
    fixes.install()  # idempotent: one finder
    assert sum(isinstance(f, fixes._Finder) for f in sys.meta_path) == 1
    assert "gateway.platforms.qqbot.adapter" not in sys.modules  # nothing imported early
    module = importlib.import_module("gateway.platforms.qqbot.adapter")
    assert getattr(module.QQAdapter, fixes.MARKER_ATTR) == QQ.patch_id == "hermes-watchdog-qqbot-busy-loop/1"
    # pytest is no gateway: neither the hook's marker nor the loader's note is written here.
    assert not (fake_hermes / "home" / "state").exists()


def test_environment_switch_turns_it_off(fake_hermes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERMES_WATCHDOG_PATCHES", "0")
    fixes.install()
    module = importlib.import_module("gateway.platforms.qqbot.adapter")
    assert not hasattr(module.QQAdapter, fixes.MARKER_ATTR)


def test_versions_that_need_the_fix() -> None:
    assert [version_needs_fix(v) for v in ("0.13.9", "0.14.0", "0.16.3", "0.17.0", "1.0.0", None, "dev")] == \
        [False, True, True, False, False, None, None]


def test_selection_by_environment() -> None:
    names = lambda env: [f.name for f in fixes.selected(env)]  # noqa: E731
    assert names({}) == names({"HERMES_WATCHDOG_FIXES": "all"}) == ["qqbot", "wecom"]
    assert names({"HERMES_WATCHDOG_FIXES": "none"}) == []
    assert names({"HERMES_WATCHDOG_FIXES": " WeCom , nosuch"}) == ["wecom"]


def test_selection_none_patches_nothing(fake_hermes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERMES_WATCHDOG_FIXES", "none")
    fixes.install()
    module = importlib.import_module("gateway.platforms.qqbot.adapter")
    assert not hasattr(module.QQAdapter, fixes.MARKER_ATTR)


def test_wecom_fix_on_its_shape() -> None:
    """WeCom's reconnect clears _ws itself: only _read_events is wrapped, _open_connection is left alone."""
    def wecom(kind: str) -> type:
        class WeComAdapter:
            async def _read_events(self) -> None:
                if not self._ws:
                    raise RuntimeError("WebSocket not connected")
                if kind == "fixed" and self._ws.closed:
                    raise RuntimeError("WeCom websocket closed")
                while self._running and self._ws and not self._ws.closed:
                    await asyncio.sleep(0)

            async def _open_connection(self) -> None:
                self._ws = None

        return WeComAdapter

    buggy, fixed = wecom("buggy"), wecom("fixed")
    assert fixes.probe(WECOM, buggy) == "buggy" and fixes.probe(WECOM, fixed) == "fixed"
    assert fixes.probe(QQ, buggy) == "unknown"  # no _reconnect: not the QQ shape
    opener = buggy._open_connection
    assert fixes.apply(WECOM, types.SimpleNamespace(WeComAdapter=buggy)).startswith("applied")
    assert buggy._open_connection is opener and getattr(buggy, fixes.MARKER_ATTR) == WECOM.patch_id
    a = buggy()
    a._running, a._ws = True, Socket(closed=True)
    with pytest.raises(RuntimeError, match="WeCom websocket closed"):
        asyncio.run(a._read_events())
    assert fixes.apply(WECOM, types.SimpleNamespace(WeComAdapter=fixed)).startswith("not needed")
