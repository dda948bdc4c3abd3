"""fd-exhaustion: the gateway's open descriptors near its soft RLIMIT_NOFILE. Pure.

A gateway out of descriptors cannot accept, connect or open its database (upstream #83512: 750 `state.db`
descriptors after 41.7 h; #70830: a CLOSE_WAIT leak; on macOS, limit 256, the first symptom is a DNS error,
#30230). It does not recover by itself, so past ``fd_restart`` the default is a restart.
"""

from __future__ import annotations

from hermes_watchdog.facts.deaf import DeafThresholds, Descriptors
from hermes_watchdog.judge.deaf import FD_EXHAUSTION, Finding


def rule(fds: Descriptors | None, th: DeafThresholds) -> Finding | None:
    if fds is None or fds.ratio is None or fds.ratio < th.fd_alert:
        return None
    ratio = fds.ratio
    restart = ratio >= th.fd_restart
    reasons = [f"{fds.open} of {fds.soft_limit} file descriptors open ({ratio:.0%}; soft RLIMIT_NOFILE; alert from "
               f"{th.fd_alert:.0%}, restart from {th.fd_restart:.0%}): a gateway out of descriptors cannot accept, "
               "connect or open its files"]
    if fds.kinds:
        reasons.append("by kind: " + ", ".join(f"{k} {n}" for k, n in fds.kinds.items()))
    if fds.top_paths:
        reasons.append("held most often: " + ", ".join(f"{p} x{n}" for p, n in fds.top_paths))
    return Finding(FD_EXHAUSTION, 0.95 if restart else 0.85, tuple(reasons),
                   {**fds.to_dict(), "level": "restart" if restart else "alert"})
