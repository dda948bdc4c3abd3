"""JSON for other programs to parse: strict (RFC 8259), whatever the files we read held.

Python's ``json`` writes ``NaN`` and ``Infinity``, which strict parsers (jq, JavaScript's JSON.parse, Go)
reject; a crafted state file can carry them into ``status --json``. Non-finite numbers become ``null``;
text stays ASCII-escaped, so an undecodable name (a lone surrogate) is an escape, never an encoding error.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite(value: Any) -> Any:
    """``value`` with every non-finite float (at any depth) replaced by None; tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def dumps(value: Any, indent: int | None = None) -> str:
    return json.dumps(finite(value), indent=indent, allow_nan=False, default=str)
