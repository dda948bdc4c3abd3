"""Tails of the gateway's log files (raw; the caller redacts)."""

from __future__ import annotations

import os
from pathlib import Path

from hermes_watchdog.observe.statefile import open_regular, read_fd

LOG_FILES = ("gateway.log", "gateway.error.log", "errors.log")
_MAX_TAIL_BYTES = 512 * 1024


def tail(path: Path, lines: int = 200) -> list[str]:
    """The last ``lines`` lines of a regular file, reading at most 512 KiB from its end. OSError when it
    cannot be read (FileNotFoundError when absent; a FIFO, device or symlink is refused, never waited on)."""
    fd = open_regular(path)
    try:
        size = os.fstat(fd).st_size
        start = max(0, size - _MAX_TAIL_BYTES)
        data = read_fd(fd, _MAX_TAIL_BYTES, start)
    finally:
        os.close(fd)
    text = data.decode("utf-8", errors="replace")
    out = text.splitlines()
    if start > 0 and out:
        out = out[1:]  # the first line was cut in the middle
    return out[-lines:]


def gateway_tail(home: Path | None, lines: int = 200) -> str:
    """The tails of gateway.log, gateway.error.log and errors.log, each under a header."""
    if home is None:
        return "(no Hermes home: no logs)\n"
    chunks = []
    for name in LOG_FILES:
        path = home / "logs" / name
        try:
            got = tail(path, lines)
        except FileNotFoundError:
            chunks.append(f"==> logs/{name}: not present <==\n")
        except OSError as exc:
            chunks.append(f"==> logs/{name}: {exc.strerror or exc}; not read <==\n")
        else:
            chunks.append(f"==> logs/{name} (last {len(got)} lines) <==\n" + "".join(ln + "\n" for ln in got))
    return "\n".join(chunks)
