"""What each Hermes release family writes about its own liveness, for the simulated gateway's ``--release``.

Standard library only. Each family's files are written the way that release writes them, read from upstream's
source through the search tool (NousResearch/hermes-agent; no upstream code is copied here):

- ``gateway-starts.log`` (0.19.0+): ``gateway/status.py`` ``record_start_and_check_storm`` (commit 00067189df):
  HERMES_HOME/gateway-starts.log, one epoch-seconds float a line, the newest 40 kept, rewritten through a temp
  file; more than 5 starts in 120 s -> a backoff of min(300, 5 * 2 ** min(n - 5, 6)) s before starting. The
  ledger is kept by every family from 0.19.0 on.
- The restart-loop breaker's ``gateway/restart_loop.json`` ``{"boots": [epoch, ...]}`` (``gateway/
  restart_loop_guard.py``, commit 223fa25c5a, found through the exits branch's citation): one boot recorded per
  boot with restart-interrupted sessions, the newest 50 kept; 0.19.0 keeps the boots of the last 60 s, later
  releases (#82574) the chain of boots whose gaps stay within 300 s; 3 trip it (auto-resume skipped). The sim
  has no sessions: a boot after a life that died while running (its state file still says so, its PID gone)
  stands for one.
- Heartbeat: 0.19.0 writes ``state/gateway.heartbeat`` from a task on the loop every 30 s (``{pid, updated_at,
  monotonic, start_time}``). After #92315 (``gateway/shutdown_watchdog.py`` ``write_loop_heartbeat`` /
  ``loop_heartbeat_forever``, commit 056590cb5b; ``DEFAULT_HEARTBEAT_INTERVAL_S = 30.0``) the payload adds
  ``mem`` (KiB: ``rss_kib``, ``mem_total_kib``, ``mem_available_kib``, ``swap_used_kib``), ``loop_tick_socket``
  and ``loop_tick_tcp_port``, and the write leaves the loop. That commit awaits the write on a worker thread
  from a loop task (``to-thread``: the file still ages on a frozen loop); some releases refreshed it from a
  thread while the loop was frozen (#107619): ``thread``, the default of the 0.20 and 0.22 shapes here, the
  shape that must never be taken for a loop witness.
- Loop-tick socket ``state/gateway.loop-tick.<pid>.sock``, served by the loop, one byte ``1`` a connection;
  sockets of dead PIDs swept at start (same file, ``_sweep_stale_tick_sockets``).
- Lifecycle ledger ``state/gateway.lifecycle.json`` (``gateway/lifecycle_ledger.py``, commit 00067189df): at
  boot ``{phase: running, pid, start_time (epoch, the claim), started_at, create_time}``, plus
  ``prior_unclean_exit`` and a ``gateway.previous_unclean_exit`` line in ``logs/gateway-exit-diag.log`` when the
  previous life's ledger still said running; on a clean exit ``{phase: exited, pid, exit_code, exit_reason,
  exited_at, start_time, create_time}``.
- SIGUSR2: ``faulthandler.register(SIGUSR2, file=<logs/gateway_faulthandler.log>, all_threads=True,
  chain=True)`` in gateway/run.py's ``_start_install_faulthandler`` up to #111435 (fatal after the dump, #84373),
  ``chain=False`` after (both versions read in the index). 0.14-0.19.0 register nothing: SIGUSR2 terminates.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import json
import logging
import os
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hermes_watchdog.sim.gateway_files import utc_now

log = logging.getLogger("gateway.run")


@dataclass(frozen=True)
class Shape:
    heartbeat_period: float  # 0: no heartbeat
    heartbeat_writer: str  # loop | thread | to-thread
    loop_tick: bool
    lifecycle: bool
    starts_log: bool
    sigusr2_chain: bool | None  # None: SIGUSR2 left alone (its default action terminates)
    boots_chain: bool | None = None  # restart-loop breaker: False 3 boots in 60 s, True chained gaps <= 300 s


# The families the simulator speaks (see judge/families.py for what the watchdog makes of each).
RELEASES = {
    "0.14": Shape(0.0, "loop", False, False, False, None),
    "0.19.0": Shape(30.0, "loop", False, False, True, None, False),
    "0.20": Shape(30.0, "thread", True, True, True, True, True),  # a 0.19.1-0.21.3 release after #92315
    "0.22": Shape(30.0, "thread", True, True, True, False, True),  # 0.21.4+ (#111435: chain=False)
}
WRITERS = ("loop", "thread", "to-thread")


def add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--release", choices=sorted(RELEASES), help="write the liveness files this release family "
                   "writes (heartbeat writer and payload, tick socket, lifecycle, starts log, SIGUSR2)")
    p.add_argument("--heartbeat-writer", choices=WRITERS, help="who writes the heartbeat (default: the release's)")
    p.set_defaults(heartbeat_period=None)  # None: the release's period (0 without a release)


def apply(args: argparse.Namespace) -> Shape | None:
    """The release's defaults for what the command line left unset; explicit options win."""
    shape = RELEASES.get(args.release) if args.release else None
    if args.heartbeat_period is None:
        args.heartbeat_period = shape.heartbeat_period if shape else 0.0
    if args.heartbeat_writer is None:
        args.heartbeat_writer = shape.heartbeat_writer if shape else "loop"
    if shape is not None and shape.loop_tick:
        args.loop_tick = True
    return shape


def _atomic_json(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # 0600, as Hermes' atomic writes
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def create_time() -> float | None:
    """This process's birth in epoch seconds (what psutil's create_time gives), from /proc."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        btime = next(int(ln.split()[1]) for ln in Path("/proc/stat").read_text().splitlines()
                     if ln.startswith("btime "))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def sample_memory() -> dict[str, int]:
    """The heartbeat's ``mem``: KiB from /proc (empty where there is none)."""
    def fields(path: str, wanted: dict[str, str]) -> dict[str, int]:
        out: dict[str, int] = {}
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(path).read_text().splitlines():
                key = line.split(":", 1)[0]
                if key in wanted:
                    out[wanted[key]] = int(line.split()[1])
        return out

    mem = fields("/proc/self/status", {"VmRSS": "rss_kib"})
    mem.update(fields("/proc/meminfo", {"MemTotal": "mem_total_kib", "MemAvailable": "mem_available_kib",
                                        "SwapTotal": "swap_total", "SwapFree": "swap_free"}))
    total, free = mem.pop("swap_total", None), mem.pop("swap_free", None)
    if total is not None and free is not None:
        mem["swap_used_kib"] = total - free
    return mem


# -- at boot

def record_start(home: Path) -> float | None:
    """Append this start to gateway-starts.log; the storm backoff in seconds, or None."""
    path = home / "gateway-starts.log"
    now = time.time()
    starts: list[float] = []
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                starts.append(float(line))
    starts.append(now)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"{t!r}\n" for t in starts[-40:]))
    os.replace(tmp, path)
    recent = [t for t in starts if now - t <= 120.0]
    return min(300.0, 5.0 * 2 ** min(len(recent) - 5, 6)) if len(recent) > 5 else None


def died_running(home: Path) -> bool:
    """The previous life ended while running: its state file (not yet rewritten by this one) names a dead PID."""
    try:
        st = json.loads((home / "gateway_state.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(st, dict) and st.get("gateway_state") in {"running", "degraded", "draining"} \
        and st.get("pid") != os.getpid() and not _alive(st.get("pid"))


def record_interrupted_boot(home: Path, chain: bool) -> list[float]:
    """Append this boot to gateway/restart_loop.json; the boots that still count (3 trip the breaker)."""
    path = home / "gateway" / "restart_loop.json"
    now = time.time()
    boots: list[float] = []
    with contextlib.suppress(OSError, ValueError, AttributeError):
        boots = sorted(float(t) for t in json.loads(path.read_text()).get("boots", [])
                       if isinstance(t, (int, float)) and t <= now)
    if chain:
        kept: list[float] = []
        for t in reversed(boots):  # newest first, while each gap to the next boot stays within 300 s
            if (kept[-1] if kept else now) - t > 300.0:
                break
            kept.append(t)
        boots = kept[::-1]
    else:
        boots = [t for t in boots if now - t <= 60.0]
    boots.append(now)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"boots": boots[-50:]}))
    if len(boots) >= 3:
        log.warning("Restart-loop breaker TRIPPED: %d restart-interrupted boots; skipping auto-resume", len(boots))
    return boots


def lifecycle_path(home: Path) -> Path:
    return home / "state" / "gateway.lifecycle.json"


def claim_lifecycle(home: Path) -> None:
    path = lifecycle_path(home)
    prior: dict = {}
    with contextlib.suppress(OSError, ValueError):
        prior = json.loads(path.read_text())
    claim = {"phase": "running", "pid": os.getpid(), "start_time": time.time(), "started_at": utc_now()}
    born = create_time()
    if born is not None:
        claim["create_time"] = born
    if isinstance(prior, dict) and prior.get("phase") == "running" and not _alive(prior.get("pid")):
        claim["prior_unclean_exit"] = True
        diag = home / "logs" / "gateway-exit-diag.log"
        diag.parent.mkdir(parents=True, exist_ok=True)
        with open(diag, "a") as fh:
            fh.write(json.dumps({"ts": utc_now(), "tag": "gateway.previous_unclean_exit", "pid": os.getpid(),
                                 "prior_pid": prior.get("pid"), "prior_started_at": prior.get("started_at")}) + "\n")
        log.warning("Previous gateway life (pid=%s) exited UNCLEANLY", prior.get("pid"))
    _atomic_json(path, claim)


def mark_exited(home: Path, exit_code: int | None, reason: str = "graceful_shutdown") -> None:
    """The ledger's clean-exit stamp, only over a ledger this process owns (as upstream)."""
    path = lifecycle_path(home)
    try:
        current = json.loads(path.read_text())
    except (OSError, ValueError):
        current = None
    if isinstance(current, dict) and current.get("pid") != os.getpid():
        return
    rec = {"phase": "exited", "pid": os.getpid(), "exit_code": exit_code, "exit_reason": reason,
           "exited_at": utc_now()}
    for key in ("start_time", "create_time"):
        if isinstance(current, dict) and current.get(key) is not None:
            rec[key] = current[key]
    _atomic_json(path, rec)


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def register_sigusr2(home: Path, chain: bool) -> None:
    """SIGUSR2 -> all-thread dump to logs/gateway_faulthandler.log; ``chain`` as the release passes it.
    Looked up on the module at call time, so a hook that wraps ``faulthandler.register`` sees the call."""
    (home / "logs").mkdir(parents=True, exist_ok=True)
    fh = open(home / "logs" / "gateway_faulthandler.log", "a")  # noqa: SIM115 - kept open for the dumps
    faulthandler.register(signal.SIGUSR2, file=fh, all_threads=True, chain=chain)


def sweep_tick_sockets(home: Path) -> None:
    for stale in (home / "state").glob("gateway.loop-tick.*.sock"):
        try:
            pid = int(stale.name.split(".")[-2])
        except (ValueError, IndexError):
            pid = -1
        if pid != os.getpid() and not _alive(pid):
            stale.unlink(missing_ok=True)


async def boot(home: Path, shape: Shape | None) -> None:
    """What the release does as it starts, before any platform connects."""
    if shape is None:
        return
    if shape.starts_log:
        backoff = record_start(home)
        if backoff is not None:
            log.warning("Respawn storm: more than 5 starts in 120 s; backing off %.0f s", backoff)
            await asyncio.sleep(backoff)
    if shape.boots_chain is not None and died_running(home):
        record_interrupted_boot(home, shape.boots_chain)
    if shape.lifecycle:
        claim_lifecycle(home)
    if shape.sigusr2_chain is not None:
        register_sigusr2(home, shape.sigusr2_chain)
    if shape.loop_tick:
        (home / "state").mkdir(parents=True, exist_ok=True)
        sweep_tick_sockets(home)


# -- the heartbeat of git releases (#92315); the 0.19.0 on-loop writer is loop_modes._heartbeat

def heartbeat_payload(started: float, tick: bool) -> dict:
    return {"pid": os.getpid(), "updated_at": utc_now(), "monotonic": time.monotonic(), "start_time": started,
            "mem": sample_memory(), "loop_tick_socket": tick, "loop_tick_tcp_port": None}


class OffLoopHeartbeat:
    """The heartbeat written off the loop, by a thread on its own clock (``thread``) or by a loop task that
    awaits the write on a worker thread (``to-thread``). Writes fail after ``fail_after`` s (a full disk)."""

    def __init__(self, home: Path, period: float, tick: bool, fail_after: float | None) -> None:
        self.path = home / "state" / "gateway.heartbeat"
        self.period, self.tick, self.fail_after = period, tick, fail_after
        self.started = time.time()
        self.stop = threading.Event()

    def write(self) -> None:
        try:
            if self.fail_after is not None and time.time() - self.started >= self.fail_after:
                raise OSError(28, "No space left on device")
            _atomic_json(self.path, heartbeat_payload(self.started, self.tick))
        except OSError as exc:
            logging.getLogger("gateway.shutdown_watchdog").debug("Failed to write gateway loop heartbeat: %s", exc)

    def run_thread(self) -> None:
        while not self.stop.is_set():
            self.write()
            self.stop.wait(self.period)

    def start_thread(self) -> None:
        threading.Thread(target=self.run_thread, name="gateway-heartbeat", daemon=True).start()

    async def run_task(self) -> None:
        while True:
            await asyncio.to_thread(self.write)
            await asyncio.sleep(self.period)


def stop_tick_socket(home: Path) -> None:
    (home / "state" / f"gateway.loop-tick.{os.getpid()}.sock").unlink(missing_ok=True)


def start_off_loop(home: Path, args: argparse.Namespace, tasks: list, tick: bool) -> OffLoopHeartbeat | None:
    """Start the off-loop heartbeat when the writer is ``thread`` or ``to-thread`` (after the tick socket is
    armed, so the payload's flag says what is served)."""
    if not args.heartbeat_period or args.heartbeat_writer == "loop":
        return None
    beat = OffLoopHeartbeat(home, args.heartbeat_period, tick, args.heartbeat_fail_after)
    if args.heartbeat_writer == "thread":
        beat.start_thread()
    else:
        tasks.append(asyncio.create_task(beat.run_task()))
    return beat
