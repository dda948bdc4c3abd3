"""Runs the real hermes-agent WeComAdapter (imported from the installed package, never copied) against the
loopback fake WeCom server, on one asyncio loop with SIGTERM handled by loop.add_signal_handler, as the
gateway runs it.

    python wecom_harness.py PORT     (HERMES_HOME must point at a scratch folder)

Logs go to HERMES_HOME/logs/gateway.log. Only 127.0.0.1 is contacted.
"""

import asyncio
import logging
import os
import signal
import sys

for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "WSS_PROXY", "http_proxy", "https_proxy", "all_proxy",
              "wss_proxy"):
    os.environ.pop(proxy, None)
os.environ["WECOM_BOT_ID"] = "fake-bot-id"
os.environ["WECOM_SECRET"] = "fake-wecom-secret-for-tests"
os.environ["WECOM_WEBSOCKET_URL"] = f"ws://127.0.0.1:{int(sys.argv[1])}/ws"
home = os.environ["HERMES_HOME"]
os.makedirs(os.path.join(home, "logs"), exist_ok=True)
logging.basicConfig(filename=os.path.join(home, "logs", "gateway.log"), level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")

import plugins.platforms.wecom.adapter as wecom_adapter  # noqa: E402
from gateway.config import PlatformConfig  # noqa: E402

logging.getLogger("harness").info("WeComAdapter patch marker: %s",
                                  getattr(wecom_adapter.WeComAdapter, "_hermes_watchdog_patched", None))


async def main() -> int:
    adapter = wecom_adapter.WeComAdapter(PlatformConfig(enabled=True, extra={}))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ok = await adapter.connect()
    logging.getLogger("harness").info("connect() returned %s", ok)
    await stop.wait()
    logging.getLogger("harness").info("SIGTERM handled: disconnecting")
    await adapter.disconnect()
    return 0


sys.exit(asyncio.run(main()))
