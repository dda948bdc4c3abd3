"""report.md: a Markdown report made to be pasted into a public bug report. Pure: the caller passes
already-redacted parts, and ``render`` redacts the finished text once more as a last guard."""

from __future__ import annotations

from typing import Any

from hermes_watchdog.record.redact import redact
from hermes_watchdog.record.render import cpu_summary, loop_text

_FENCE = "```"


def _fence(text: str, lang: str = "") -> str:
    # A log line holding ``` must not end our block early.
    body = text.replace(_FENCE, "'''").rstrip()
    return f"{_FENCE}{lang}\n{body}\n{_FENCE}"


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def render(rec: dict[str, Any], stack_text: str, log_tail: str, *, title: str = "hermes-watchdog diagnosis",
           extra: list[tuple[str, str]] | None = None, home: str | None = None) -> str:
    v = rec.get("verdict", {})
    cpu = rec.get("cpu", {}) or {}
    state = rec.get("state", {}) or {}
    stack = rec.get("stack", {}) or {}
    vers = rec.get("versions", {}) or {}
    proc = rec.get("process", {}) or {}
    out: list[str] = [f"# {title}", ""]
    out.append(f"**Verdict: `{v.get('signature')}`** (confidence {v.get('confidence')}) "
               f"for PID {rec.get('pid')} at {rec.get('taken_at')}")
    out += [""] + [f"- {r}" for r in v.get("reasons", [])] + [""]
    for heading, body in extra or []:
        out += [f"## {heading}", "", body.rstrip(), ""]
    out += ["## Versions", "", _row("component", "version"), _row("---", "---")]
    out.append(_row("hermes-watchdog", vers.get("hermes_watchdog")))
    out.append(_row("Hermes (hermes-agent)", vers.get("hermes") or "not found"))
    out.append(_row("gateway Python", vers.get("target_python") or "unknown"))
    out.append(_row("watchdog Python", vers.get("watchdog_python")))
    out.append(_row("OS", vers.get("os")))
    if vers.get("qqbot_fix"):
        out.append(_row("QQBot busy-loop fix", vers["qqbot_fix"]))
    rel = rec.get("release") or {}
    if rel.get("family"):
        out.append(_row("Hermes release family", f"{rel['family']} (recognised from: {rel.get('from')})"))
    out += ["", "## Process", "", _row("field", "value"), _row("---", "---")]
    out.append(_row("command", " ".join(proc.get("cmdline") or []) or "(hidden)"))
    out.append(_row("started", proc.get("started_at")))
    out.append(_row("looks like a Hermes gateway", proc.get("looks_like_gateway")))
    out.append(_row("Hermes home", f"{rec.get('hermes_home', {}).get('path')} "
                                   f"({rec.get('hermes_home', {}).get('source')})"))
    out += ["", "## CPU", ""]
    has_demand = cpu.get("measure") == "demand"
    process_line, thread_line = cpu_summary(cpu)
    out.append(f"Process: {process_line}; {thread_line}.")
    out += ["", "Judged by **demand** (time on a CPU + time waiting for one, from Linux schedstat): a thread that "
                "is runnable all the time wants a whole core even when other processes leave it little CPU time."
            if has_demand else "Judged by **CPU time** (no run-queue data on this system)."]
    if has_demand:
        out += ["", _row("seconds from start", "process cores", "process demand"), _row("---:", "---:", "---:")]
        out += [_row(s["t"], s["cores"], s.get("demand")) for s in cpu.get("samples", [])]
        out += ["", _row("thread", "cores", "demand", "on CPU", "waiting"), _row(*["---:"] * 5)]
        out += [_row(t["tid"], t["ratio"], t.get("demand"), t.get("on_cpu"), t.get("waiting"))
                for t in cpu.get("threads", [])]
    else:
        out += ["", _row("seconds from start", "process cores"), _row("---:", "---:")]
        out += [_row(s["t"], s["cores"]) for s in cpu.get("samples", [])]
        out += ["", _row("thread", "cores"), _row("---:", "---:")]
        out += [_row(t["tid"], t["ratio"]) for t in cpu.get("threads", [])]
    out += ["", "## Event loop", ""]
    out += [f"- {line}" for line in loop_text(v.get("loop"))]
    out += ["", "## Stack of the hot thread", ""]
    if stack.get("captured"):
        out.append(f"Classification: `{stack.get('classification')}` "
                   f"({stack.get('loop_seen_in_dumps')} of {stack.get('dumps')} py-spy dumps show a "
                   "platform listen/read loop).")
    else:
        out.append(f"Not captured: {stack.get('reason')}." + (f" Hint: {stack['hint']}." if stack.get("hint") else ""))
    out += ["", _fence(stack_text), "", "## Gateway state file", ""]
    out.append(f"`{state.get('path')}`: {state.get('status')}"
               + (f" ({state.get('problem')})" if state.get("problem") else "")
               + (f"; {state.get('match_note')}" if state.get("match_note") else ""))
    platforms = state.get("platform_details") or {}
    if state.get("status") == "ok":
        out += ["", f"gateway_state: `{state.get('gateway_state')}`, updated {state.get('updated_at')}", ""]
        out += [_row("platform", "state", "error", "since"), _row("---", "---", "---", "---")]
        out += [_row(n, p.get("state"), p.get("error_code") or "", p.get("updated_at") or "")
                for n, p in platforms.items()]
    hb = rec.get("heartbeat")
    if hb:  # Hermes >= 0.19 only
        out += ["", "## Event-loop heartbeat", "",
                f"`{hb.get('path')}` written by PID {hb.get('pid')} at {hb.get('updated_at')}: "
                + (f"{hb.get('age_seconds')} s old, stale: {hb.get('stale')}" if hb.get("age_seconds") is not None
                   else str(hb.get("note")))
                + (". Written off the event loop (payload flag `loop_tick_socket`): it says the process runs, not "
                   "that its loop turns; it is not a loop witness." if hb.get("written_off_loop") else "")]
    out += ["", "## Log tail", "", _fence(log_tail or "(none)"), "",
            "_Secrets, tokens and the home directory were redacted by hermes-watchdog. "
            "Check before posting all the same._", ""]
    return redact("\n".join(out), home)
