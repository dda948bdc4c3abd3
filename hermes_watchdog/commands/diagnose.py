"""``hermes-watchdog diagnose PID``: one diagnosis, shown, optionally saved as an evidence folder."""

from __future__ import annotations

import contextlib
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hermes_watchdog import diagnosis, exitcodes
from hermes_watchdog.errors import UserError
from hermes_watchdog.observe import stack_capture
from hermes_watchdog.record import evidence, jsonout, render
from hermes_watchdog.record.redact import redact_identity
from hermes_watchdog.record.safetext import one_line

MAX_SECONDS = 600.0  # a diagnosis is a look now; a longer watch is `run`
MAX_HEARTBEAT_STALE = 86400.0


def _progress(text: str, show: bool) -> contextlib.AbstractContextManager[object]:
    """A spinner on stderr while the sample runs, for a person at a terminal only: never in --json, never
    when stderr is a pipe or a file."""
    if not (show and sys.stderr.isatty()):
        return contextlib.nullcontext()
    from rich.console import Console

    return Console(stderr=True, highlight=False).status(text)


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
         frozen_after: float = 60.0, stack_with: str = "auto") -> int:
    pid = parse_pid(pid_text)
    # Written as "not (in range)" so NaN, for which every comparison is false, fails too.
    if not 0 < seconds <= MAX_SECONDS:
        raise UserError(f"--seconds must be more than 0 and at most {MAX_SECONDS:g}, not {seconds:g}")
    if not 0 < frozen_after <= MAX_HEARTBEAT_STALE:
        raise UserError(f"--frozen-after must be more than 0 and at most {MAX_HEARTBEAT_STALE:g}, "
                        f"not {frozen_after:g}")
    stack_with = stack_capture.ALIASES.get(stack_with, stack_with)
    if stack_with not in stack_capture.METHODS:
        raise UserError(f"--stack-with must be one of {', '.join(stack_capture.METHODS)}, not {stack_with!r}")
    if hermes_home is not None and not hermes_home.expanduser().is_dir():
        raise UserError(f"--hermes-home {hermes_home} is not a directory")
    if out is not None and out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    with _progress(f"sampling PID {pid} for {seconds:g} s, then reading its stack", show=not as_json):
        d = diagnosis.diagnose(pid, seconds, hermes_home, frozen_after=frozen_after, stack_with=stack_with)
    rec = diagnosis.record(d)
    pub = redact_identity(diagnosis.public(rec), evidence.identity_names(rec))  # safe to paste, as report.md
    folder = _write_evidence(out, pid, rec, d) if out is not None else None
    if as_json:
        sys.stdout.write(jsonout.dumps(pub, indent=2) + "\n")
    else:
        render.show(pub)
        if folder is not None:
            sys.stdout.write(f"evidence written to {one_line(folder)} (report.md is safe to paste into a bug "
                             "report)\n")
    return exitcodes.PROBLEM if d.verdict.is_problem else exitcodes.OK


def _write_evidence(out: Path, pid: int, rec: dict[str, Any], d: diagnosis.Diagnosis) -> Path:
    """The evidence in a folder of its own (see evidence.fresh_folder); on any failure, whatever was
    created is removed again and the user gets one line."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    made: Path | None = None
    try:
        folder, made = evidence.fresh_folder(out, f"hermes-watchdog-diagnosis-{pid}-{stamp}")
        evidence.write(folder, rec, stack_capture.render(d.stack), d.log_tail, record_name="diagnosis.json",
                       title=f"hermes-watchdog diagnosis of PID {pid}", raw_state=d.files.state.read.data)
    except Exception as exc:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        why = getattr(exc, "strerror", None) or exc
        raise UserError(f"cannot write the evidence folder in {out}: {why}") from None
    return folder
