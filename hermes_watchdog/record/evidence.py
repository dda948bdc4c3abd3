"""An evidence folder: the record, the stack, the state, the log tail and report.md, all redacted,
folder 0700 and files 0600. Shared by ``diagnose --out`` and the daemon's incident folders, which make
the (new, private) folder first: nothing here creates or changes a folder."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from hermes_watchdog.judge import known_issues
from hermes_watchdog.record import private, report
from hermes_watchdog.record.redact import redact, redact_identity, redact_obj


def fresh_folder(out: Path, name: str) -> tuple[Path, Path]:
    """Where ``diagnose --out`` writes, as (folder, the topmost folder created, to remove on failure). A
    missing ``out`` is created (0700, and any missing parents) and used itself. An existing one, perhaps
    the working directory or a shared 1777 folder, is never changed: the evidence goes into a new 0700
    subfolder ``name`` (``name.2``... if taken), made with mkdir's exclusive create, never reused."""
    if os.path.lexists(out):
        for n in range(1, 100):
            folder = out / (name if n == 1 else f"{name}.{n}")
            try:
                private.new_dir(folder)
            except FileExistsError:
                continue
            return folder, folder
        raise FileExistsError(f"{out / name} and 98 more folders of that name already exist")
    missing = [out]
    while missing[-1].parent != missing[-1] and not os.path.lexists(missing[-1].parent):
        missing.append(missing[-1].parent)
    created: Path | None = None
    try:
        for level in reversed(missing):
            private.new_dir(level)
            created = created or level
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    return out, missing[-1]


def write(folder: Path, rec: dict[str, Any], stack_text: str, log_tail: str, *, record_name: str,
          title: str, extra: list[tuple[str, str]] | None = None, raw_state: Any = None) -> Path:
    home = str(Path.home())
    rec = {**rec, "known_issues": known_issues.from_record(rec)}  # with the stack as it is now
    names = identity_names(rec)
    pub = redact_identity(redact_obj(rec, home), names)
    stack_pub = redact_identity(redact(stack_text, home), names)
    logs_pub = redact_identity(redact(log_tail, home), names)
    private.write_text(folder / "stack.txt", stack_pub)
    state = redact_identity(redact_obj(raw_state, home), names) if raw_state is not None else pub.get("state")
    private.write_text(folder / "state.json", json.dumps(state, indent=2) + "\n")
    private.write_text(folder / "logs-tail.txt", logs_pub)
    private.write_text(folder / "report.md", report.render(pub, stack_pub, logs_pub, title=title,
                                                           extra=extra, home=home))
    # The record last: whoever reads a result in it (a user, a script, the tests) finds the stack and
    # report that go with that result already in place.
    private.write_json(folder / record_name, pub)
    return folder


def identity_names(rec: dict[str, Any]) -> tuple[str, ...]:
    """The gateway user's name, read from the record before it is redacted: masked wherever it appears."""
    proc = rec.get("process")
    name = proc.get("username") if isinstance(proc, dict) else None
    return (name,) if isinstance(name, str) and name else ()
