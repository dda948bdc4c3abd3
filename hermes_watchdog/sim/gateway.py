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
  --stuck-agents, --agent-traffic, --hold-gil-after: sim/worker_modes.py
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
from pathlib import Path

from hermes_watchdog.sim import deaf_modes, releases, systemd_notify, worker_modes
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
from hermes_watchdog.sim.planted import (  # noqa: F401 - PLANTED_SECRETS: the demo and the tests check them
    DB_PASSWORD,
    GITHUB,
    GOOGLE,
    JWT,
    OPENAI_KEY,
    PLANTED_SECRETS,
    QQ_SECRET,
    SIGNING_KEY,
    SLACK,
    TELEGRAM,
)
from hermes_watchdog.sim.process import record_signals, serve_home_in_environment
from hermes_watchdog.sim.qqbot import QQAdapter


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
    tasks.extend(worker_modes.start(args, state))  # agent workers, a GIL held: sim/worker_modes.py
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
    worker_modes.add_arguments(p)
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
