"""The event-loop heartbeat of Hermes 0.19.0 and later: ``HERMES_HOME/state/gateway.heartbeat``.

In 0.19.0 a task on the gateway's event loop rewrites it every 30 s (JSON ``pid``, ``updated_at`` ISO UTC,
``monotonic``, ``start_time``). A frozen or starved loop stops refreshing it, so a stale heartbeat while
the gateway's PID lives is a signal independent of CPU and of the state file. Since upstream #92315 the
write runs off the loop and the payload says so (``loop_tick_socket``, ``loop_tick_tcp_port``, ``mem``):
such a beat proves the process runs, not that its loop turns. The payload's keys are kept so the release
family (judge/families.py) can tell the two writers apart. Older versions have no such file: then there is
nothing to say (``read`` returns None and nobody mentions it).

``parse`` and ``assess`` are pure; ``read`` adds the file I/O.
"""

from __future__ import annotations

from pathlib import Path

from hermes_watchdog.facts.readings import DEFAULT_STALE_AFTER, Heartbeat, HeartbeatSeen
from hermes_watchdog.observe.statefile import as_finite, as_pid, parse_json_object, read_bytes
from hermes_watchdog.timefmt import parse_iso

HEARTBEAT_FILE = Path("state") / "gateway.heartbeat"


def parse(path: str, raw: bytes | None) -> Heartbeat | None:
    """None when the file does not exist (a Hermes without heartbeats)."""
    read = parse_json_object(path, raw)
    if read.status == "missing":
        return None
    if not read.ok or read.data is None:
        return Heartbeat(path, problem=f"{read.status}: {read.problem}")
    pid = read.data.get("pid")
    pid = as_pid(pid) if isinstance(pid, int) else None  # a number, as Hermes writes it; not digits in a string
    updated = parse_iso(read.data.get("updated_at"))
    if updated is None:
        return Heartbeat(path, pid, problem="no usable updated_at")
    start = read.data.get("start_time")
    start = as_finite(start) if isinstance(start, int | float) and not isinstance(start, bool) else None
    flag, port, mem = read.data.get("loop_tick_socket"), read.data.get("loop_tick_tcp_port"), read.data.get("mem")
    return Heartbeat(path, pid, updated, start_time=start, keys=frozenset(str(k) for k in list(read.data)[:64]),
                     loop_tick_socket=flag if isinstance(flag, bool) else None,
                     loop_tick_tcp_port=port if _is_int(port) and 0 < port < 65536 else None,
                     mem={str(k): v for k, v in list(mem.items())[:16] if _is_int(v)} if isinstance(mem, dict)
                     else None)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def read(home: Path) -> Heartbeat | None:
    path = home / HEARTBEAT_FILE
    raw, error = read_bytes(path)
    if error:
        return Heartbeat(str(path), problem=f"cannot read: {error}")
    return parse(str(path), raw)


# Hermes 0.19.0 stamps start_time with time.time() when its GatewayRunner is built, seconds after the
# process started (imports). An earlier process that had this PID started before this one did, so its
# start_time is earlier than our create time: that tells them apart, within clock-rounding slack.
START_SLACK = 2.0


def assess(beat: Heartbeat | None, gateway_pid: int, now: float, stale_after: float = DEFAULT_STALE_AFTER,
           create_time: float | None = None) -> tuple[HeartbeatSeen | None, str | None]:
    """(judged heartbeat, note). Only a heartbeat written by this very process counts, matched by PID
    AND start time: one left by an earlier gateway (even one whose PID was reused) says nothing about
    this one. ``create_time``: the gateway's start, epoch seconds (None: match by PID alone)."""
    if beat is None:
        return None, None
    if beat.problem:
        return None, f"heartbeat file {beat.path} not usable ({beat.problem})"
    if beat.pid != gateway_pid:
        return None, f"heartbeat file was written by PID {beat.pid}, not by the gateway PID {gateway_pid}; ignored"
    if create_time is not None:
        if beat.start_time is None:
            return None, "heartbeat file has no start_time to match against the gateway; ignored"
        if beat.start_time < create_time - START_SLACK:
            return None, (f"heartbeat file was written by an earlier process with PID {gateway_pid} (start time "
                          f"{beat.start_time:.0f}, not {create_time:.0f}); ignored")
    assert beat.updated_at is not None
    return HeartbeatSeen(max(0.0, now - beat.updated_at), stale_after, beat.keys, beat.off_loop), None
