"""The gateway's TCP sockets in CLOSE_WAIT. I/O only; judge/halfclosed.py decides.

psutil's ``net_connections(kind="tcp")`` reads the process's socket inodes from /proc/<pid>/fd and the
namespace's /proc/<pid>/net/tcp and tcp6: its cost grows with every TCP socket on the host, so the daemon
reads it every few ticks, not every tick (observe/deaf.py). macOS needs the same user (or root).
"""

from __future__ import annotations

from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class TcpSeen:
    close_wait: tuple[tuple[str, str], ...]  # (local, remote) "ip:port"
    established: int


def _addr(a: object) -> str:
    if not a:
        return "-"
    ip, port = a  # type: ignore[misc]
    return f"[{ip}]:{port}" if ":" in str(ip) else f"{ip}:{port}"


def read(pid: int) -> TcpSeen | None:
    """None when the sockets cannot be read (gone, not permitted)."""
    try:
        conns = psutil.Process(pid).net_connections(kind="tcp")
    except (OSError, psutil.Error):
        return None
    wait = tuple(sorted((_addr(c.laddr), _addr(c.raddr)) for c in conns if c.status == psutil.CONN_CLOSE_WAIT))
    return TcpSeen(wait, sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED))
