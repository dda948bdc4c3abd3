"""Tails of the gateway's log files (raw; the caller redacts)."""

from __future__ import annotations

import os
from pathlib import Path

LOG_FILES = ("gateway.log", "gateway.error.log", "errors.log")
_MAX_TAIL_BYTES = 512 * 1024


def tail(path: Path, lines: int = 200) -> list[str] | None:
    """The last ``lines`` lines of a file, reading at most 512 KiB from its end; None if unreadable."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - _MAX_TAIL_BYTES))
            data = fh.read()
    except OSError:
        return None
    text = data.decode("utf-8", errors="replace")
    out = text.splitlines()
    if size > _MAX_TAIL_BYTES and out:
        out = out[1:]  # the first line was cut in the middle
    return out[-lines:]


def gateway_tail(home: Path | None, lines: int = 200) -> str:
    """The tails of gateway.log, gateway.error.log and errors.log, each under a header."""
    if home is None:
        return "(no Hermes home: no logs)\n"
    chunks = []
    for name in LOG_FILES:
        path = home / "logs" / name
        got = tail(path, lines)
        if got is None:
            chunks.append(f"==> logs/{name}: not present <==\n")
        else:
            chunks.append(f"==> logs/{name} (last {len(got)} lines) <==\n" + "".join(ln + "\n" for ln in got))
    return "\n".join(chunks)
