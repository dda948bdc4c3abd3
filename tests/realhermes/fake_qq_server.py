"""A loopback fake of the QQ Bot open platform, run with the Hermes test venv's Python (aiohttp).

POST /app/getAppAccessToken -> a token; GET /gateway -> the ws URL; /ws sends Hello, answers Identify with
READY, then closes with 4009 (session timed out). From that close on, GET /gateway answers 503, so the
adapter's reconnect fails before it opens a socket: the trigger of the 0.14.0 busy loop.
Prints "PORT <n>" once listening on 127.0.0.1. Counts requests in /stats.
"""

import asyncio
import json
import sys

from aiohttp import WSCloseCode, web  # noqa: F401

state = {"gateway_ok": True, "gateway_calls": 0, "token_calls": 0, "ws_opens": 0, "close_after": 0.5}


async def token(request: web.Request) -> web.Response:
    state["token_calls"] += 1
    return web.json_response({"access_token": "fake-access-token-0123", "expires_in": 7200})


async def gateway(request: web.Request) -> web.Response:
    state["gateway_calls"] += 1
    if not state["gateway_ok"]:
        return web.json_response({"message": "service unavailable"}, status=503)
    port = request.app["port"]
    return web.json_response({"url": f"ws://127.0.0.1:{port}/ws"})


async def ws(request: web.Request) -> web.WebSocketResponse:
    state["ws_opens"] += 1
    sock = web.WebSocketResponse(autoping=True)
    await sock.prepare(request)
    await sock.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 45000}}))
    async for msg in sock:
        data = json.loads(msg.data)
        if data.get("op") == 2:  # Identify
            await sock.send_str(json.dumps({"op": 0, "t": "READY", "s": 1, "d": {"session_id": "fake-session"}}))
            await asyncio.sleep(state["close_after"])
            state["gateway_ok"] = False  # the reconnect's GET /gateway will now fail
            await sock.close(code=4009, message=b"Session timed out")
            break
    return sock


async def stats(request: web.Request) -> web.Response:
    return web.json_response(state)


async def main() -> None:
    app = web.Application()
    app.router.add_post("/app/getAppAccessToken", token)
    app.router.add_get("/gateway", gateway)
    app.router.add_get("/ws", ws)
    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    app["port"] = port
    print(f"PORT {port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
