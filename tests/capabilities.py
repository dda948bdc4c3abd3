"""The capabilities a CI run must prove, and which skips hide them (issue 23: no silent skips in CI).

Locally a test of a capability may skip, saying why (no root, no s6, registry unreachable). Under ``CI=true``
conftest turns such a skip into a failure naming what is missing, so a green CI run has really driven the
real systemd, s6, promtool and Hermes releases. Pure: conftest hands in plain data.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

CAPABILITIES = {
    "systemd": "a real `systemd --user` for the test user and systemd-analyze (apt-get install systemd; root)",
    "user-install": "the package installed for the ordinary test user (pip --target, tests/usermode.py)",
    "s6": "s6 (s6-svscan, s6-supervise, s6-svc: apt-get install s6)",
    "promtool": "Prometheus' promtool (apt-get install prometheus)",
    "real-hermes": "the real hermes-agent releases from PyPI (tests/realhermes/venvs.py)",
}
# A test that uses one of these fixtures, or lives in one of these files, is a test of that capability: any
# skip of it hides the capability.
FIXTURES = {"systemd_user": "systemd", "user_site": "user-install", "real_gateway": "real-hermes"}
FILES = {"test_real_systemd.py": "systemd", "test_real_s6.py": "s6", "test_promtool.py": "promtool",
         "test_real_hermes.py": "real-hermes", "test_real_gateway.py": "real-hermes"}
# A skip raised from these helpers is one of that capability, whichever test called them.
SOURCES = {"realhermes/venvs.py": "real-hermes", "tests/usermode.py": "user-install"}


def ci_strict(env: dict[str, str] | None = None) -> bool:
    return (env if env is not None else os.environ).get("CI", "").strip().lower() in {"true", "1", "yes"}


def capabilities_of(file_name: str, fixtures: Iterable[str], marked: Iterable[str]) -> set[str]:
    """What a test proves: by its file, its fixtures and its ``capability`` markers."""
    caps = {FIXTURES[f] for f in fixtures if f in FIXTURES} | set(marked)
    if file_name in FILES:
        caps.add(FILES[file_name])
    return caps


def ci_failure(caps: set[str], raised_in: Iterable[str], reason: str) -> str | None:
    """The failure to report instead of a skip under CI=true, or None when the skip hides no capability.
    ``raised_in``: the files of the frames the skip passed through."""
    paths = [p.replace("\\", "/") for p in raised_in]
    hidden = set(caps) | {cap for src, cap in SOURCES.items() if any(p.endswith(src) for p in paths)}
    if not hidden:
        return None
    what = "; ".join(f"{c}: {CAPABILITIES.get(c, c)}" for c in sorted(hidden))
    return f"CI=true: a test of a capability CI must prove was skipped ({what}). The skip said: {reason}"
