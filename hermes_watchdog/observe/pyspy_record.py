"""Bursts of ``py-spy record`` against a live process, turned into loop-thread findings.

One ``record`` run samples every thread ``RATE`` times a second for a few seconds at the cost of one
py-spy start (about 0.03 s of CPU), where repeated ``dump`` calls would pay that start per sample.
``--idle`` keeps threads that sleep (a loop in ``epoll`` is exactly what must be seen), ``--nonblocking``
never pauses the gateway, ``--threads`` names the native thread of each stack. Never ``--locals``.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable

from hermes_watchdog.facts.loop_samples import RATE, Burst, StackSample, classify
from hermes_watchdog.facts.stacks import Frame
from hermes_watchdog.observe.pyspy import _classify_failure, find_py_spy

METHOD = "py-spy record"
_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_THREAD = re.compile(r"^thread \((?P<tid>0[xX][0-9a-fA-F]+|\d+)\)(?::\s*(?P<name>.*))?$")
_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def parse_raw(lines: Iterable[str]) -> list[StackSample]:
    """Collapsed stacks (``thread (tid): name;outer (file:line);...;inner (file:line) COUNT``), outermost
    first as py-spy writes them, into samples with frames innermost first. Unreadable lines are skipped."""
    out: list[StackSample] = []
    for raw in lines:
        m = _LINE.match(raw.rstrip("\n"))
        if not m:
            continue
        parts = m["stack"].split(";")
        tid, name = None, None
        if parts:
            head = _THREAD.match(parts[0])
            if head:
                tid = int(head["tid"], 0) if head["tid"].lower().startswith("0x") else int(head["tid"])
                # "thread (123): MainThread" puts the thread's name before the first frame's ';'
                name = head["name"]
                parts = parts[1:]
            elif parts[0].startswith("process "):
                parts = parts[1:]
        frames = []
        for p in parts:
            fm = _FRAME.match(p.strip())
            if fm:
                frames.append(Frame(fm["fn"], fm["file"], int(fm["line"] or 0)))
            elif p.strip():
                frames.append(Frame(p.strip(), "?", 0))
        frames.reverse()
        out.append(StackSample(tid, tuple(frames), int(m["count"]), name))
    return out


def burst(pid: int, seconds: int, main_tid: int | None = None, binary: str | None = None,
          rate: int = RATE, stop: threading.Event | None = None) -> Burst:
    """Sample ``pid`` for ``seconds`` at ``rate`` Hz and classify its loop thread. Blocks for about
    ``seconds``."""
    binary = binary or find_py_spy()
    start = time.monotonic()
    if binary is None:
        return Burst(start, start, METHOD, error="py-spy not found",
                     hint="pip install py-spy (it is a dependency of hermes-watchdog)")
    with tempfile.TemporaryDirectory(prefix="hermes-watchdog-") as tmp:  # 0700: stacks stay private
        out = os.path.join(tmp, "stacks.txt")
        argv = [binary, "record", "--pid", str(pid), "--rate", str(rate), "--duration", str(max(1, seconds)),
                "--idle", "--nonblocking", "--threads", "--format", "raw", "--output", out]
        env = dict(os.environ, RUST_BACKTRACE="0", RUST_LIB_BACKTRACE="0")
        err_path = os.path.join(tmp, "stderr.txt")
        try:
            with open(err_path, "w") as err:  # safe: our own 0700 temp dir
                proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env)
        except OSError as exc:
            return Burst(start, time.monotonic(), METHOD, error=f"py-spy could not run: {exc.strerror or exc}")
        deadline = start + seconds + 30
        while proc.poll() is None:
            if (stop is not None and stop.wait(0.1)) or time.monotonic() > deadline:
                # Asked to stop (the daemon is ending), or py-spy hangs: end it, leave nothing behind.
                proc.kill()
                proc.wait()
                return Burst(start, time.monotonic(), METHOD, error="stopped" if stop is not None and
                             stop.is_set() else f"py-spy record did not end within {seconds + 30} s")
            if stop is None:
                time.sleep(0.1)
        end = time.monotonic()
        if proc.returncode != 0 or not os.path.exists(out):
            with open(err_path, encoding="utf-8", errors="replace") as f:  # safe: our own 0700 temp dir
                reason, hint = _classify_failure(f.read())
            return Burst(start, end, METHOD, error=reason, hint=hint)
        with open(out, encoding="utf-8", errors="replace") as f:  # safe: our own 0700 temp dir
            samples = parse_raw(f)
    return classify(samples, start, end, METHOD, main_tid, rate=rate)
