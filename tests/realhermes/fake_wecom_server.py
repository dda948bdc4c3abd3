"""A loopback fake of the WeCom AI Bot WebSocket gateway, run with the Hermes test venv's Python (aiohttp).

The first connection is served: the subscribe is acknowledged (errcode 0), then the server closes the socket
after ``close_after`` seconds, as WeCom does when it drops a long connection. Every later connection is
accepted and closed at once, before the subscribe is answered: the adapter's reconnect fails during
authentication with the closed socket left in ``_ws`` (the trigger of #49918 / #55487).
Prints "PORT <n>" once listening on 127.0.0.1. Counts connections in /stats.
"""

import asyncio
import json
import sys

from aiohttp import web

state = {"opens": 0, "close_after": 0.5}


async def ws(request: web.Request) -> web.WebSocketResponse:
    state["opens"] += 1
    first = state["opens"] == 1
    sock = web.WebSocketResponse(autoping=True)
    await sock.prepare(request)
    if not first:
        await sock.close(code=1001, message=b"going away")
        return sock
    async for msg in sock:
        data = json.loads(msg.data)
        if data.get("cmd") == "aibot_subscribe":
            await sock.send_str(json.dumps({"headers": {"req_id": data["headers"]["req_id"]}, "errcode": 0,
                                            "errmsg": "ok"}))
            await asyncio.sleep(state["close_after"])
            await sock.close(code=1001, message=b"going away")
            break
    return sock


async def stats(request: web.Request) -> web.Response:
    return web.json_response(state)


async def main() -> None:
    app = web.Application()
    app.router.add_get("/ws", ws)
    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"PORT {site._server.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
