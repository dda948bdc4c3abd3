"""``hermes-watchdog diagnose PID``: one diagnosis, shown, optionally saved as an evidence folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hermes_watchdog import diagnosis, evidence, render
from hermes_watchdog.errors import UserError
from hermes_watchdog.stacks import render_text


def parse_pid(text: str) -> int:
    text = text.strip()
    digits = text[1:] if text[:1] == "-" else text
    # ASCII digits only: int() would also take "+5", "1_000" and other scripts' digits.
    if not (digits.isascii() and digits.isdigit()):
        raise UserError(f"PID must be a whole number, not {text!r}")
    pid = int(text)
    if pid <= 0:
        raise UserError(f"PID must be a positive number, not {pid}")
    return pid


def main(pid_text: str, seconds: float, hermes_home: Path | None, as_json: bool, out: Path | None,
         heartbeat_stale: float = 60.0) -> int:
    pid = parse_pid(pid_text)
    if not seconds > 0:
        raise UserError(f"--seconds must be more than 0, not {seconds:g}")
    if not heartbeat_stale > 0:
        raise UserError(f"--heartbeat-stale must be more than 0, not {heartbeat_stale:g}")
    if hermes_home is not None and not hermes_home.expanduser().is_dir():
        raise UserError(f"--hermes-home {hermes_home} is not a directory")
    if out is not None and out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    d = diagnosis.diagnose(pid, seconds, hermes_home, heartbeat_stale=heartbeat_stale)
    rec = diagnosis.record(d)
    pub = diagnosis.public(rec)
    if out is not None:
        try:
            evidence.write(out, rec, render_text(d.stack), d.log_tail, record_name="diagnosis.json",
                           title=f"hermes-watchdog diagnosis of PID {pid}", raw_state=d.files.state.read.data)
        except OSError as exc:
            raise UserError(f"cannot write the evidence folder {out}: {exc.strerror or exc}") from None
    if as_json:
        sys.stdout.write(json.dumps(pub, indent=2) + "\n")
    else:
        render.show(pub)
        if out is not None:
            sys.stdout.write(f"evidence written to {out} (report.md is safe to paste into a bug report)\n")
    return 1 if d.verdict.is_problem else 0
