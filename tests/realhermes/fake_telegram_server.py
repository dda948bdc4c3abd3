"""A loopback fake of the Telegram Bot API, enough for the REAL Telegram adapter of Hermes (python-telegram-bot,
over httpx) to start, poll and report ``connected``: run as a script (any Python >= 3.11, standard library only),
it prints ``PORT <n>`` and serves until killed. Hermes reaches it through the adapter's own ``base_url``
(``platforms.telegram.extra.base_url`` in config.yaml, upstream's option for a self-hosted Bot API server).

Bot API (``/bot<token>/<method>``, HTTP/1.1 with keep-alive, as api.telegram.org):
- ``getMe``: a bot; ``getUpdates``: held for the request's ``timeout`` (at most 2 s here, so a poll completes
  often), then no updates; ``getMyCommands``: none; every other method: ``true``.

Control (``/control/<name>``, POST):
- ``drop-idle``: from now on the server closes its end (FIN) of every connection that is idle between two
  requests, as a proxy or server with a short keep-alive timeout does (upstream #69314, #82920: the
  Telegram adapter's general request pool then holds the sockets in CLOSE_WAIT); a long poll in progress is
  answered first, then its connection is closed the same way once idle.
- ``heal``: keep-alive connections are kept again.
- ``/stats`` (GET): requests served by method, connections accepted, closed by the server.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.parse
from typing import Any

MAX_POLL_SECONDS = 2.0
IDLE_CLOSE_SECONDS = 0.5  # how long a connection may sit idle once drop-idle is on

_stats: dict[str, Any] = {"methods": {}, "accepted": 0, "closed_by_server": 0, "drop_idle": False}
_drop_idle = asyncio.Event()


def _bot_api(method: str) -> Any:
    if method == "getMe":
        return {"id": 7000000001, "is_bot": True, "first_name": "Fake", "username": "fake_test_bot",
                "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}
    if method in ("getUpdates", "getMyCommands"):
        return []
    return True


def _params(content_type: str, body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    if "json" in content_type:
        try:
            got = json.loads(body)
            return got if isinstance(got, dict) else {}
        except ValueError:
            return {}
    if "x-www-form-urlencoded" in content_type:
        return {k: v[-1] for k, v in urllib.parse.parse_qs(body.decode(errors="replace")).items()}
    return {}  # multipart (files): never sent by an idle bot


def _response(status: int, payload: Any) -> bytes:
    body = json.dumps(payload).encode()
    reason = {200: "OK", 404: "Not Found"}.get(status, "OK")
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: keep-alive\r\n\r\n").encode() + body


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length") or 0)
    body = await reader.readexactly(n) if n else b""
    return method, target, headers, body


async def _serve_one(method: str, target: str, headers: dict[str, str], body: bytes) -> bytes:
    path = urllib.parse.urlsplit(target).path
    if path == "/stats":
        return _response(200, _stats)
    if path.startswith("/control/"):
        name = path.rsplit("/", 1)[1]
        if name == "drop-idle":
            _drop_idle.set()
        elif name == "heal":
            _drop_idle.clear()
        _stats["drop_idle"] = _drop_idle.is_set()
        return _response(200, {"ok": True, "control": name})
    parts = path.strip("/").split("/")
    if len(parts) != 2 or not parts[0].startswith("bot"):
        return _response(404, {"ok": False, "error_code": 404, "description": "Not Found"})
    api = parts[1]
    params = _params(headers.get("content-type", ""), body)
    methods = _stats["methods"]
    methods[api] = methods.get(api, 0) + 1
    if api == "getUpdates":
        try:
            wait = min(float(params.get("timeout") or 0), MAX_POLL_SECONDS)
        except ValueError:
            wait = 0.0
        await asyncio.sleep(wait)
    return _response(200, {"ok": True, "result": _bot_api(api)})


async def _connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    _stats["accepted"] += 1
    try:
        while True:
            read = asyncio.ensure_future(_read_request(reader))
            while not read.done():
                # Idle between requests: once drop-idle is on, close our end after a short keep-alive time.
                timeout = IDLE_CLOSE_SECONDS if _drop_idle.is_set() else 0.25
                done, _ = await asyncio.wait({read}, timeout=timeout)
                if not done and _drop_idle.is_set() and not reader._buffer:  # nothing half-read
                    read.cancel()
                    _stats["closed_by_server"] += 1
                    writer.close()  # FIN: the client's socket goes to CLOSE_WAIT until it reads or closes
                    return
            writer.write(await _serve_one(*read.result()))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
        pass
    finally:
        if not writer.is_closing():
            writer.close()


async def main() -> None:
    server = await asyncio.start_server(_connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
