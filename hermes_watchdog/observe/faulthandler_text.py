"""Parse Python's faulthandler text into the same ``Dump``s py-spy gives. Pure: text in, dumps out.

faulthandler writes, for every thread, innermost call first::

    Thread 0x00007f3a1b2c3700 (most recent call first):
      File "/path/adapter.py", line 654 in _read_events
      File "/path/adapter.py", line 492 in _listen_loop

    Current thread 0x00007f3a1c4d5740 (most recent call first):
      ...

(``Stack (most recent call first):`` for one thread; newer Pythons may put ``[name]`` after the id). A
fatal signal's dump starts with ``Fatal Python error: Aborted``. Thread ids are ``threading.get_ident()``
values, not native ids: the main thread is known by the id the hook recorded when it was armed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hermes_watchdog.facts.stacks import Dump, Frame, ThreadStack

_HEADER = re.compile(r"^(?P<current>Current thread|Thread) (?P<ident>0x[0-9a-fA-F]+)(?: \[(?P<name>[^\]]*)\])?"
                     r" \(most recent call first\):\s*$")
_SINGLE = re.compile(r"^Stack \(most recent call first\):\s*$")
_FRAME = re.compile(r'^\s+File "(?P<file>.*)", line (?P<line>\d+|\?\?\?) in (?P<func>.+?)\s*$')
FATAL = re.compile(r"^Fatal Python error: (?P<what>.+?)\s*$")


@dataclass
class _Thread:
    ident: int | None
    name: str | None
    current: bool
    frames: list[Frame]


def _to_stack(t: _Thread, main_ident: int | None, main_tid: int | None, last: bool) -> ThreadStack:
    # Without the hook's record of the main thread's id: CPython lists threads newest first, so the main
    # thread, the oldest, comes last.
    main = (t.ident is not None and t.ident == main_ident) or (main_ident is None and last)
    return ThreadStack(os_tid=main_tid if main else None, name=t.name or ("MainThread" if main else None),
                       active=False, owns_gil=False, frames=tuple(t.frames))


def parse(text: str, *, main_ident: int | None = None, main_tid: int | None = None) -> list[Dump]:
    """Every dump in ``text``, oldest first. A new dump starts at a ``Fatal Python error`` line, at a
    one-thread ``Stack`` header, or where a thread id seen in the current dump appears again (one signal
    writes each thread once). ``main_ident`` names the main thread and gives it ``main_tid``, its native
    id, so the analysis can match it to the hottest thread; without it the last thread listed is the main one."""
    dumps: list[list[_Thread]] = []
    current: list[_Thread] | None = None
    idents: set[int | None] = set()  # of the current dump: a set, so a crafted file of headers stays linear
    thread: _Thread | None = None
    for raw in text.splitlines():
        line = raw.rstrip("\n")
        header = _HEADER.match(line)
        if header or _SINGLE.match(line) or FATAL.match(line):
            ident = int(header.group("ident"), 16) if header else None
            starts_new = current is None or not header or ident in idents
            if starts_new and (current is None or current):
                current = []
                idents = set()
                dumps.append(current)
            assert current is not None
            if header or _SINGLE.match(line):
                thread = _Thread(ident, header.group("name") if header else None,
                                 bool(header and header.group("current")), [])
                current.append(thread)
                idents.add(ident)
            else:
                thread = None
            continue
        frame = _FRAME.match(line)
        if frame and thread is not None:
            n = frame.group("line")
            thread.frames.append(Frame(frame.group("func"), frame.group("file"), int(n) if n.isdigit() else 0))
        elif not line.strip():
            thread = None  # a blank line ends a thread's block
    return [Dump(tuple(_to_stack(t, main_ident, main_tid, i == len(d) - 1) for i, t in enumerate(d)))
            for d in dumps if d]


def last_fatal(text: str) -> str | None:
    """The text of the last ``Fatal Python error`` dump in ``text`` (a stderr log), or None."""
    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if FATAL.match(lines[i]):
            return "\n".join(lines[i:]) + "\n"
    return None
