"""Show a diagnosis record on the terminal: rich panels on a TTY, plain text otherwise."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from hermes_watchdog.record.safetext import one_line

_COLOURS = {"healthy": "green", "busy-loop": "red", "cpu-pegged": "yellow", "stuck-disconnected": "yellow",
            "loop-frozen": "red"}


def _sections(rec: dict[str, Any]) -> list[tuple[str, list[str]]]:
    proc, cpu, state, stack, v = (rec.get(k) or {} for k in ("process", "cpu", "state", "stack", "verdict"))
    home = rec.get("hermes_home") or {}
    vers = rec.get("versions") or {}
    process = [
        f"PID {rec.get('pid')}: {' '.join(proc.get('cmdline') or []) or '(command hidden)'}",
        f"started {proc.get('started_at')}; looks like a Hermes gateway: {proc.get('looks_like_gateway')}",
        f"Hermes home: {home.get('path')} ({home.get('source')})",
        f"Hermes {vers.get('hermes') or 'not found'}, Python {vers.get('target_python') or 'unknown'}",
    ]
    if vers.get("qqbot_fix"):
        process.append(f"QQBot busy-loop fix: {vers['qqbot_fix']}")
    rel = rec.get("release") or {}
    if rel.get("family"):
        process.append(f"Hermes release family: {rel['family']} (recognised from: {rel.get('from')})")
    deaf = deaf_line(rec.get("deaf") or {})
    if deaf:
        process.append(deaf)
    cpu_lines = cpu_text(cpu)
    state_lines = [f"{state.get('path') or '(no state file)'}: {state.get('status')}"
                   + (f" - {state.get('problem')}" if state.get("problem") else "")]
    if state.get("status") == "ok":
        state_lines.append(f"gateway_state: {state.get('gateway_state')} (updated {state.get('updated_at')})")
        state_lines += [f"  {name}: {st}" for name, st in (state.get("platforms") or {}).items()]
        state_lines.append(f"describes this process: {state.get('matches_process')} ({state.get('match_note')})")
    hb = rec.get("heartbeat")
    if hb:  # Hermes >= 0.19 only: otherwise nothing is said of it
        state_lines.append(f"event-loop heartbeat: {hb.get('age_seconds')} s old, stale: {hb.get('stale')}"
                           + (" (written off the loop: not a loop witness)" if hb.get("written_off_loop") else "")
                           if hb.get("age_seconds") is not None else f"event-loop heartbeat: {hb.get('note')}")
    if stack.get("captured"):
        frames = (stack.get("hot_thread") or {}).get("frames") or []
        tid = (stack.get("hot_thread") or {}).get("tid")
        stack_lines = [f"{stack.get('dumps')} dump(s) of thread {tid}: evidence; what the loop did is under Event loop"]
        stack_lines += [f"  {f['function']} ({f['file']}:{f['line']})" for f in frames[:25]]
    else:
        stack_lines = [f"not captured: {stack.get('reason')}"]
        if stack.get("hint"):
            stack_lines.append(f"hint: {stack['hint']}")
    verdict = [f"{v.get('signature')} (confidence {v.get('confidence')})"] + [f"- {r}" for r in v.get("reasons", [])]
    verdict += [f"- known issue: {k.get('text')}" for k in rec.get("known_issues") or [] if isinstance(k, dict)]
    return [("Process", process), ("CPU", cpu_lines), ("State file", state_lines),
            ("Event loop", loop_text(v.get("loop"))), ("Hot thread stack", stack_lines), ("Verdict", verdict)]


def loop_text(loop: dict[str, Any] | None) -> list[str]:
    """What the loop thread's own samples showed: the witness the loop verdicts stand on."""
    if not loop:
        return ["not sampled"]
    counted = _counter_line(loop.get("counter")) + _syscalls_line(loop.get("syscalls"))
    if not loop.get("bursts"):
        return counted or ["not sampled"]
    if loop.get("problem") and not loop.get("usable_bursts"):
        return [*counted, f"no loop samples: {loop['problem']}"]
    lines = [*counted,
             f"thread {loop.get('loop_thread')}, {loop.get('usable_bursts')} burst(s) of {loop.get('method')}"]
    if loop.get("off_selector_seconds"):
        lines.append(f"never in its selector for {loop['off_selector_seconds']} s ({loop.get('off_selector_samples')} "
                     "samples)" + (f", wanting {loop['loop_demand']} core" if loop.get("loop_demand") is not None
                                   else ""))
        for key, label in (("same_call", "blocked in"), ("entry_frame", "running"), ("top_frame", "innermost")):
            if loop.get(key):
                lines.append(f"{label}: {loop[key]}")
    else:
        lines.append("reached its selector: the loop turns")
    return lines


def _syscalls_line(watch: dict[str, Any] | None) -> list[str]:
    """What a ptrace watch of the loop thread saw (no counter live): exact, where the samples are not."""
    if not watch:
        return []
    n, seconds, ran = watch.get("selector_calls") or 0, watch.get("seconds") or 0.0, watch.get("ran_seconds")
    if n > 1:
        return [f"ptrace: the loop turned {n} times in {seconds:.2f} s ({n / max(seconds, 1e-3):.0f}/s, epoll_wait)"]
    if n == 1:
        return ["ptrace: the loop thread entered epoll_wait: the loop turns"]
    on_cpu = f", {ran:.2f} s of them on a CPU" if ran is not None else ""
    return [f"ptrace: no epoll_wait in {seconds:.1f} s{on_cpu}: the loop did not turn"]


def _counter_line(counter: dict[str, Any] | None) -> list[str]:
    """The loop's own count of its turns (fix pack): the strongest line there is."""
    if not counter or not counter.get("live"):
        return []
    stall, rate = counter.get("stall_seconds"), counter.get("turns_per_second")
    if stall is not None and stall >= 2:
        return [f"loop-turn counter: the loop turned 0 times in {stall:.0f} s"]
    return [f"loop-turn counter: {rate} turns a second, newest {stall} s ago" if rate is not None
            else f"loop-turn counter: {counter.get('turns')} turns, newest {stall} s ago"]


def cpu_summary(cpu: dict[str, Any]) -> tuple[str, str]:
    """The process and its hottest thread, both measures: CPU time (what it got) and demand (what it
    wanted). One wording for the terminal and the markdown report."""
    hot = cpu.get("hot_thread") or {}
    process = (f"{cpu.get('ratio')} cores of CPU time over {cpu.get('seconds')} s"
               + (f", demand {cpu.get('demand')} cores" if cpu.get("demand") is not None else ""))
    thread = f"hottest thread {hot.get('tid')} ({hot.get('name') or 'unnamed'}) gets {hot.get('ratio')} cores"
    if hot.get("demand") is not None:
        thread += f", wants {hot.get('demand')} (on CPU {hot.get('on_cpu')} + waiting {hot.get('waiting')})"
    return process, thread


def cpu_text(cpu: dict[str, Any]) -> list[str]:
    """Both measures and which one judged, with the per-second figures."""
    has_demand = cpu.get("measure") == "demand"
    judged = ("judged by demand (on CPU + waiting for a CPU, from schedstat)" if has_demand
              else "judged by CPU time (no run-queue data on this system)")
    process, thread = cpu_summary(cpu)
    lines = [f"process: {process}", thread, judged]
    samples = cpu.get("samples", [])
    lines.append("per second, CPU time: " + ", ".join(f"{s['cores']:.2f}" for s in samples))
    if has_demand:
        lines.append("per second, demand: " + ", ".join(f"{s.get('demand') or 0:.2f}" for s in samples))
    return lines


def show(rec: dict[str, Any], out: TextIO | None = None, rich: bool | None = None) -> None:
    out = out or sys.stdout
    rich = out.isatty() if rich is None else rich
    # Command lines, paths and states come from the process and its files: one line each, escapes shown.
    sections = [(title, [one_line(ln) for ln in lines]) for title, lines in _sections(rec)]
    if not rich:
        for title, lines in sections:
            out.write(f"== {title} ==\n" + "".join(f"{ln}\n" for ln in lines) + "\n")
        return
    console = Console(file=out)
    colour = _COLOURS.get(str((rec.get("verdict") or {}).get("signature")), "white")
    for title, lines in sections:
        style = colour if title == "Verdict" else "cyan"
        console.print(Panel(Text("\n".join(lines)), title=title, border_style=style, expand=True))


def table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:
        # Text, not markup: a "[bold]" in a profile name is shown as written; control characters escaped.
        t.add_row(*(Text(one_line(cell)) for cell in r))
    return t


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def deaf_line(d: dict[str, Any]) -> str:
    """Descriptors, CLOSE_WAIT sockets and RSS growth (observe/deaf.py), when the daemon read them."""
    parts = []
    fds, limit = _num(d.get("fds_open")), _num(d.get("fd_limit"))
    if fds is not None:
        parts.append(f"{fds:.0f} descriptors open" + (f" of {limit:.0f} ({fds / limit:.0%})" if limit else ""))
    cw, oldest = _num(d.get("close_wait")), _num(d.get("close_wait_oldest_seconds"))
    if cw is not None:
        parts.append(f"{cw:.0f} TCP socket(s) in CLOSE_WAIT" + (f" (oldest {oldest:.0f} s)" if cw and oldest else ""))
    rate = _num(d.get("rss_growth_bytes_per_hour"))
    if rate is not None:
        parts.append(f"RSS {'+' if rate >= 0 else '-'}{abs(rate) / (1 << 20):.0f} MiB/h")
    workers, busy = _num(d.get("agent_workers")), _num(d.get("agent_workers_busy"))
    if workers is not None and busy is not None:
        parts.append(f"{busy:.0f} of {workers:.0f} agent workers busy")
    return "; ".join(parts)
