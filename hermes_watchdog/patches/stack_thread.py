"""The stack thread: the gateway hands over its own Python stacks on request, with no signal at all.

Installed beside the stack hook as ``hermes_watchdog_stack_thread.py`` and started by it (``hook.arm``), only
in a Hermes gateway process. Standard library only; it never imports Hermes and never raises into the gateway.

Why not SIGUSR2 and faulthandler, as the hook did before: faulthandler's dump runs inside a signal handler and
walks every thread's frames without the GIL while they change. CPython cannot make that safe (cpython #116008,
and the closed PR #141267: "we can't acquire the GIL ... inside signal handlers"): a dump taken while the loop
spins through calls can segfault the gateway. Seen here: the simulated QQBot spin, dumped five times a second,
died of "Fatal Python error: Segmentation fault" in about one run in six on Python 3.11. A diagnostic must never
harm what it diagnoses, so the watchdog sends no SIGUSR2 any more; it asks this thread.

How. A daemon thread waits in ``accept()`` on a Unix stream socket (no cost while nobody asks). A client of the
gateway's own user or root (peer credentials checked where the OS gives them) sends ``stacks``; the thread
takes ``sys._current_frames()`` holding the GIL, a consistent snapshot of every other thread, writes it in
faulthandler's text format (the watchdog's one parser), and closes. A loop spinning in Python code hands the
GIL over every switch interval (5 ms), so the answer comes within milliseconds of the request; a thread that
holds the GIL inside one C call delays the answer, and the watchdog says so.

Where. Linux: the abstract name ``hermes-watchdog-stacks.<pid>.<start time>.<random>`` (nothing written in the
user's home, no path-length limit; the random part, known only from the 0600 marker, keeps another user from
taking the name first; the peer's credentials decide who is answered, and the watchdog checks that the
answering process is the gateway: SO_PEERCRED both ways). Elsewhere: ``HERMES_HOME/state/hermes-watchdog-
stacks.<pid>.sock``, 0600 in a ``state/`` of the user's that nobody else may enter. The hook's marker names it.

Never harmful to the gateway: the thread sleeps in ``accept()``; a failing ``accept()`` (no descriptors left)
backs off instead of spinning; a client that has gone (it gave up waiting) gets no dump; nothing is written
with SIGPIPE possible (MSG_NOSIGNAL), whatever SIGPIPE's disposition.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import select
import socket
import stat
import struct
import sys
import threading
import time

PREFIX = "hermes-watchdog-stacks"
REQUEST = b"stacks\n"
MAX_DEPTH = 200  # frames per thread, innermost first (faulthandler's own limit is 100)
TIMEOUT = 2.0  # seconds a client has to send its request

_state: dict[str, object] = {}


def address(home: str, pid: int, start_time: int | None, nonce: str = "") -> str:
    """The socket's address: ``@name`` for a Linux abstract name, else a path."""
    if sys.platform.startswith("linux"):
        return f"@{PREFIX}.{pid}.{-1 if start_time is None else start_time}.{nonce}"
    return os.path.join(home, "state", f"{PREFIX}.{pid}.sock")


def _private_folder(folder: str) -> None:
    """``state/`` must be the user's and closed to others: the socket file's mode is its only guard here."""
    os.makedirs(folder, mode=0o700, exist_ok=True)
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError(f"{folder} is not a private folder of this user")


def _bindable(addr: str) -> str | bytes:
    return b"\0" + addr[1:].encode() if addr.startswith("@") else addr


def start(home: str, start_time: int | None) -> str | None:
    """Bind and start the thread; returns the address, or None (the reason is in ``status()``). Never raises."""
    try:
        if "address" in _state:
            return str(_state["address"])
        addr = address(home, os.getpid(), start_time, secrets.token_hex(8))
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if not addr.startswith("@"):
                _private_folder(os.path.dirname(addr))
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(addr)  # a leftover of an earlier process with our pid
                old = os.umask(0o177)
                try:
                    sock.bind(addr)
                finally:
                    os.umask(old)
            else:
                sock.bind(_bindable(addr))
            sock.listen(4)
        except Exception:
            sock.close()
            raise
        _state.update(sock=sock, address=addr, pid=os.getpid())
        threading.Thread(target=_serve, args=(sock,), name="hermes-watchdog-stacks", daemon=True).start()
        with contextlib.suppress(Exception):
            os.register_at_fork(after_in_child=_forget)
        return addr
    except Exception as exc:
        _state["failed"] = repr(exc)
        return None


def _forget() -> None:
    """In a forked child: the thread is not there, and the socket is the parent's to answer."""
    sock = _state.pop("sock", None)
    _state.pop("address", None)
    with contextlib.suppress(Exception):
        sock.detach()  # type: ignore[union-attr]  # keep the parent's listening socket open for the parent


def _allowed(conn: socket.socket) -> bool:
    """Root or the gateway's own user. Where the OS gives no peer credentials, the socket file's 0600 did."""
    opt = getattr(socket, "SO_PEERCRED", None)
    if opt is None:
        return True
    _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, opt, struct.calcsize("3i")))
    return uid in (0, os.getuid())


def _serve(sock: socket.socket) -> None:
    pause = 0.05
    while True:
        try:
            conn, _ = sock.accept()
        except OSError as exc:
            if _state.get("sock") is not sock or exc.errno in (errno.EBADF, errno.ENOTSOCK, errno.EINVAL):
                return  # closed, or forked away
            time.sleep(pause)  # EMFILE and the like: a gateway out of descriptors gets no spinning thread
            pause = min(1.0, pause * 2)
            continue
        except Exception:
            return
        pause = 0.05
        with contextlib.suppress(Exception), conn:
            conn.settimeout(TIMEOUT)
            if not _allowed(conn):
                continue
            request = b""
            while not request.endswith(b"\n") and len(request) < 64:
                chunk = conn.recv(64)
                if not chunk:
                    break
                request += chunk
            if request == REQUEST and _still_there(conn):
                _send(conn, dump().encode("utf-8", "replace"))


def _still_there(conn: socket.socket) -> bool:
    """A client that gave up (it waited while a C call held the GIL) has hung up: no dump for nobody."""
    try:
        p = select.poll()
        p.register(conn, select.POLLHUP | select.POLLERR)
        return not p.poll(0)
    except Exception:
        return True


def _send(conn: socket.socket, data: bytes) -> None:
    flags = getattr(socket, "MSG_NOSIGNAL", 0)  # a hung-up client must not raise SIGPIPE in the gateway
    if not flags and hasattr(socket, "SO_NOSIGPIPE"):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_NOSIGPIPE, 1)
    view = memoryview(data)
    while view:
        sent = conn.send(view, flags)
        view = view[sent:]


def _clean(text: str) -> str:
    return text.replace("\n", " ").replace("\r", " ").replace("]", ")").replace("[", "(")


def dump() -> str:
    """Every thread but this one, innermost call first, in faulthandler's format."""
    me = threading.get_ident()
    names = {t.ident: t.name for t in threading.enumerate()}
    out: list[str] = []
    frames = sys._current_frames()
    for ident, frame in frames.items():
        if ident == me:
            continue
        name = names.get(ident)
        label = f" [{_clean(name)}]" if name else ""
        out.append(f"Thread 0x{ident:016x}{label} (most recent call first):")
        depth, f = 0, frame
        while f is not None and depth < MAX_DEPTH:
            code = f.f_code
            line = f.f_lineno
            out.append(f'  File "{_clean(code.co_filename)}", line {line if line is not None else "???"} in '
                       f"{_clean(code.co_name)}")
            f, depth = f.f_back, depth + 1
        if f is not None:
            out.append("  ...")
        out.append("")
    frames.clear()  # no frame outlives the request
    return "\n".join(out) + "\n"


def status() -> dict[str, object]:
    return {k: v for k, v in _state.items() if k in {"address", "failed"}}
