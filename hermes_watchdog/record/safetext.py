"""Text from disk or from another process, made safe to show on one line of a terminal or a log.

A profile folder name, a command line or a path can hold a newline (a forged event line), an ESC (raw
terminal escapes) or bytes that are not UTF-8 (surrogates that cannot be written out). Each such
character is shown as its Python escape instead: ``\\n``, ``\\x1b``, ``\\udcff``.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls, lone surrogates (undecodable bytes), and the Unicode line separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")


def _escape(m: re.Match[str]) -> str:
    return m.group().encode("unicode_escape", errors="backslashreplace").decode("ascii")


def one_line(text: object) -> str:
    """``text`` as a string with every control character, separator and surrogate escaped."""
    s = text if isinstance(text, str) else str(text)
    return _UNSAFE.sub(_escape, s)
