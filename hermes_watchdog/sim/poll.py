"""Polling for a condition instead of sleeping: the one helper the demo, the tests and bench/ share."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def poll(cond: Callable[[], Any], timeout: float, step: float = 0.05) -> Any:
    """``cond()``'s first truthy value, checked every ``step`` seconds; None once ``timeout`` passed.
    ``cond`` is tried once more at the deadline, so a slow machine never loses a last chance."""
    end = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= end:
            return None
        time.sleep(step)
