"""An evidence folder: the record, the stack, the state, the log tail and report.md, all redacted,
folder 0700 and files 0600. Shared by ``diagnose --out`` and the daemon's incident folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hermes_watchdog import private, report
from hermes_watchdog.redact import redact, redact_obj


def write(folder: Path, rec: dict[str, Any], stack_text: str, log_tail: str, *, record_name: str,
          title: str, extra: list[tuple[str, str]] | None = None, raw_state: Any = None) -> Path:
    home = str(Path.home())
    pub = redact_obj(rec, home)
    stack_pub = redact(stack_text, home)
    logs_pub = redact(log_tail, home)
    private.make_dir(folder)
    private.write_json(folder / record_name, pub)
    private.write_text(folder / "stack.txt", stack_pub)
    state = redact_obj(raw_state, home) if raw_state is not None else pub.get("state")
    private.write_text(folder / "state.json", json.dumps(state, indent=2) + "\n")
    private.write_text(folder / "logs-tail.txt", logs_pub)
    private.write_text(folder / "report.md", report.render(pub, stack_pub, logs_pub, title=title,
                                                           extra=extra, home=home))
    return folder
