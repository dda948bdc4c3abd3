"""Files and folders for users' eyes only: folders 0700, files 0600, written atomically."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def make_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask, and an existing dir keeps its own
    return path


def write_text(path: Path, text: str, durable: bool = True) -> None:
    """Write via a 0600 temp file in the same folder, then rename: a reader never sees half a file.
    ``durable=False`` skips the fsync: still whole after a crash, but perhaps the previous version."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json(path: Path, data: Any, durable: bool = True) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", durable)
