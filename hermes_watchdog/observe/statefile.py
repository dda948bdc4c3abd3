"""Readers for the Hermes gateway's own files: ``gateway_state.json`` and ``gateway.pid``.

Parsing is pure (bytes in, a record out); ``read_*`` add the file I/O. A missing, truncated, garbage or
oversized file is an observation with a plain-language ``problem``, never an exception.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
from pathlib import Path
from typing import Any

from hermes_watchdog import safepath
from hermes_watchdog.facts.readings import FileRead, GatewayState, PidRecord, PlatformState

MAX_BYTES = 1024 * 1024  # Hermes writes a few KiB; anything past 1 MiB is not a state file we trust

STATE_FILE = "gateway_state.json"
PID_FILE = "gateway.pid"


MAX_PID = 2**31 - 1  # PIDs fit in 32 bits everywhere (Linux caps them at 2**22)


def as_pid(value: Any) -> int | None:
    """A PID: a positive whole number that fits, or ASCII digits of one; anything else is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        # ASCII only: "²".isdigit() is True and int() refuses it; and no 5000-digit numbers.
        if not (text.isascii() and text.isdigit() and len(text) <= 10):
            return None
        value = int(text)
    if isinstance(value, int):
        return value if 0 < value <= MAX_PID else None
    return None


def as_finite(value: Any) -> float | None:
    """A finite number (JSON lets through 1e999, Infinity and NaN); anything else is None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int past 1e308
        return None
    return number if math.isfinite(number) else None


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_json_object(path: str, raw: bytes | None, *, allow_bare_int: bool = False) -> FileRead:
    """Classify raw file bytes; ``raw=None`` means the file does not exist."""
    if raw is None:
        return FileRead(path, "missing", "file does not exist")
    if len(raw) > MAX_BYTES:
        return FileRead(path, "oversized", f"file is larger than {MAX_BYTES} bytes; not read")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return FileRead(path, "garbage", "file is not UTF-8 text")
    if not text.strip():
        return FileRead(path, "empty", "file is empty")
    bare = text.strip()
    if allow_bare_int and bare.isascii() and bare.isdigit():
        if len(bare) > 10:
            return FileRead(path, "garbage", f"a {len(bare)}-digit number is not a PID")
        return FileRead(path, "ok", None, {"pid": int(bare)})
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        # An error at the very end of the text means the JSON stopped early: a torn or cut-off write.
        # (An unterminated string reports where the string began.)
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
            return FileRead(path, "truncated", f"JSON ends early ({exc.msg} at byte {exc.pos})")
        return FileRead(path, "garbage", f"not valid JSON ({exc.msg} at line {exc.lineno})")
    except RecursionError:
        return FileRead(path, "garbage", "JSON nested too deeply")
    except ValueError as exc:  # not a JSONDecodeError: an integer of more than 4300 digits
        return FileRead(path, "garbage", f"not usable JSON ({str(exc).split(';')[0]})")
    if not isinstance(value, dict):
        if allow_bare_int and isinstance(value, int) and not isinstance(value, bool):
            return FileRead(path, "ok", None, {"pid": value})
        return FileRead(path, "not-an-object", f"JSON is a {type(value).__name__}, not an object")
    return FileRead(path, "ok", None, value)


def parse_state(path: str, raw: bytes | None) -> GatewayState:
    read = parse_json_object(path, raw)
    if not read.ok or read.data is None:
        return GatewayState(read=read)
    data = read.data
    platforms: list[PlatformState] = []
    raw_platforms = data.get("platforms")
    if isinstance(raw_platforms, dict):
        for name, entry in raw_platforms.items():
            if not isinstance(entry, dict):
                continue
            platforms.append(
                PlatformState(
                    name=str(name),
                    state=_as_str(entry.get("state")) or "unknown",
                    error_code=_as_str(entry.get("error_code")),
                    error_message=_as_str(entry.get("error_message")),
                    updated_at=_as_str(entry.get("updated_at")),
                )
            )
    return GatewayState(
        read=read,
        gateway_state=_as_str(data.get("gateway_state")),
        pid=as_pid(data.get("pid")),
        start_time=as_finite(data.get("start_time")),
        updated_at=_as_str(data.get("updated_at")),
        platforms=tuple(sorted(platforms, key=lambda p: p.name)),
        exit_reason=_as_str(data.get("exit_reason")),
        restart_requested=data.get("restart_requested") is True,
        active_agents=_as_count(data.get("active_agents")),
    )


def _as_count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 31 else None


def parse_pid(path: str, raw: bytes | None) -> PidRecord:
    read = parse_json_object(path, raw, allow_bare_int=True)
    if not read.ok or read.data is None:
        return PidRecord(read=read)
    data = read.data
    argv = data.get("argv")
    return PidRecord(
        read=read,
        pid=as_pid(data.get("pid")),
        start_time=as_finite(data.get("start_time")),
        argv=tuple(str(a) for a in argv) if isinstance(argv, list) else (),
        kind=_as_str(data.get("kind")),
    )


def open_regular(path: Path, follow: bool = False) -> int:
    """A read-only descriptor on a regular file, opened so that nothing can block or redirect it: non-blocking
    (a FIFO would wait for a writer forever), not through a final symlink unless ``follow``, close-on-exec.
    OSError (FileNotFoundError when missing) for anything else, with a plain ``strerror``."""
    try:
        # Walked from / one folder at a time (safepath): a folder of the user's swapped for a link on the
        # way cannot redirect the read either.
        fd = safepath.open_file(path, os.O_RDONLY | os.O_NONBLOCK, follow=follow)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, exc.strerror if "uid" in (exc.strerror or "") else
                          "is a symbolic link; not followed", str(path)) from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL,
                          "is a directory" if stat.S_ISDIR(mode) else "not a regular file", str(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_fd(fd: int, limit: int, offset: int = 0) -> bytes:
    """At most ``limit`` bytes from ``offset`` of an open regular file."""
    chunks, got = [], 0
    while got < limit:
        chunk = os.pread(fd, min(limit - got, 1024 * 1024), offset + got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_bytes(path: Path, limit: int = MAX_BYTES + 1, follow: bool = False) -> tuple[bytes | None, str | None]:
    """Read at most ``limit`` bytes of a regular file; returns (bytes or None if missing, error text).
    Every reader of Hermes' files and ours goes through here: a FIFO, a device or a symlink is an error."""
    try:
        fd = open_regular(path, follow)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, exc.strerror or str(exc)
    try:
        return read_fd(fd, limit), None
    except OSError as exc:
        return None, exc.strerror or str(exc)
    finally:
        os.close(fd)


def _read(path: Path) -> tuple[bytes | None, FileRead | None]:
    raw, error = read_bytes(path)
    if error:
        return None, FileRead(str(path), "unreadable", f"cannot read: {error}")
    return raw, None


def read_json_object(path: Path) -> FileRead:
    """Any JSON object file of ours or Hermes', classified like the state file (never raises)."""
    raw, failed = _read(path)
    return failed or parse_json_object(str(path), raw)


def read_state(home: Path) -> GatewayState:
    path = home / STATE_FILE
    raw, failed = _read(path)
    return GatewayState(read=failed) if failed else parse_state(str(path), raw)


def read_pid(home: Path) -> PidRecord:
    path = home / PID_FILE
    raw, failed = _read(path)
    return PidRecord(read=failed) if failed else parse_pid(str(path), raw)


def state_to_dict(state: GatewayState) -> dict[str, Any]:
    return {
        "path": state.read.path,
        "status": state.read.status,
        "problem": state.read.problem,
        "gateway_state": state.gateway_state,
        "pid": state.pid,
        "start_time": state.start_time,
        "updated_at": state.updated_at,
        "exit_reason": state.exit_reason,
        "restart_requested": state.restart_requested,
        "active_agents": state.active_agents,
        "platforms": {p.name: p.state for p in state.platforms},
        "platform_details": {
            p.name: {"state": p.state, "error_code": p.error_code, "error_message": p.error_message,
                     "updated_at": p.updated_at}
            for p in state.platforms
        },
    }


def hermes_home_default() -> Path:
    env = os.environ.get("HERMES_HOME")
    return Path(env).expanduser() if env else Path.home() / ".hermes"
