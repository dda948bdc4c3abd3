"""Secret redaction for everything that leaves the machine in a report. Pure: text in, text out.

Hermes logs and state can carry QQ client secrets, bot tokens, API keys and access tokens. Reports are
meant to be pasted into public bug trackers, so the rules err towards redacting too much.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

MASK = "[REDACTED]"

# A key whose value is secret: FOO_SECRET, api_key, access-token, DB_PASSWORD, "client_secret", ...
_SECRET_KEY = r"[A-Za-z0-9_.\-]*(?:secret|token|key|password|passwd|pwd|credential|auth)[A-Za-z0-9_.\-]*"
_SECRET_KEY_RE = re.compile(rf"^{_SECRET_KEY}$", re.IGNORECASE)

# KEY = value / KEY: value / "KEY": "value" / KEY="value"; the value is a quoted string or one bare word.
_ASSIGNMENT_RE = re.compile(
    rf"""(?P<key>["']?\b{_SECRET_KEY}["']?)(?P<sep>\s*[:=]\s*)(?!["']?\[REDACTED\])"""
    r"""(?P<value>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|[^\s"',;&)}\]]+)""",
    re.IGNORECASE,
)
# Authorization: <anything to the end of the line>, also as a dict entry in a repr.
_AUTH_HEADER_RE = re.compile(
    r"""(?P<key>["']?(?:proxy-)?authorization["']?\s*[:=]\s*)(?P<value>"[^"\n]*"|'[^'\n]*'|[^\n]+)""",
    re.IGNORECASE,
)
_SCHEME_RE = re.compile(r"\b(?P<scheme>Bearer|QQBot|Bot|Basic|Token)\s+(?P<value>[A-Za-z0-9._~+/=\-]{6,})")
_URL_PARAM_RE = re.compile(
    r"(?P<key>[?&;](?:access_token|token|key|api_key|apikey|secret|client_secret|signature|sig|password"
    r"|auth|code)=)(?P<value>[^&\s\"'#]+)",
    re.IGNORECASE,
)
_URL_USERINFO_RE = re.compile(r"(?P<key>\b[a-z][a-z0-9+.\-]*://[^/\s:@]+:)(?P<value>[^@\s/]+)@", re.IGNORECASE)
_SHAPES: tuple[re.Pattern[str], ...] = (
    re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"),  # OpenAI / Anthropic style keys
    re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}"),  # Google API keys
    re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),  # Slack tokens
    re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}|\bgithub_pat_[A-Za-z0-9_]{20,}"),  # GitHub
    re.compile(r"\b(?:bot)?\d{6,12}:[A-Za-z0-9_\-]{30,}"),  # Telegram bot tokens, also inside /bot<token>/
    re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"),  # JWTs
)
_LONG_HEX_RE = re.compile(r"\b[0-9a-fA-F]{32,}\b")
_LONG_B64_RE = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{40,}={0,2}")


def _mixed(run: str) -> bool:
    return any(c.isdigit() for c in run) and any(c.isupper() for c in run) and any(c.islower() for c in run)


def _looks_random(run: str) -> bool:
    """A long run is a credential when it mixes cases and digits; paths and identifiers rarely do.
    A run with '/' is a path unless it is plain base64 (no '-' or '_') with a long mixed segment."""
    if "/" in run:
        if run.startswith("/") or "-" in run or "_" in run:
            return False
        return any(len(seg) >= 16 and _mixed(seg) for seg in run.split("/"))
    return _mixed(run)


def _mask_value(value: str) -> str:
    if value[:1] in {'"', "'"} and value[-1:] == value[:1] and len(value) >= 2:
        return f"{value[0]}{MASK}{value[0]}"
    return MASK


def _sub_assignment(m: re.Match[str]) -> str:
    value = m.group("value")
    if value.strip("\"'") == "":
        return m.group(0)
    return f"{m.group('key')}{m.group('sep')}{_mask_value(value)}"


_RULES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (_AUTH_HEADER_RE, lambda m: f"{m.group('key')}{_mask_value(m.group('value').strip())}"),
    (_SCHEME_RE, lambda m: f"{m.group('scheme')} {MASK}"),
    (_URL_PARAM_RE, lambda m: f"{m.group('key')}{MASK}"),
    (_URL_USERINFO_RE, lambda m: f"{m.group('key')}{MASK}@"),
    (_ASSIGNMENT_RE, _sub_assignment),
    *((shape, lambda m: MASK) for shape in _SHAPES),
    (_LONG_HEX_RE, lambda m: MASK),
    (_LONG_B64_RE, lambda m: MASK if _looks_random(m.group(0)) else m.group(0)),
)


def redact(text: str, home: str | None = None) -> str:
    """Return ``text`` with secrets masked and the home directory shown as ``~``."""
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)
    if home and home not in {"/", ""}:
        home = home.rstrip("/")
        text = re.sub(rf"{re.escape(home)}(?=/|\b|$)", "~", text)
    return text


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY_RE.match(key))


def redact_obj(obj: Any, home: str | None = None) -> Any:
    """Redact every string in a JSON-like structure; values under secret-looking keys are masked whole."""
    if isinstance(obj, dict):
        out: dict[Any, Any] = {}
        for k, v in obj.items():
            key = redact(k, home) if isinstance(k, str) else k
            if isinstance(k, str) and is_secret_key(k) and isinstance(v, str | int | float) and v != "":
                out[key] = MASK
            else:
                out[key] = redact_obj(v, home)
        return out
    if isinstance(obj, list | tuple):
        return [redact_obj(v, home) for v in obj]
    if isinstance(obj, str):
        return redact(obj, home)
    return obj
