"""Asking the gateway's stack thread (patches/stack_thread.py) for every thread's stack: no signal, no ptrace.

The address comes from the hook's marker, already proven to name this very process (observe/hook_marker.py),
and the answering process is proven again on the socket itself: its peer pid (SO_PEERCRED on Linux,
LOCAL_PEERPID on macOS) must be the gateway's. Nothing else is sent to the gateway than the request.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path

from hermes_watchdog.facts.identity import Identity
from hermes_watchdog.observe import looptick
from hermes_watchdog.observe.hook_marker import Marker

REQUEST = b"stacks\n"  # as patches/stack_thread.py expects it
MAX_BYTES = 1024 * 1024
LOCAL_PEERPID = 0x002  # macOS <sys/un.h>, at level SOL_LOCAL (0)


def _peer_pid(s: socket.socket) -> int | None:
    opt = getattr(socket, "SO_PEERCRED", None)
    try:
        if opt is not None:
            return int(struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, opt, struct.calcsize("3i")))[0])
        return int(struct.unpack("i", s.getsockopt(0, LOCAL_PEERPID, struct.calcsize("i")))[0])
    except (OSError, struct.error):
        return None


def _target(addr: str, uid: int | None) -> tuple[str | bytes | None, int | None]:
    if addr.startswith("@"):
        return b"\0" + addr[1:].encode(), None
    return looptick.socket_address(Path(addr), uid)  # a path in the user's state/: proven, never followed


def request(ident: Identity, marker: Marker, timeout: float) -> tuple[str | None, str]:
    """(faulthandler-format text, "") or (None, why not)."""
    addr = marker.stacks
    if addr is None:
        return None, "the hook started no stack thread in this gateway (an older fix pack? `patch install` again)"
    target, fd = _target(addr, ident.uid)
    if target is None:
        return None, f"{addr} is not a socket of the gateway's user"
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    except OSError as exc:
        if fd is not None:
            os.close(fd)
        return None, f"no socket for the request: {exc.strerror or exc}"
    with s:
        return _ask(s, target, fd, addr, ident, timeout)


def _ask(s: socket.socket, target: str | bytes, fd: int | None, addr: str, ident: Identity,
         timeout: float) -> tuple[str | None, str]:
    deadline = time.monotonic() + timeout
    try:
        s.settimeout(timeout)
        s.connect(target)
    except (BlockingIOError, TimeoutError):
        return None, (f"the gateway's stack thread at {addr} is not accepting (its backlog is full: a thread that "
                      "holds the GIL inside one C call keeps it from running)")
    except OSError as exc:
        return None, (f"cannot reach the gateway's stack thread at {addr}: {exc.strerror or exc} (a gateway in "
                      "another network namespace keeps its abstract socket there)")
    finally:
        if fd is not None:
            os.close(fd)
    peer = _peer_pid(s)
    if peer != ident.pid:
        return None, f"{addr} is served by PID {peer}, not by the gateway (PID {ident.pid}): nothing asked of it"
    chunks: list[bytes] = []
    size = 0
    try:
        s.sendall(REQUEST)
        while size < MAX_BYTES:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            s.settimeout(left)
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except TimeoutError:
        return None, (f"the gateway's stack thread did not answer within {timeout:.1f} s (a thread that holds "
                      "the GIL inside one C call keeps it from running)")
    except OSError as exc:
        return None, f"the gateway's stack thread at {addr} failed: {exc.strerror or exc}"
    text = b"".join(chunks)[:MAX_BYTES].decode("utf-8", "replace")
    if not text.strip():
        return None, f"the gateway's stack thread at {addr} sent nothing"
    return text, ""
