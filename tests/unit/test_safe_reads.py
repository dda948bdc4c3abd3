"""Issue 20 item 2: every file read in the rooms that touch a user's home goes through the safe reader
(observe/statefile.py: regular files only, O_NOFOLLOW, non-blocking, bounded). A plain ``read_text()`` or
``open()`` there can hang on a FIFO or follow a link; a deliberate one says why with ``# safe:``."""

from __future__ import annotations

import re
from pathlib import Path

import hermes_watchdog

ROOMS = ("observe", "record", "daemon", "judge", "act")
PLAIN = re.compile(r"\.read_text\(|\.read_bytes\(\)|(?:^|[\s(=,])open\(|\.open\(")
ALLOWED = ("/proc/", "# safe:", "os.open(", "tempfile.")


def test_no_plain_read_bypasses_the_safe_reader() -> None:
    package = Path(hermes_watchdog.__file__).parent
    found = []
    for room in ROOMS:
        for path in sorted((package / room).rglob("*.py")):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                code = line.split("#", 1)[0] if "# safe:" not in line else line
                if PLAIN.search(code) and not any(a in line for a in ALLOWED):
                    found.append(f"{path.relative_to(package)}:{n}: {line.strip()}")
    assert not found, "plain reads outside the safe reader:\n" + "\n".join(found)
    # The walker itself must see what it looks for (a check that cannot fail is no check).
    assert PLAIN.search('x = Path(p).read_text()') and PLAIN.search('with open(p) as f:')
