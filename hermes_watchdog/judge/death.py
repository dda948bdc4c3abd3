"""Silent death: Hermes' lifecycle ledger still says the gateway is up for a PID that is gone. Pure.

Git releases 0.19.1+ keep ``state/gateway.lifecycle.json`` ``{phase, pid, start_time, exit_code?,
exit_reason?}`` (gateway/lifecycle_ledger.py @00067189) and stamp an exit on every exit they see. A ledger
still naming a live phase for a dead PID means the process never got to say it exited: SIGKILL, the OOM
killer, a crash in C (upstream #107619: ``running`` found at the next boot). Its heartbeat's ``mem`` (the
ledger's ``sample_memory``) is the last memory sample the gateway left: an OOM kill shows there.
"""

from __future__ import annotations

from hermes_watchdog.judge.wording import size

EXITED = frozenset({"exited", "stopped", "failed", "startup_failed"})


def unclean_death(phase: str | None, ledger_pid: int | None, pid: int | None, alive: bool,
                  mem: dict[str, int] | None = None) -> str | None:
    """The report line, or None. ``pid``: the gateway PID in question (the one just lost, or the one the
    files name); ``alive``: that PID is a live process still; ``mem``: the heartbeat's ``mem`` when the
    heartbeat was written by that same PID."""
    if phase is None or phase in EXITED or ledger_pid is None or pid is None or ledger_pid != pid or alive:
        return None
    text = (f"unclean death: state/gateway.lifecycle.json still says '{phase}' for PID {pid}, which is gone; no "
            "exit was recorded (killed, OOM-killed or crashed)")
    if mem:
        parts = [f"{k.removesuffix('_kib')} {size(v * 1024)}" if k.endswith("_kib") else f"{k} {v}"
                 for k, v in list(mem.items())[:6]]
        text += "; its heartbeat's last memory sample: " + ", ".join(parts)
    return text
