"""The gateway's TCP sockets in CLOSE_WAIT. I/O only; judge/halfclosed.py decides.

Whatever asks, the kernel walks its whole TCP hash table: on this 24 GB test machine that is about 2 ms of
CPU per address family, and reading /proc/<pid>/net/tcp costs it again for every 4 KiB page (about 5 ms for
tcp, 4 ms for an empty tcp6), psutil's ``net_connections`` about 12 ms (bench/deaf_cost.py). So, on Linux:
  1. sock_diag netlink (what ``ss`` uses), asking only for sockets in CLOSE_WAIT, IPv4 and IPv6, when the
     gateway shares the daemon's network namespace; else its own namespace's /proc/<pid>/net/tcp{,6};
  2. only when some socket of the namespace is in CLOSE_WAIT, the gateway's socket inodes (one readlink
     per descriptor) keep its own (its established connections are counted only on the slower paths).
Elsewhere psutil (macOS needs the same user or root). The daemon reads it every minute at most
(observe/deaf.py).
"""

from __future__ import annotations

import os
import socket
import struct
import sys
from dataclasses import dataclass

import psutil

LINUX = sys.platform.startswith("linux")
CLOSE_WAIT, ESTABLISHED = b"08", b"01"
_MAX = 64 << 20  # bytes read from one table at most: a host with a million sockets is not read whole


@dataclass(frozen=True)
class TcpSeen:
    close_wait: tuple[tuple[str, str], ...]  # (local, remote) "ip:port"
    established: int | None  # None: not counted (nothing was in CLOSE_WAIT, so the inodes were not read)


def read(pid: int) -> TcpSeen | None:
    """None when the sockets cannot be read (gone, not permitted)."""
    if LINUX:
        got = _read_netlink(pid) if _same_netns(pid) else None
        if got is None:
            got = _read_proc(pid)
        if got is not None:
            return got
    return _read_psutil(pid)


def _same_netns(pid: int) -> bool:
    try:
        return os.stat("/proc/self/ns/net").st_ino == os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return False


_NETLINK_SOCK_DIAG, _SOCK_DIAG_BY_FAMILY, _DONE, _ERROR = 4, 20, 3, 2
_REQUEST_DUMP = 0x1 | 0x300  # NLM_F_REQUEST | NLM_F_DUMP
TCP_CLOSE_WAIT = 8


def diag(family: int, state: int) -> list[tuple[int, bytes, int, bytes, int, int]] | None:
    """(family, source, sport, destination, dport, inode) of every TCP socket of this namespace in
    ``state``, by sock_diag netlink (inet_diag_req_v2 / inet_diag_msg, linux/inet_diag.h); None on error."""
    try:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG)
    except OSError:
        return None
    try:
        s.settimeout(2.0)
        req = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 1 << state) + bytes(48)
        s.send(struct.pack("=IHHII", 16 + len(req), _SOCK_DIAG_BY_FAMILY, _REQUEST_DUMP, 1, 0) + req)
        out = []
        while True:
            data = s.recv(1 << 16)
            if not data:
                return None
            off = 0
            while off + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, off)
                if kind == _DONE:
                    return out
                if kind == _ERROR or length < 16 + 72:
                    return None
                m = off + 16  # inet_diag_msg: family state timer retrans, sockid (48), expires rq wq uid inode
                sport, dport = struct.unpack_from(">HH", data, m + 4)
                size = 4 if data[m] == socket.AF_INET else 16
                out.append((data[m], data[m + 8:m + 8 + size], sport, data[m + 24:m + 24 + size], dport,
                            struct.unpack_from("=I", data, m + 68)[0]))
                off += (length + 3) & ~3
    except OSError:
        return None
    finally:
        s.close()


def _ip(family: int, raw: bytes, port: int) -> str:
    return f"{socket.inet_ntop(family, raw)}:{port}" if family == socket.AF_INET else \
        f"[{socket.inet_ntop(family, raw)}]:{port}"


def _read_netlink(pid: int) -> TcpSeen | None:
    waiting = []
    for fam in (socket.AF_INET, socket.AF_INET6):
        got = diag(fam, TCP_CLOSE_WAIT)
        if got is None:
            return None
        waiting += got
    if not waiting:
        return TcpSeen((), None)
    mine = _socket_inodes(pid)
    if mine is None:
        return None
    own = [w for w in waiting if str(w[5]).encode() in mine]
    # Established connections are not counted here: two more walks of the hash for context only.
    return TcpSeen(tuple(sorted((_ip(f, src, sp), _ip(f, dst, dp)) for f, src, sp, dst, dp, _ in own)), None)


def _addr(a: object) -> str:
    if not a:
        return "-"
    ip, port = a  # type: ignore[misc]
    return f"[{ip}]:{port}" if ":" in str(ip) else f"{ip}:{port}"


def _read_psutil(pid: int) -> TcpSeen | None:
    try:
        conns = psutil.Process(pid).net_connections(kind="tcp")
    except (OSError, psutil.Error):
        return None
    wait = tuple(sorted((_addr(c.laddr), _addr(c.raddr)) for c in conns if c.status == psutil.CONN_CLOSE_WAIT))
    return TcpSeen(wait, sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED))


def _slurp(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks, total = [], 0
        while total < _MAX and (chunk := os.read(fd, 1 << 16)):
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def decode(hexaddr: bytes) -> str:
    """'0100007F:1F90' -> '127.0.0.1:8080'; the kernel prints each 32-bit word in host (little-endian) order."""
    host, _, port = hexaddr.partition(b":")
    raw = bytes.fromhex(host.decode())
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)) if sys.byteorder == "little" else raw
    if len(words) == 4:
        return f"{socket.inet_ntop(socket.AF_INET, words)}:{int(port, 16)}"
    return f"[{socket.inet_ntop(socket.AF_INET6, words)}]:{int(port, 16)}"


def scan(tables: list[bytes]) -> list[tuple[bytes, bytes, bytes, bytes]]:
    """(state, local, remote, inode) of the rows in CLOSE_WAIT or ESTABLISHED. Pure."""
    rows = []
    for table in tables:
        for line in table.splitlines()[1:]:
            parts = line.split()
            if len(parts) > 9 and parts[3] in (CLOSE_WAIT, ESTABLISHED):
                rows.append((parts[3], parts[1], parts[2], parts[9]))
    return rows


def _read_proc(pid: int) -> TcpSeen | None:
    tables = [_slurp(f"/proc/{pid}/net/{name}") for name in ("tcp", "tcp6")]
    if tables[0] is None:
        return None
    # The cheap pass: nothing in CLOSE_WAIT in the whole namespace, nothing of the gateway's either.
    if not any(b" 08 " in t for t in tables if t):
        return TcpSeen((), None)
    rows = scan([t for t in tables if t])
    if not any(st == CLOSE_WAIT for st, *_ in rows):
        return TcpSeen((), None)
    mine = _socket_inodes(pid)
    if mine is None:
        return None
    own = [(st, lo, re) for st, lo, re, ino in rows if ino in mine]
    try:
        wait = tuple(sorted((decode(lo), decode(re)) for st, lo, re in own if st == CLOSE_WAIT))
    except (ValueError, OSError):
        return None
    return TcpSeen(wait, sum(1 for st, *_ in own if st == ESTABLISHED))


def _socket_inodes(pid: int) -> set[bytes] | None:
    base = f"/proc/{pid}/fd"
    try:
        names = os.listdir(base)
    except OSError:
        return None
    out = set()
    for name in names:
        try:
            target = os.readlink(f"{base}/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[8:-1].encode())
    return out
