"""Runs the real hermes-agent QQAdapter (imported from the installed package, never copied) against the
loopback fake server, the way the gateway runs it: one asyncio loop, SIGTERM handled with
loop.add_signal_handler (so a starved loop ignores it, as in the gateway).

    python <dir>/hermes-gateway PORT     (a symlink to this file; HERMES_HOME must point at a scratch folder)

The tests run it through a symlink named ``hermes-gateway`` so that, like the real gateway, it looks like
one by its program name: the watchdog never takes a process for a gateway on what its files say.

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
os.environ.setdefault("QQ_APP_ID", "102030")
os.environ.setdefault("QQ_CLIENT_SECRET", "fake-client-secret-for-tests")
home = os.environ["HERMES_HOME"]
os.makedirs(os.path.join(home, "logs"), exist_ok=True)
logging.basicConfig(filename=os.path.join(home, "logs", "gateway.log"), level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")

import gateway.platforms.qqbot.adapter as qq_adapter  # noqa: E402
from gateway.config import PlatformConfig  # noqa: E402
from gateway.status import write_pid_file, write_runtime_status  # noqa: E402

logging.getLogger("harness").info("QQAdapter patch marker: %s",
                                  getattr(qq_adapter.QQAdapter, "_hermes_watchdog_patched", None))

port = int(sys.argv[1])
qq_adapter.TOKEN_URL = f"http://127.0.0.1:{port}/app/getAppAccessToken"
qq_adapter.API_BASE = f"http://127.0.0.1:{port}"


async def main() -> int:
    # As the gateway runner does: its pid file, then "running" once the adapters are connected.
    write_pid_file()
    write_runtime_status(gateway_state="starting")
    adapter = qq_adapter.QQAdapter(PlatformConfig(enabled=True, extra={}))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ok = await adapter.connect()
    logging.getLogger("harness").info("connect() returned %s", ok)
    write_runtime_status(gateway_state="running")
    await stop.wait()
    logging.getLogger("harness").info("SIGTERM handled: disconnecting")
    await adapter.disconnect()
    return 0


sys.exit(asyncio.run(main()))
