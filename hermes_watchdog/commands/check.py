"""``hermes-watchdog check``: a one-shot health probe for Docker ``HEALTHCHECK`` and Kubernetes exec
liveness probes. Finds the home's gateway, diagnoses it for a couple of seconds (the same diagnosis as
``diagnose``, with a short stack capture), and answers with its exit code: 0 healthy, 1 a failure
signature (as sure as ``run`` must be before it acts), 2 cannot tell. One line on stdout (or one JSON
object): what a probe's log shows."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hermes_watchdog import diagnosis, exitcodes
from hermes_watchdog.config import Config
from hermes_watchdog.errors import UserError
from hermes_watchdog.judge.verdict import CPU_PEGGED, GATEWAY_GONE, HEALTHY, Thresholds
from hermes_watchdog.observe import discovery
from hermes_watchdog.observe.statefile import hermes_home_default
from hermes_watchdog.record import jsonout
from hermes_watchdog.record.safetext import one_line

MAX_SECONDS = 30.0  # a probe has a timeout of its own (Docker: 30 s by default)
MIN_CONFIDENCE = Config().min_confidence  # the same bar `run` sets before it acts
STACK_DUMPS, STACK_TIME = 2, 1.5  # enough to place the hot thread, short enough for a probe


def _answer(status: str, code: int, home: Path, pid: int | None, signature: str | None, confidence: float | None,
            reasons: list[str], as_json: bool) -> int:
    rec: dict[str, Any] = {"status": status, "exit_code": code, "hermes_home": str(home), "pid": pid,
                           "signature": signature, "confidence": confidence, "reasons": reasons}
    pub = diagnosis.public(rec)
    if as_json:
        sys.stdout.write(jsonout.dumps(pub) + "\n")
    else:
        head = f"{status}: " + (f"{signature}, " if signature and signature != status else "")
        who = f"gateway PID {pid}" if pid else "no gateway"
        why = f": {pub['reasons'][0]}" if pub["reasons"] else ""
        sys.stdout.write(one_line(f"{head}{who} ({pub['hermes_home']}){why}") + "\n")
    return code


def main(hermes_home: Path | None, seconds: float, as_json: bool, frozen_after: float = 60.0) -> int:
    # Written as "not (in range)" so NaN, for which every comparison is false, fails too.
    if not 0 < seconds <= MAX_SECONDS:
        raise UserError(f"--seconds must be more than 0 and at most {MAX_SECONDS:g}, not {seconds:g}")
    if not 0 < frozen_after <= 86400:
        raise UserError(f"--frozen-after must be more than 0 and at most 86400, not {frozen_after:g}")
    home = (hermes_home or hermes_home_default()).expanduser().absolute()
    if not home.is_dir():
        return _answer("unknown", exitcodes.CANNOT_TELL, home, None, None, None,
                       [f"no Hermes home at {home}"], as_json)
    found = discovery.find_gateway(home)
    if found.ident is None:
        if found.state_says_running and found.stale_pid is not None:
            # The files say running, the process is gone (or another one): down, not a doubt.
            return _answer("failure", exitcodes.PROBLEM, home, found.stale_pid, GATEWAY_GONE, None,
                           [f"the state file says running, but {found.how}"], as_json)
        return _answer("unknown", exitcodes.CANNOT_TELL, home, None, None, None,
                       [f"no running gateway: {found.how}"], as_json)
    pid = found.ident.pid
    try:
        # A probe of a few seconds proves a starved loop over most of them, but calls a loop frozen only on
        # the heartbeat or the loop-tick socket (--frozen-after): a callback may legitimately block for two
        # seconds, and a liveness failure restarts the container.
        th = Thresholds(proof=0.8 * seconds, frozen_after=frozen_after)
        d = diagnosis.diagnose(pid, seconds, home, thresholds=th, with_logs=False, frozen_after=frozen_after,
                               stack_dumps=STACK_DUMPS, stack_time=STACK_TIME)
    except UserError as exc:  # it exited while we looked: a restart in progress, most likely
        return _answer("unknown", exitcodes.CANNOT_TELL, home, pid, None, None, [str(exc)], as_json)
    v = d.verdict
    reasons = list(v.reasons)
    if not d.stack.captured and d.stack.reason:
        reasons.append(f"no stack: {d.stack.reason}")  # e.g. why the hook gave no stack
    if v.signature == CPU_PEGGED:
        # Busy with every platform connected: work, as far as anyone can tell. `run` never restarts it,
        # and a liveness probe must not either.
        status, code = "ok", exitcodes.OK
    elif v.is_problem and v.confidence >= MIN_CONFIDENCE:
        status, code = "failure", exitcodes.PROBLEM
    elif v.is_problem:
        # Below what `run` would act on (a platform down for a few seconds may be a normal reconnect): a
        # liveness probe that fails here would restart healthy gateways.
        status, code = "ok", exitcodes.OK
        reasons.insert(0, f"{v.signature} at confidence {v.confidence:.2f}, below {MIN_CONFIDENCE:g}: not a "
                          "failure yet")
    elif v.signature == HEALTHY:
        status, code = "healthy", exitcodes.OK
    else:
        status, code = "unknown", exitcodes.CANNOT_TELL
    return _answer(status, code, home, pid, v.signature, round(v.confidence, 2), reasons, as_json)
