"""The simulated QQBot adapter: hermes-agent 0.14.0's control flow, rewritten from its described behaviour (not
Hermes' code), with the fake QQ side it talks to. In mode ``spin`` its listener spins after the server's 4009
close, as the real one did (upstream #17703)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from pathlib import Path

from hermes_watchdog.sim.gateway_files import StateFile
from hermes_watchdog.sim.loop_modes import record_event
from hermes_watchdog.sim.planted import QQ_SECRET, QQ_TOKEN

RECONNECT_BACKOFF = (2, 5, 10, 30, 60)  # seconds, as the real adapter; scaled by --backoff-scale
logger = logging.getLogger("gateway.platforms.qqbot")


class QQCloseError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"code={code} reason={reason}")
        self.code, self.reason = code, reason


class FakeWebSocket:
    """Stands in for aiohttp's ClientWebSocketResponse: ``closed`` turns true once the close frame
    has been received, and stays true."""

    TEXT, CLOSE = "text", "close"

    def __init__(self) -> None:
        self.closed = False
        self._inbox: asyncio.Queue[tuple[str, object]] = asyncio.Queue()

    async def receive(self) -> tuple[str, object]:
        kind, data = await self._inbox.get()
        if kind == self.CLOSE:
            self.closed = True
        return kind, data

    def server_sends(self, payload: dict) -> None:
        self._inbox.put_nowait((self.TEXT, payload))

    def server_closes(self, code: int) -> None:
        self._inbox.put_nowait((self.CLOSE, code))


class QQAdapter:
    """The 0.14.0 control flow, rewritten from its described behaviour (not Hermes' code)."""

    def __init__(self, state: StateFile, args: argparse.Namespace) -> None:
        self.state, self.args = state, args
        self._running = False
        self._ws: FakeWebSocket | None = None
        self._seq = 0
        self._reconnects_fail = False
        self._spinning = False

    async def connect(self) -> None:
        self.state.write(platform="qqbot", platform_state="connecting")
        await self._ensure_token()
        self._ws = FakeWebSocket()
        self._running = True
        logger.info("[QQBot] WebSocket connected to wss://api.sgroup.qq.com/websocket")
        self.state.write(platform="qqbot", platform_state="connected")

    async def _ensure_token(self) -> None:
        logger.info("[QQBot] POST https://bots.qq.com/app/getAppAccessToken appId=102030 "
                    "clientSecret=%s", QQ_SECRET)
        logger.info("[QQBot] token ok: {\"access_token\": \"%s\", \"expires_in\": 7200}", QQ_TOKEN)
        logger.debug("[QQBot] headers {'Authorization': 'QQBot %s'}", QQ_TOKEN)

    async def _listen_loop(self) -> None:
        backoff_idx = 0
        while self._running:
            try:
                await self._read_events()
                backoff_idx = 0  # a normal return is taken for a healthy session: no backoff, no await
            except asyncio.CancelledError:
                return
            except QQCloseError as exc:
                logger.warning("[QQBot] WebSocket closed: code=%s reason=%s", exc.code, exc.reason)
                self.state.write(platform="qqbot", platform_state="disconnected")
                if await self._reconnect(backoff_idx):
                    backoff_idx = 0
                else:
                    backoff_idx += 1
            except Exception as exc:
                logger.warning("[QQBot] WebSocket error: %s", exc)
                self.state.write(platform="qqbot", platform_state="disconnected")
                if await self._reconnect(backoff_idx):
                    backoff_idx = 0
                else:
                    backoff_idx += 1

    async def _reconnect(self, backoff_idx: int) -> bool:
        delay = RECONNECT_BACKOFF[min(backoff_idx, len(RECONNECT_BACKOFF) - 1)] * self.args.backoff_scale
        logger.info("[QQBot] Reconnecting in %.1fs (attempt %d)...", delay, backoff_idx + 1)
        await asyncio.sleep(delay)
        try:
            await self._ensure_token()
            raise OSError("GET https://api.sgroup.qq.com/gateway -> 503 Service Unavailable")
        except Exception as exc:
            logger.warning("[QQBot] Reconnect failed: %s", exc)
            if self.args.mode == "spin" and not self._spinning:
                self._spinning = True
                record_event(self.args.hermes_home, "spin")
                if self.args.spin_once_marker:
                    Path(self.args.spin_once_marker).touch()
            return False

    async def _read_events(self) -> None:
        if not self._ws:
            raise RuntimeError("WebSocket not connected")
        if self.args.mode == "idle-disconnected" and self._ws.closed:
            raise RuntimeError("WebSocket closed")  # the fixed behaviour: back off instead of spinning
        while self._running and self._ws and not self._ws.closed:
            kind, data = await self._ws.receive()
            if kind == FakeWebSocket.TEXT:
                self._seq += 1
                if self._seq % 10 == 0:
                    logger.info("[QQBot] dispatch seq=%d %s", self._seq, data)
            elif kind == FakeWebSocket.CLOSE:
                raise QQCloseError(int(data), "Session timed out")  # type: ignore[call-overload]

    async def fake_server(self) -> None:
        """The QQ side: heartbeats, then (spin / idle-disconnected) a 4009 close and a dead /gateway."""
        started = time.monotonic()
        while self._running:
            await asyncio.sleep(0.5)
            if self._ws is None or self._ws.closed:
                continue
            self._ws.server_sends({"op": 11, "d": self._seq})
            if self.args.mode in {"spin", "idle-disconnected"} and time.monotonic() - started >= self.args.spin_after:
                self._ws.server_closes(4009)
