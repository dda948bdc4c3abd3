"""The stack thread never harms the gateway it lives in: a real child process runs it with SIGPIPE at its
default action (fatal), and clients that hang up before, during and after their request, a flood of
connections, and a client of the wrong request get nothing and change nothing; the next honest request is
answered. Linux (abstract socket, SO_PEERCRED)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hermes_watchdog.observe import processes
from tests.helpers import wait_for

REPO = Path(__file__).resolve().parent.parent
CHILD = ("import os, signal, sys, time\n"
         "sys.path.insert(0, os.environ['REPO'])\n"
         "signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # as a library or CLI may leave it: a write to a\n"
         "from hermes_watchdog.patches import stack_thread  # hung-up socket would then kill the process\n"
         "print(stack_thread.start(os.environ['HOME_DIR'], int(sys.argv[1])), flush=True)\n"
         "def deep(n):\n"
         "    return deep(n - 1) if n else time.sleep(3600)\n"
         "deep(150)\n")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets are Linux's")


def _connect(s: socket.socket, addr: str) -> None:
    """connect(), waiting while the backlog is full (the thread serves one client at a time)."""
    wait_for(lambda: _try_connect(s, addr), what="room in the backlog", step=0.02)


def _try_connect(s: socket.socket, addr: str) -> bool:
    try:
        s.connect(b"\0" + addr[1:].encode())
    except BlockingIOError:
        return False
    return True


def _raw(addr: str, payload: bytes, read: bool) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        _connect(s, addr)
        if payload:
            s.sendall(payload)
        if not read:
            return b""
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:  # closed with our unread bytes in its buffer: nothing was sent
            pass
        return out


def test_hangups_floods_and_odd_requests_never_hurt_it(tmp_path: Path) -> None:
    home = tmp_path / "hermes"
    home.mkdir()
    start = processes.identity(os.getpid()).start_ticks or 0  # any number: the child names itself by it
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(start)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "REPO": str(REPO), "HOME_DIR": str(home)})
    try:
        assert child.stdout is not None
        addr = child.stdout.readline().strip()
        assert addr.startswith(f"@hermes-watchdog-stacks.{child.pid}."), addr
        for _ in range(50):
            _raw(addr, b"stacks\n", read=False)  # asks, and hangs up before the answer
        for _ in range(3):
            _raw(addr, b"", read=False)  # connects, says nothing (the thread waits its timeout for each)
        assert _raw(addr, b"please\n", read=True) == b""  # not the request: nothing
        assert _raw(addr, b"stacks" * 20, read=True) == b""  # too long, no newline: nothing
        socks = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(40)]
        for s in socks:  # a flood beyond the backlog, left hanging
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
                s.connect(b"\0" + addr[1:].encode())
        for s in socks:
            s.close()
        assert child.poll() is None, f"the child died: {child.returncode}"
        text = wait_for(lambda: _raw(addr, b"stacks\n", read=True).decode(), what="an honest answer")
        assert text.count(" in deep") == 151, text[-500:]  # every frame of the main thread, innermost first
        assert text.index(" in deep") < text.index(" in <module>")
        assert child.poll() is None
    finally:
        child.kill()
        child.wait(10)


def test_a_dump_is_never_taken_for_a_client_that_already_left(tmp_path: Path) -> None:
    """The watchdog gave up (a C call held the GIL past its timeout) and closed: the queued request is not
    answered with a dump, whose only effect would be to take the GIL from the loop once more."""
    from hermes_watchdog.patches import stack_thread

    a, b = socket.socketpair()
    b.close()
    assert stack_thread._still_there(a) is False
    c, d = socket.socketpair()
    try:
        assert stack_thread._still_there(c) is True
    finally:
        for s in (a, c, d):
            s.close()


def test_an_answer_to_a_client_gone_mid_send_raises_no_sigpipe() -> None:
    """In a child with SIGPIPE at its default action (fatal): writing the answer to a hung-up client is a
    BrokenPipeError the thread swallows, never a signal that ends the gateway."""
    code = ("import os, signal, socket, sys\n"
            "sys.path.insert(0, os.environ['REPO'])\n"
            "signal.signal(signal.SIGPIPE, signal.SIG_DFL)\n"
            "from hermes_watchdog.patches import stack_thread\n"
            "a, b = socket.socketpair()\n"
            "b.close()\n"
            "try:\n"
            "    stack_thread._send(a, b'x' * 1000000)\n"
            "except BrokenPipeError:\n"
            "    print('broken pipe, alive')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "REPO": str(REPO)})
    assert r.returncode == 0 and r.stdout.strip() == "broken pipe, alive", (r.returncode, r.stderr)
