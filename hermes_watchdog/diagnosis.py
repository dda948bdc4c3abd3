"""One diagnosis of one process: observe (identity, files, CPU, stack) -> judge -> a record.

``run`` reuses these steps for its incidents; ``diagnose`` is this module plus output.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from hermes_watchdog.errors import UserError
from hermes_watchdog.facts.cpu import CpuSnapshot
from hermes_watchdog.facts.identity import Identity
from hermes_watchdog.facts.loop_samples import Burst
from hermes_watchdog.facts.readings import DEFAULT_STALE_AFTER, Heartbeat, HeartbeatSeen, TurnSample
from hermes_watchdog.facts.stacks import Dump, StackAnalysis
from hermes_watchdog.facts.threads import summary as workers_summary
from hermes_watchdog.facts.threads import workers_sample
from hermes_watchdog.judge import known_issues
from hermes_watchdog.judge.cpu import CpuUsage, ThreadUsage, usage
from hermes_watchdog.judge.families import Recognised, recognise_clues
from hermes_watchdog.judge.loop import findings as loop_findings
from hermes_watchdog.judge.signatures import judge
from hermes_watchdog.judge.turns import findings as turn_findings
from hermes_watchdog.judge.verdict import Memory, Seen, StateSeen, Thresholds, Verdict
from hermes_watchdog.observe import (
    discovery,
    heartbeat,
    logs,
    looptick,
    processes,
    pyspy_record,
    release,
    sampler,
    stack_capture,
    syscalls,
    upstream,
    versions,
)
from hermes_watchdog.observe.deaf import DeafTracker
from hermes_watchdog.observe.discovery import FilesSeen, HomeChoice
from hermes_watchdog.observe.loop_turns import TurnReader
from hermes_watchdog.observe.statefile import state_to_dict
from hermes_watchdog.record.redact import redact, redact_obj
from hermes_watchdog.timefmt import iso

WATCH_TURNS = 50  # loop turns counted through ptrace at most, where no counter is live


@dataclass(frozen=True)
class Diagnosis:
    ident: Identity
    home: HomeChoice
    files: FilesSeen
    snapshots: tuple[CpuSnapshot, ...]
    usage: CpuUsage | None
    hot_name: str | None
    stack: StackAnalysis
    verdict: Verdict
    thresholds: Thresholds
    env: dict[str, str | None]
    log_tail: str
    taken_at: float
    heartbeat: dict[str, Any] | None = None  # Hermes >= 0.19 only; None when there is no heartbeat file
    release: Recognised | None = None  # the Hermes release family, and what it was recognised from
    deaf: dict[str, Any] | None = None  # descriptors, CLOSE_WAIT sockets, RSS growth (observe/deaf.py)


def open_process(pid: int) -> tuple[psutil.Process, Identity]:
    """The process and its identity, or a UserError that says in one line what is wrong."""
    is_python, what = processes.python_kind(pid)
    if is_python is False:
        hint = "; diagnose reads Python processes such as the Hermes gateway" if "Python" in what else ""
        raise UserError(f"PID {pid} {what}{hint}")
    try:
        ident = processes.identity(pid)
        with processes.inspecting(pid):
            proc = psutil.Process(pid)
            proc.cpu_times()
    except processes.ProcessGone:
        raise UserError(f"no process with PID {pid}") from None
    except processes.ProcessHidden:
        raise UserError(f"cannot inspect PID {pid}: permission denied (run as the process's user, "
                        "or with sudo)") from None
    return proc, ident


def sample(proc: psutil.Process, seconds: float, every: float = 1.0) -> tuple[CpuSnapshot, ...]:
    """Snapshots from now for ``seconds``, one every ``every`` seconds (at least start and end)."""
    step = min(every, seconds)
    start = time.monotonic()
    try:
        snaps = [sampler.snapshot(proc)]
    except processes.ProcessGone:
        raise UserError(f"PID {proc.pid} exited before the sample") from None
    while True:
        target = start + min(seconds, (len(snaps)) * step)
        time.sleep(max(0.0, target - time.monotonic()))
        try:
            snaps.append(sampler.snapshot(proc))
        except processes.ProcessGone:
            raise UserError(f"PID {proc.pid} exited during the sample") from None
        if snaps[-1].at - start >= seconds - 1e-3:
            return tuple(snaps)


def hot_thread_name(pid: int, cpu: CpuUsage | None, stack: StackAnalysis) -> str | None:
    if cpu is None or cpu.hot is None:
        return None
    for t in stack.all_threads:
        if t.os_tid == cpu.hot.tid and t.name:
            return t.name
    return sampler.thread_name(pid, cpu.hot.tid)


def environment(ident: Identity, proc_env: dict[str, str] | None, stack: StackAnalysis,
                home: Path | None = None) -> dict[str, str | None]:
    from hermes_watchdog.patches.installer import report_line

    frame_files = tuple(f.file for t in stack.all_threads for f in t.frames)
    sps = versions.candidate_site_packages(ident.cmdline, ident.exe, proc_env, frame_files)
    label, hermes = versions.hermes_label(sps, versions.checkout_roots(ident.cmdline, ident.exe, proc_env,
                                                                      frame_files), home)
    return {**versions.host(), "hermes": label, "target_python": versions.python_version_of(sps, ident.exe),
            "qqbot_fix": report_line(sps, hermes, home, ident.pid)}


def diagnose(pid: int, seconds: float, hermes_home: Path | None, thresholds: Thresholds | None = None,
             with_logs: bool = True, frozen_after: float = DEFAULT_STALE_AFTER,
             stack_dumps: int = 5, stack_time: float = 10.0, stack_with: str = "auto") -> Diagnosis:
    # One sample of a few seconds is all there is: the loop's stack proves starvation over most of it. A
    # block is loop-frozen only if it lasts --frozen-after (as for `run`): the sample must cover that.
    th = thresholds or Thresholds(proof=min(Thresholds.proof, 0.8 * seconds),
                                  frozen_after=0.8 * frozen_after if frozen_after <= seconds else frozen_after)
    proc, ident = open_process(pid)
    proc_env = processes.environ(pid)
    home = discovery.home_for_pid(pid, hermes_home, proc_env, cmdline=ident.cmdline)
    before = discovery.read_files(home.home, ident)
    # The loop-turn counter (fix pack), read before and after the sample: how often the loop turned.
    counter = TurnReader(ident, home.home) if home.home else None
    turns: list[TurnSample] = [t for t in [counter.sample() if counter else None] if t is not None]
    # The loop's stack, sampled densely for the same seconds as the CPU (py-spy record runs beside).
    bursts: list[Burst] = []
    recorder = threading.Thread(target=lambda: bursts.append(pyspy_record.burst(pid, max(1, round(seconds)), pid)),
                                daemon=True)
    recorder.start()
    # Descriptors and CLOSE_WAIT sockets before and after the sample: a socket half-closed at both reads
    # has been so for the whole sample at least (a few seconds: rarely a verdict, always evidence).
    deaf = DeafTracker()
    deaf.observe(pid, time.monotonic(), None, th.deaf, seconds)
    snaps = sample(proc, seconds)
    deaf.observe(pid, time.monotonic(), None, th.deaf, seconds, force=True)
    deaf.classify_now(pid)
    if counter is not None:
        turns += [t for t in [counter.sample()] if t is not None]
        counter.close()
    recorder.join(seconds + 35)
    cpu = usage(snaps)
    loop = loop_findings(bursts, snaps)
    counted = turn_findings(turns, snaps)
    watch = None
    if (counted is None or not counted.live) and loop.loop_tid is not None and stack_with in ("auto", "py-spy"):
        # No counter: count the loop's turns through ptrace instead, up to WATCH_TURNS of them (a busy loop
        # is stopped that many times, for microseconds each) or a second after the first; a loop that makes
        # none is watched until it ran half a second on a CPU (5 s at most, on a loaded machine).
        watch, _ = syscalls.probe(ident, loop.loop_tid, want=WATCH_TURNS, count_for=1.0)
    stack = stack_capture.choose(stack_with).capture(ident, home.home, cpu.hot.tid if cpu and cpu.hot else None,
                                                     count=stack_dumps, spread=min(1.0, stack_time / 2),
                                                     time_limit=stack_time)
    after = discovery.read_files(home.home, ident)
    states = [StateSeen(f.state, f.state_matches, f.state_note) for f in (before, after)]
    now = time.time()
    beat = heartbeat.read(home.home) if home.home else None
    hb, hb_note = heartbeat.assess(beat, pid, now, frozen_after, ident.create_time)
    tick = looptick.probe(home.home, pid, ident.uid) if home.home else None
    frame_files = tuple(f.file for t in stack.all_threads for f in t.frames)
    rel = recognise_clues(
        release.read(home.home, ident, proc_env, hb.keys if hb is not None else None, frame_files))
    seen = Seen(stack=stack, loop=loop, heartbeat=hb, tick=tick, syscalls=watch,
                syscall_turned=watch.turned_at if watch is not None else None,
                memory=Memory(tuple((s.at, s.rss) for s in snaps if s.rss is not None)),
                age=max(0.0, now - ident.create_time), upstream=upstream.read(home.home) if home.home else None,
                mono=time.monotonic(), release=rel, deaf=deaf.seen(time.monotonic()),
                turns=counted)
    verdict = judge(cpu, states, None, th, now=now, seen=seen)
    return Diagnosis(
        ident=ident, home=home, files=after, snapshots=snaps, usage=cpu,
        hot_name=hot_thread_name(pid, cpu, stack), stack=stack, verdict=verdict, thresholds=th,
        env=environment(ident, proc_env, stack, home.home),
        log_tail=logs.gateway_tail(home.home) if with_logs else "", taken_at=time.time(),
        heartbeat=heartbeat_dict(beat, hb, hb_note), release=rel, deaf={**deaf.summary(), **_workers(stack, after)},
    )


def _workers(stack: StackAnalysis, files: discovery.FilesSeen) -> dict[str, int | None]:
    """The agent pool in the dump the stack analysis kept (facts/threads.py): one look, no verdict (that
    needs --workers-busy-after of them), but "10 of 10 agent workers busy" is what a bug report needs."""
    if not stack.all_threads:
        return {}
    active = files.state.active_agents if files.state.ok and files.state_matches else None
    return workers_summary([workers_sample(Dump(stack.all_threads), time.monotonic(), active)])


def heartbeat_dict(beat: Heartbeat | None, seen: HeartbeatSeen | None,
                   note: str | None) -> dict[str, Any] | None:
    if beat is None:
        return None
    return {"path": beat.path, "pid": beat.pid, "updated_at": iso(beat.updated_at) if beat.updated_at else None,
            **(seen.to_dict() if seen else {}), "note": note}


def cpu_dict(cpu: CpuUsage | None, hot_name: str | None, snaps: tuple[CpuSnapshot, ...]) -> dict[str, Any]:
    """Both measures: ``ratio``/``cores`` is CPU time (what the process got), ``demand`` is on CPU plus
    waiting on a run queue (what it wanted; None without schedstat); ``measure`` says which judged."""
    if cpu is None:
        return {"ratio": None, "seconds": 0, "hot_thread": None, "threads": [], "samples": [],
                "measure": None, "demand": None}
    hot = cpu.hot
    demand_at = dict(cpu.demand_intervals)
    return {
        "ratio": round(cpu.cores, 3),
        "seconds": round(cpu.span, 2),
        "measure": cpu.measure,
        "demand": rounded(cpu.demand),
        "pegged_value": round(cpu.pegged_value, 3),
        "num_threads": len(snaps[-1].threads) if snaps else 0,
        "hot_thread": {"tid": hot.tid, "name": hot_name, **_thread(hot)} if hot else None,
        "threads": [{"tid": t.tid, **_thread(t)} for t in cpu.threads[:10]],
        "samples": [{"t": t, "cores": round(c, 3), "demand": rounded(demand_at.get(t))} for t, c in cpu.intervals],
    }


def rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _thread(t: ThreadUsage) -> dict[str, Any]:
    return {"ratio": round(t.cores, 3), "demand": rounded(t.demand), "on_cpu": rounded(t.on_cpu),
            "waiting": rounded(t.waiting)}


def files_dict(files: FilesSeen) -> tuple[dict[str, Any], dict[str, Any]]:
    state = {**state_to_dict(files.state), "matches_process": files.state_matches, "match_note": files.state_note}
    pid_file = {
        "path": files.pid_record.read.path, "status": files.pid_record.read.status,
        "problem": files.pid_record.read.problem, "pid": files.pid_record.pid,
        "matches_process": files.pid_matches, "match_note": files.pid_note,
    }
    return state, pid_file


def base_record(ident: Identity, home: dict[str, Any], cpu: dict[str, Any], files: FilesSeen, stack: StackAnalysis,
                verdict: Verdict, versions: dict[str, str | None], taken_at: float,
                heartbeat: dict[str, Any] | None = None, release: Recognised | None = None) -> dict[str, Any]:
    """The record ``diagnose`` prints and saves and every incident starts from: one builder for both,
    not yet redacted (the daemon keeps identities unredacted for its own use)."""
    state, pid_file = files_dict(files)
    return {
        "pid": ident.pid,
        "taken_at": iso(taken_at),
        "process": {
            "cmdline": list(ident.cmdline),
            "exe": ident.exe,
            "username": ident.username,
            "started_at": iso(ident.create_time),
            "create_time": ident.create_time,
            "looks_like_gateway": processes.looks_like_gateway(ident.cmdline),
        },
        "hermes_home": home,
        "cpu": cpu,
        "state": state,
        "pid_file": pid_file,
        "stack": stack.to_dict(),
        "verdict": verdict.to_dict(),
        "versions": versions,
        **({"heartbeat": heartbeat} if heartbeat else {}),
        **({"release": release.to_dict()} if release else {}),
    }


def record(d: Diagnosis) -> dict[str, Any]:
    home = {"path": str(d.home.home) if d.home.home else None, "source": d.home.source, "profile": d.home.profile}
    rec = base_record(d.ident, home, cpu_dict(d.usage, d.hot_name, d.snapshots), d.files, d.stack, d.verdict,
                      d.env, d.taken_at, d.heartbeat, d.release)
    rec["thresholds"] = {"cpu": d.thresholds.cpu, "stuck_after_seconds": d.thresholds.stuck_after}
    if d.deaf is not None:
        rec["deaf"] = d.deaf
    rec["known_issues"] = known_issues.from_record(rec)
    return rec


def public(rec: dict[str, Any]) -> dict[str, Any]:
    """What may be shown or pasted anywhere: every string through the redactor, home as ~."""
    return redact_obj(rec, str(Path.home()))


def public_text(text: str) -> str:
    return redact(text, str(Path.home()))
