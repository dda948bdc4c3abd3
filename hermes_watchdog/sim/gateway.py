"""A simulated Hermes gateway with the control flow of hermes-agent 0.14.0's QQBot adapter.

Standard library only. It writes ``gateway.pid``, ``gateway.lock`` (held with flock) and
``gateway_state.json`` in the real formats, runs an asyncio loop, and handles SIGTERM with
``loop.add_signal_handler``, so, like the real gateway, it ignores SIGTERM while the loop spins.

Modes:
  healthy            connected, idle
  spin               connected, then after --spin-after seconds the socket closes (4009), the reconnect
                     fails, and ``_listen_loop`` re-enters ``_read_events`` on the closed socket forever
  busy               connected, with a worker thread burning one core (legitimate work)
  idle-disconnected  the socket closes and every reconnect fails, but with backoff (no spin), as on a
                     fixed Hermes with the network down
  frozen             connected, then after --spin-after seconds a blocking call freezes the event loop
                     (CPU idle; SIGTERM ignored): a deadlock, seen through the stack and the heartbeat
  spin-connected     every platform stays connected; after --spin-after seconds a coroutine with a name
                     no rule knows (``_reconcile_presence``) spins on the loop thread without ever yielding
  bursty             legitimate: a coroutine (``_compact_history``) keeps the loop busy --busy-for seconds
                     (4), then lets it idle in its selector --idle-for seconds (0.5), again and again
  blocking           like frozen, in a function no rule knows (``_settle_accounts`` -> ``_flush_ledger_sync``)
  sliced             legitimate: a coroutine (``_render_digest``) computes --slice-ms ms, then
                     ``await asyncio.sleep(0)``, forever; every platform stays connected

Options that combine with any mode:
  --heartbeat-fail-after S  heartbeat writes fail (as on a full disk) after S seconds; the loop keeps turning
  --grow-mb-per-s N         the loop allocates N MiB a second and keeps it (a leak)
  --nofile, --leak-fds-per-s, --half-close, --hold-connections, --connection-bursts: sim/deaf_modes.py
  --loop-tick               serve ``state/gateway.loop-tick.<pid>.sock`` from the loop, as git releases
                            0.19.1+ do: one byte ``1`` per connection (silent once the loop is stuck)
  --upstream-exit-after S   after S seconds, exit 75 the way Hermes' own loop watchdog does (git 0.19.1+):
                            ``degraded``, ``exit_reason``, ``restart_requested``, the lifecycle ledger
  --signal-log PATH         append the name of every SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2
                            that arrives, one a line, even while the loop spins or is frozen (tests prove
                            with it that no signal came; these signals then no longer end the process)
  --hook                    arm the fix pack's hook (patches/hook.py) in the sim, as its .pth arms it in a
                            gateway: the stack thread (patches/stack_thread.py) and the loop-turn counter

--heartbeat-period S writes ``state/gateway.heartbeat`` from the event loop every S seconds, as
Hermes 0.19.0 and later do every 30 s (``pid``, ``updated_at``, ``monotonic``, ``start_time``).

--release 0.14|0.19.0|0.20|0.22 writes what that release family writes (sim/releases.py): heartbeat writer,
period and payload, tick socket, lifecycle ledger, gateway-starts.log, SIGUSR2 registration. It only sets
defaults (explicit options win); --heartbeat-writer loop|thread|to-thread says who writes the heartbeat.

Log lines carry fake secrets (PLANTED_SECRETS) so tests can prove reports redact them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from hermes_watchdog.sim import deaf_modes, releases, systemd_notify
from hermes_watchdog.sim.gateway_files import StateFile, write_pid_file
from hermes_watchdog.sim.loop_modes import (
    _burn,
    _compact_history,
    _freeze_later,
    _heartbeat,
    _leak,
    _reconcile_presence,
    _render_digest,
    _serve_loop_tick,
    _settle_accounts,
    arm_hook,
    record_event,
    upstream_exit_later,
)
from hermes_watchdog.sim.process import record_signals, serve_home_in_environment

# Fake credentials in every shape the redactor knows. None of them is real.
PLANTED_SECRETS = (
    "simQQclientSecret9f8e7d6c",  # QQ_CLIENT_SECRET value
    "simAccessTokenQ1w2e3r4t5y6",  # QQ access token (Authorization: QQBot ...)
    "sk-simOpenAIkey0123456789abcdefXYZ",  # OpenAI-style API key
    "123456789:AAHsimTelegramBotTokenValue0123456789",  # Telegram bot token
    "xoxb-1234567890-simslacktoken",  # Slack bot token
    "ghp_simGithubToken0123456789abcdefABCD",  # GitHub token
    "AIzaSimGoogleKey0123456789abcdefghijklmno",  # Google API key
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzaW0ifQ.c2ltLWp3dC1zaWduYXR1cmU",  # JWT
    "simDbPassw0rdValue",  # DB_PASSWORD value
    "simWebhookSigningKey42",  # WEBHOOK_SIGNING_KEY value
)
(QQ_SECRET, QQ_TOKEN, OPENAI_KEY, TELEGRAM, SLACK, GITHUB, GOOGLE, JWT, DB_PASSWORD, SIGNING_KEY) = PLANTED_SECRETS

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


def _write_secret_files(home: Path) -> None:
    env = home / ".env"
    if not env.exists():
        env.write_text(f"QQ_APP_ID=102030\nQQ_CLIENT_SECRET={QQ_SECRET}\nOPENAI_API_KEY={OPENAI_KEY}\n"
                       f"TELEGRAM_BOT_TOKEN={TELEGRAM}\nDB_PASSWORD={DB_PASSWORD}\n")
        env.chmod(0o600)
    cfg = home / "config.yaml"
    if not cfg.exists():
        cfg.write_text(f"platforms:\n  qqbot:\n    client_secret: {QQ_SECRET}\n  slack:\n    token: {SLACK}\n")


def _setup_logging(home: Path) -> None:
    (home / "logs").mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(home / "logs" / "gateway.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


async def _run(args: argparse.Namespace) -> int:
    home: Path = args.hermes_home
    await releases.boot(home, args.shape)
    state = StateFile(home)
    state.write(gateway_state="starting")
    adapter = QQAdapter(state, args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Like Hermes: handled on the loop, so a starved loop never runs them.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.signal_log:
        record_signals(Path(args.signal_log))
    logging.getLogger("gateway.run").info(
        "Starting gateway (simulated) pid=%d mode=%s; env OPENAI_API_KEY=%s TELEGRAM_BOT_TOKEN=%s "
        "GITHUB_TOKEN=%s GOOGLE_API_KEY=%s WEBHOOK_SIGNING_KEY=%s", os.getpid(), args.mode, OPENAI_KEY,
        TELEGRAM, GITHUB, GOOGLE, SIGNING_KEY)
    logging.getLogger("gateway.platforms.slack").info("auth.test ok token=%s jwt=%s", SLACK, JWT)
    logging.getLogger("hermes_state").info("session store postgresql://hermes:%s@127.0.0.1/hermes", DB_PASSWORD)
    await adapter.connect()
    for name in args.extra_platforms:
        state.write(platform=name, platform_state="connected")
    state.write(gateway_state="running")
    record_event(home, "running")
    burner_stop = threading.Event()
    if args.mode == "busy":
        threading.Thread(target=_burn, args=(burner_stop,), name="agent-worker", daemon=True).start()
    tasks = [asyncio.create_task(adapter._listen_loop()), asyncio.create_task(adapter.fake_server())]
    if args.heartbeat_period and args.heartbeat_writer == "loop":
        tasks.append(asyncio.create_task(_heartbeat(home, args.heartbeat_period, args.heartbeat_fail_after)))
    if args.mode == "frozen":
        tasks.append(asyncio.create_task(_freeze_later(home, args.spin_after, args.spin_once_marker)))
    if args.mode == "spin-connected":
        tasks.append(asyncio.create_task(_reconcile_presence(home, args.spin_after, args.spin_once_marker)))
    if args.mode == "bursty":
        tasks.append(asyncio.create_task(_compact_history(args.busy_for, args.idle_for)))
    if args.mode == "sliced":
        tasks.append(asyncio.create_task(_render_digest(args.slice_ms)))
    if args.mode == "blocking":
        tasks.append(asyncio.create_task(_settle_accounts(home, args.spin_after, args.spin_once_marker)))
    if args.grow_mb_per_s:
        tasks.append(asyncio.create_task(_leak(args.grow_mb_per_s)))
    tasks.extend(deaf_modes.start(args, home))  # descriptors, sockets: sim/deaf_modes.py
    server = await _serve_loop_tick(home) if args.loop_tick else None
    beat = releases.start_off_loop(home, args, tasks, server is not None)
    if args.release not in (None, "0.14"):  # 0.19.0 and later ping systemd's watchdog from the loop
        tasks.append(asyncio.create_task(systemd_notify.watchdog_pings()))
    if args.upstream_exit_after is not None:
        upstream_exit_later(home, state, args.upstream_exit_after, args.spin_once_marker)
    await stop.wait()
    logging.getLogger("gateway.run").info("SIGTERM received: stopping gateway")
    burner_stop.set()
    if beat is not None:
        beat.stop.set()
    if server is not None:
        server.close()
        releases.stop_tick_socket(home)
    adapter._running = False
    for t in tasks:
        t.cancel()
    with contextlib.suppress(BaseException):
        await asyncio.gather(*tasks, return_exceptions=True)
    if args.release != "0.19.0":  # 0.19.0 leaves "running" behind on SIGTERM on purpose (HERMES.md)
        state.write(gateway_state="stopped", exit_reason="signal")
    if args.shape is not None and args.shape.lifecycle:
        releases.mark_exited(home, 0)
    return 0


def main(argv: list[str] | None = None, reexec_with_home: bool = False) -> int:
    p = argparse.ArgumentParser(prog="python -m hermes_watchdog.sim.gateway", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hermes-home", type=Path, help="default: $HERMES_HOME, else ~/.hermes (as Hermes)")
    p.add_argument("--mode", choices=("healthy", "spin", "busy", "idle-disconnected", "frozen", "spin-connected",
                                      "bursty", "blocking", "sliced"), default="healthy")
    p.add_argument("--slice-ms", type=float, default=20.0, help="sliced: ms of work between two yields")
    p.add_argument("--hook", action="store_true", help="arm the fix pack's hook (stacks, loop-turn counter)")
    p.add_argument("--busy-for", type=float, default=4.0, help="bursty: seconds of work on the loop")
    p.add_argument("--idle-for", type=float, default=0.5, help="bursty: seconds idle in the selector")
    p.add_argument("--heartbeat-fail-after", type=float, default=None, help="heartbeat writes fail after S s")
    p.add_argument("--grow-mb-per-s", type=float, default=0.0, help="leak this many MiB a second")
    p.add_argument("--loop-tick", action="store_true", help="serve the loop-tick socket (git 0.19.1+)")
    p.add_argument("--spin-after", type=float, default=2.0, help="seconds before the socket closes")
    p.add_argument("--spin-once-marker", help="spin (or freeze) only if this file is absent; create it then")
    p.add_argument("--backoff-scale", type=float, default=0.1, help="scale of the 2/5/10/30/60 s backoff")
    p.add_argument("--heartbeat-period", type=float, default=0.0, help="write state/gateway.heartbeat (0: no)")
    p.add_argument("--upstream-exit-after", type=float, default=None,
                   help="exit 75 after S s as Hermes' own loop watchdog (0.19.1+); once with a marker")
    p.add_argument("--extra-platforms", type=lambda s: [x for x in s.split(",") if x], default=[])
    p.add_argument("--signal-log", help="append the name of each signal received to this file")
    p.add_argument("--keep-environment", action="store_true",
                   help="do not put --hermes-home into HERMES_HOME (as a `hermes --profile X` gateway started "
                        "without it shows: found by its files only)")
    releases.add_options(p)  # --release, --heartbeat-writer
    deaf_modes.add_arguments(p)
    # Unknown arguments are ignored: tests plant secrets in the command line.
    args, _unknown = p.parse_known_args(argv)
    args.shape = releases.apply(args)
    deaf_modes.apply_limits(args)
    if args.hermes_home is None:
        env_home = os.environ.get("HERMES_HOME")
        args.hermes_home = Path(env_home).expanduser() if env_home else Path.home() / ".hermes"
    elif reexec_with_home and not args.keep_environment:
        serve_home_in_environment(args.hermes_home)
    once = {"spin", "frozen", "spin-connected", "blocking"}
    if args.spin_once_marker and Path(args.spin_once_marker).exists():
        if args.mode in once:
            args.mode = "healthy"
        args.upstream_exit_after = None
    home: Path = args.hermes_home
    home.mkdir(parents=True, exist_ok=True)
    _setup_logging(home)
    if args.hook:
        logging.getLogger("hermes_watchdog.hook").info("hook: %s", arm_hook(home))
    _write_secret_files(home)
    lock = open(home / "gateway.lock", "a+")  # noqa: SIM115 - held for the whole life, as Hermes does
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print("another gateway holds gateway.lock", file=sys.stderr)
        return 1
    pid_path = write_pid_file(home)
    try:
        return asyncio.run(_run(args))
    finally:
        with contextlib.suppress(OSError):
            if json.loads(pid_path.read_text()).get("pid") == os.getpid():
                pid_path.unlink()


if __name__ == "__main__":
    sys.exit(main(reexec_with_home=True))
