"""A loopback fake of the QQ Bot open platform, run with the Hermes test venv's Python (aiohttp).

    python fake_qq_server.py [--hold]

POST /app/getAppAccessToken -> a token; GET /gateway -> the ws URL; /ws sends Hello and answers Identify
with READY (and heartbeats, op 1, with ACKs, op 11).

Default: 0.5 s after READY the socket closes with 4009 (session timed out), and from then on GET /gateway
answers 503, so the adapter's reconnect fails before it opens a socket: the trigger of the 0.14.0 busy loop.
--hold: sockets stay open (a healthy gateway stays connected) until the test POSTs /control/close, which
closes every open socket that way and makes GET /gateway fail; POST /control/heal makes it answer again
(a relaunched gateway can then connect).
Prints "PORT <n>" once listening on 127.0.0.1. Counts requests in /stats.
"""

import asyncio
import json
import sys

from aiohttp import WSCloseCode, web  # noqa: F401

state = {"gateway_ok": True, "gateway_calls": 0, "token_calls": 0, "ws_opens": 0, "ws_open_now": 0,
         "identifies": 0, "heartbeats": 0, "closes": 0,
         "close_after": None if "--hold" in sys.argv else 0.5}
sockets: set = set()
PORT: list[int] = []


async def token(request: web.Request) -> web.Response:
    state["token_calls"] += 1
    return web.json_response({"access_token": "fake-access-token-0123", "expires_in": 7200})


async def gateway(request: web.Request) -> web.Response:
    state["gateway_calls"] += 1
    if not state["gateway_ok"]:
        return web.json_response({"message": "service unavailable"}, status=503)
    port = PORT[0]
    return web.json_response({"url": f"ws://127.0.0.1:{port}/ws"})


async def close_all() -> None:
    state["gateway_ok"] = False  # the reconnect's GET /gateway will now fail
    for sock in list(sockets):
        state["closes"] += 1
        await sock.close(code=4009, message=b"Session timed out")


async def ws(request: web.Request) -> web.WebSocketResponse:
    state["ws_opens"] += 1
    sock = web.WebSocketResponse(autoping=True)
    await sock.prepare(request)
    sockets.add(sock)
    state["ws_open_now"] = len(sockets)
    try:
        await sock.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 45000}}))
        async for msg in sock:
            data = json.loads(msg.data)
            if data.get("op") == 1:  # heartbeat
                state["heartbeats"] += 1
                await sock.send_str(json.dumps({"op": 11}))
            elif data.get("op") in (2, 6):  # Identify, Resume
                state["identifies"] += 1
                await sock.send_str(json.dumps({"op": 0, "t": "READY", "s": 1,
                                                "d": {"session_id": "fake-session", "user": {"id": "fake-bot"}}}))
                if state["close_after"] is not None:
                    await asyncio.sleep(state["close_after"])
                    await close_all()
                    break
    finally:
        sockets.discard(sock)
        state["ws_open_now"] = len(sockets)
    return sock


async def control_close(request: web.Request) -> web.Response:
    await close_all()
    return web.json_response(state)


async def control_heal(request: web.Request) -> web.Response:
    state["gateway_ok"] = True
    return web.json_response(state)


async def stats(request: web.Request) -> web.Response:
    return web.json_response(state)


async def main() -> None:
    app = web.Application()
    app.router.add_post("/app/getAppAccessToken", token)
    app.router.add_get("/gateway", gateway)
    app.router.add_get("/ws", ws)
    app.router.add_get("/stats", stats)
    app.router.add_post("/control/close", control_close)
    app.router.add_post("/control/heal", control_heal)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    PORT.append(port)
    print(f"PORT {port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
