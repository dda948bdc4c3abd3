"""How Hermes names its services for a HERMES_HOME (hermes_cli/gateway.py, _profile_suffix): no suffix
for ~/.hermes, the profile name for ~/.hermes/profiles/<name>, else the first 8 hex digits of the
SHA-256 of the resolved home path."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

_PROFILE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def suffixes(home: Path, user_home: Path | None = None) -> list[str]:
    """Likely suffixes, most likely first ("" means none). A home outside ~/.hermes is ambiguous
    (Hermes treats it as its own root in Docker-style setups), so both readings are offered."""
    root = ((user_home or Path.home()) / ".hermes").resolve()
    try:
        resolved = home.expanduser().resolve()
    except OSError:
        resolved = home
    if resolved == root:
        return [""]
    try:
        rel = resolved.relative_to(root / "profiles")
        if len(rel.parts) == 1 and _PROFILE_NAME.match(rel.parts[0]):
            return [rel.parts[0]]
    except ValueError:
        pass
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:8]
    if resolved.parent.name == "profiles" and _PROFILE_NAME.match(resolved.name):
        return [resolved.name, digest, ""]
    return [digest, ""]
