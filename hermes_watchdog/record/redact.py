"""Secret redaction for everything that leaves the machine in a report. Pure: text in, text out.

Hermes logs and state can carry QQ client secrets, bot tokens, API keys and access tokens. Reports are
meant to be pasted into public bug trackers, so the rules err towards redacting too much, but keep what a
bug report needs: source ``file.py:123``, timestamps, identifiers, paths and prose about tokens.

The token shapes follow gitleaks' default rules (github.com/gitleaks/gitleaks, config/gitleaks.toml).
Every pattern is linear: no nested quantifiers, bounded or disjoint repeats, so a 512 KiB log stays cheap.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

MASK = "[REDACTED]"
_MAX_PASSES = 3

_WORDS = r"secret|token|key|password|passwd|pwd|credential|auth|cookie|sessionid"
# A key whose value is secret: FOO_SECRET, api_key, access-token, DB_PASSWORD, "client_secret", Cookie, ...
_SECRET_KEY_RE = re.compile(rf"^[A-Za-z0-9_.\-]*(?:{_WORDS})[A-Za-z0-9_.\-]*$", re.IGNORECASE)
_SECRET_WORD_RE = re.compile(_WORDS, re.IGNORECASE)
# Keys whose value may hold spaces: the value runs to the end of the line (or the closing JSON quote).
_LINE_VALUE_KEY_RE = re.compile(r"passw|passphrase|cookie", re.IGNORECASE)
# `file.py:123` is a place in source code, not `key: value`.
_SOURCE_FILE_RE = re.compile(
    r"\.(?:py[cdiwx]?|pyi|js|mjs|cjs|ts|tsx|go|rs|rb|java|kt|c|cc|cpp|h|hpp|cs|php|swift|lua|sh|pl|so|txt|log"
    r"|json|toml|ya?ml|ini|cfg|conf|md|rst|html)$", re.IGNORECASE)
_LINE_NUMBER_RE = re.compile(r"\d{1,7}(?:[-:]\d{1,7})?")

# KEY = value / KEY: value / "KEY": "value" / KEY="value" / \"KEY\": \"value\" (JSON inside a string).
# Only the key and separator are matched here (any run of key characters); the value is matched by
# _VALUE_RE or _LINE_VALUE_RE from where the separator ends, so a key that is no secret costs nothing.
_KEY_SEP_RE = re.compile(r"""(?<![A-Za-z0-9_.\-])(?P<key>[A-Za-z0-9_.\-]+)(?P<q>\\?["']?)(?P<sep>[ \t]*[:=：][ \t]*)""")
_VALUE_RE = re.compile(
    r"""\\"(?:[^\\\n]|\\[^"\n])*\\"|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|["'][^\n]*|(?:\[REDACTED\]|[^\s"',;&)}\]])+""")
_LINE_VALUE_RE = re.compile(r"""(?:[^\r\n"\\]|\\[^"\r\n])+""")

# Authorization: <anything to the end of the line>, also as a dict entry in a repr.
_AUTH_HEADER_RE = re.compile(
    r"""(?P<key>["']?(?:proxy-)?authorization["']?\s*[:=]\s*)(?P<value>"[^"\n]*"|'[^'\n]*'|[^\n]+)""",
    re.IGNORECASE,
)
_SCHEME_RE = re.compile(r"\b(?P<scheme>Bearer|Basic)\s+(?P<value>[A-Za-z0-9._~+/=\-]{6,})")
# `token X`, `appsecret X`, `QQBot X`: masked only when X looks like a credential, so prose stays.
_WORD_VALUE_RE = re.compile(
    r"(?<![\w-])(?P<word>(?:[A-Za-z]{1,20}[_-])?(?:token|secret|appsecret|password|passwd|passphrase|apikey"
    r"|api[_ -]key|access[_ -]key|bot|qqbot))(?P<sep>\s+)(?P<value>[\w.~+/=\-]{6,})",
    re.IGNORECASE,
)
_DATE_RE = re.compile(r"\d{4}-\d\d-\d\d")
# --token VALUE in a joined command line, also in a list's repr: '--token', 'VALUE'.
# Any flag is matched (the callback checks its name): one greedy run per flag keeps this linear.
_FLAG_VALUE_RE = re.compile(
    r"""(?P<flag>(?<![\w-])--?[A-Za-z0-9_][A-Za-z0-9_\-]*)(?P<sep>["']?,[ \t]*["']|[ \t]+)"""
    r"""(?!\[REDACTED\])(?P<value>[^\s"',\-][^\s"',]*)""")
_URL_PARAM_RE = re.compile(
    r"(?P<key>[?&;](?:access_token|token|key|api_key|apikey|secret|client_secret|signature|sig|password"
    r"|auth|code)=)(?P<value>[^&\s\"'#]+)",
    re.IGNORECASE,
)
# The scheme starts where no scheme character precedes it (not at every \b: that is quadratic on a.a.a.a).
_URL_USERINFO_RE = re.compile(r"(?P<key>(?<![a-z0-9+.\-])[a-z][a-z0-9+.\-]*://[^/\s:@]+:)(?P<value>[^@\s/]+)@",
                              re.IGNORECASE)
# A URL; the callback masks the path of webhook URLs (Slack, Discord, Teams, Feishu, any /hooks/ path).
_URL_RE = re.compile(r"""\b(?P<scheme>https?)://(?P<user>[^\s/?#@"'<>]*@)?(?P<host>[^\s/?#@"'<>]+)"""
                     r"""(?P<rest>[/?#][^\s"'<>]*)""", re.IGNORECASE)
_WHOLE_URL_RE = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.\-]*)://(?P<user>[^/?#@]*@)?(?P<host>[^/?#@]*)(?P<rest>.*)$",
                           re.IGNORECASE | re.DOTALL)
_PRIVATE_KEY_RE = re.compile(
    r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----(?:[^-]|-(?!----END)){0,20000}"
    r"(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----)?")

# Credentials recognisable by their shape alone (after gitleaks' default rules).
_SHAPES: tuple[re.Pattern[str], ...] = (
    re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"),  # OpenAI sk-/sk-proj-, Anthropic sk-ant-
    re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}"),  # Google API keys
    re.compile(r"\bya29\.[0-9A-Za-z_\-]{20,}|\bGOCSPX-[0-9A-Za-z_\-]{20,}"),  # Google OAuth token / client secret
    re.compile(r"\bxox[abposre]-[A-Za-z0-9\-]{10,}|\bxapp-\d-[A-Za-z0-9\-]{10,}"),  # Slack tokens
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}|\bgithub_pat_\w{20,}"),  # GitHub
    re.compile(r"\bgl(?:pat|ptt|dt|rt|soat|cbt|imt|ft|oas)-[0-9A-Za-z_\-]{20,}"),  # GitLab
    re.compile(r"\b(?:bot)?\d{6,12}:[A-Za-z0-9_\-]{30,}"),  # Telegram bot tokens, also inside /bot<token>/
    re.compile(r"\b[MNO][A-Za-z0-9_\-]{22,27}\.[A-Za-z0-9_\-]{6,7}\.[A-Za-z0-9_\-]{27,}"),  # Discord bot tokens
    re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"),  # JWTs
    re.compile(r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[A-Z0-9]{16}\b"),  # AWS
    re.compile(r"\b(?:sk|rk)_(?:live|test|prod)_[0-9A-Za-z]{10,}|\bwhsec_[0-9A-Za-z]{20,}"),  # Stripe
    re.compile(r"\bnpm_[A-Za-z0-9]{30,}"),  # npm
    re.compile(r"\bpypi-AgE[A-Za-z0-9_\-]{50,}"),  # PyPI upload tokens
    re.compile(r"\bSG\.[A-Za-z0-9_\-]{16,32}\.[A-Za-z0-9_\-]{16,64}"),  # SendGrid
    re.compile(r"\bSK[0-9a-fA-F]{32}\b"),  # Twilio API key
    re.compile(r"\bkey-[0-9a-zA-Z]{32}\b"),  # Mailgun
    re.compile(r"\bhf_[A-Za-z0-9]{30,}"),  # Hugging Face
    re.compile(r"\bdo[opr]_v1_[a-f0-9]{64}\b"),  # DigitalOcean
    re.compile(r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b"),  # Shopify
    re.compile(r"\bAGE-SECRET-KEY-1[0-9A-Z]{50,}\b"),  # age
    re.compile(r"\b(?:glc|glsa)_[A-Za-z0-9_+/=\-]{32,}"),  # Grafana
    re.compile(r"\blin_api_[A-Za-z0-9]{40}\b|\bdapi[a-f0-9]{32}\b"),  # Linear, Databricks
    re.compile(r"\b[0-9a-fA-F]{32,}\b"),  # long hex: digests, keys
)
# One alternation scans the text once: ten times faster than a pass per shape.
_SHAPES_RE = re.compile("|".join(f"(?:{shape.pattern})" for shape in _SHAPES))
_LONG_ALNUM_RE = re.compile(r"\b[A-Za-z0-9]{32,39}\b")  # QQ AppSecrets and the like (40+ is _LONG_B64_RE's)
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


def _credential_like(value: str) -> bool:
    """A word after `token`/`secret`/`Bot` is a credential when it mixes letters and digits, or is long and
    mixes cases; 'expired', 'refresh', a date or a number are prose."""
    if len(value) < 6 or _DATE_RE.match(value):
        return False
    digits = any(c.isdigit() for c in value)
    letters = any(c.isalpha() for c in value)
    return (digits and letters) or (len(value) >= 24 and "." not in value and _mixed(value + "0"))


def _mask_value(value: str) -> str:
    for q in ('\\"', '"', "'"):
        if len(value) >= 2 * len(q) and value.startswith(q) and value.endswith(q):
            return f"{q}{MASK}{q}"
    return MASK


def _sub_assignments(text: str) -> str:
    """Mask the value after every secret-looking key. A scan, not one big regex: each key is looked at
    once, and a key that is no secret leaves its value to be scanned for keys of its own (a=token=x)."""
    out: list[str] = []
    pos = done = 0  # search from pos; text[:done] is in out
    search = _KEY_SEP_RE.search
    while (m := search(text, pos)) is not None:
        key, end = m.group("key"), m.end()
        if not _SECRET_WORD_RE.search(key) or text.startswith((MASK, f'"{MASK}', f"'{MASK}"), end):
            pos = m.end("key")
            continue
        line_value = _LINE_VALUE_KEY_RE.search(key) and text[end:end + 1] not in {'"', "'", "\\"}
        v = (_LINE_VALUE_RE if line_value else _VALUE_RE).match(text, end)
        value = v.group(0).rstrip() if v else ""
        if not value.strip("\"'\\") or (
                m.group("sep") == ":" and _SOURCE_FILE_RE.search(key) and _LINE_NUMBER_RE.fullmatch(value)):
            pos = end
            continue
        out.append(text[done:end])
        out.append(_mask_value(value))
        pos = done = end + len(value)
    out.append(text[done:])
    return "".join(out)


def _sub_word_value(m: re.Match[str]) -> str:
    if not _credential_like(m.group("value")):
        return m.group(0)
    return f"{m.group('word')}{m.group('sep')}{MASK}"


def _is_webhook(host: str, rest: str) -> bool:
    return "hook" in host.lower() or "hook" in rest.lower()


def _sub_url(m: re.Match[str]) -> str:
    rest = m.group("rest")
    stripped = rest.rstrip(".,;:)]}")
    if not _is_webhook(m.group("host"), stripped) or rest.startswith(f"/{MASK}"):
        return m.group(0)
    user = f"{MASK}@" if m.group("user") else ""
    return f"{m.group('scheme')}://{user}{m.group('host')}/{MASK}{rest[len(stripped):]}"


_RULES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (_PRIVATE_KEY_RE, lambda m: MASK),
    (_AUTH_HEADER_RE, lambda m: f"{m.group('key')}{_mask_value(m.group('value').strip())}"),
    (_URL_RE, _sub_url),
    (_SCHEME_RE, lambda m: f"{m.group('scheme')} {MASK}"),
    (_URL_PARAM_RE, lambda m: f"{m.group('key')}{MASK}"),
    (_URL_USERINFO_RE, lambda m: f"{m.group('key')}{MASK}@"),
    (_FLAG_VALUE_RE, lambda m: f"{m.group('flag')}{m.group('sep')}{MASK}" if _SECRET_WORD_RE.search(m.group("flag"))
     else m.group(0)),
)
_LATE_RULES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (_WORD_VALUE_RE, _sub_word_value),
    (_SHAPES_RE, lambda m: MASK),
    (_LONG_ALNUM_RE, lambda m: MASK if sum(c.isdigit() for c in m.group(0)) >= 3
     and sum(c.isalpha() for c in m.group(0)) >= 3 else m.group(0)),
    (_LONG_B64_RE, lambda m: MASK if _looks_random(m.group(0)) else m.group(0)),
)


def _one_pass(text: str) -> str:
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)
    text = _sub_assignments(text)
    for pattern, repl in _LATE_RULES:
        text = pattern.sub(repl, text)
    return text


def redact(text: str, home: str | None = None) -> str:
    """Return ``text`` with secrets masked and the home directory shown as ``~``."""
    for _ in range(_MAX_PASSES):
        # A mask can give the text after it a new left edge (`6--token x` -> `]--token x`): pass again
        # until nothing changes, so redacting a redacted text changes nothing.
        done = _one_pass(text)
        if done == text:
            break
        text = done
    if home and home not in {"/", ""}:
        home = home.rstrip("/")
        text = re.sub(rf"{re.escape(home)}(?=/|\b|$)", "~", text)
    return text


def redact_url(url: str, home: str | None = None) -> str:
    """A URL given as a webhook: keep scheme and host, mask userinfo, path, query and fragment (Slack,
    Discord and most webhook services carry the secret in the path)."""
    m = _WHOLE_URL_RE.match(url.strip())
    if m is None:
        return redact(url, home)
    user = f"{MASK}@" if m.group("user") else ""
    rest = f"/{MASK}" if m.group("rest") not in {"", "/"} else m.group("rest")
    return f"{m.group('scheme')}://{user}{m.group('host')}{rest}"


_FLAG_RE = re.compile(r"--?(?P<name>[A-Za-z][A-Za-z0-9_.\-]*)(?:=.*)?", re.DOTALL)


def _flag_name(arg: str) -> str | None:
    m = _FLAG_RE.fullmatch(arg)
    return m.group("name") if m else None


def redact_argv(argv: list[str] | tuple[str, ...]) -> list[str]:
    """Mask the value of every secret-looking flag in a command line, as a whole: `--token VALUE`,
    `--qq-secret VALUE`, `--api-key=VALUE`, and the URL after a `--*webhook*` flag. The elements are then
    still to be redacted one by one (redact_obj does both). Short flags such as Hermes' `-p <profile>` stay."""
    out = [str(a) for a in argv]
    mask_next: Callable[[str], str] | None = None
    for i, arg in enumerate(out):
        if mask_next is not None:
            out[i] = mask_next(arg)
            mask_next = None
            continue
        name = _flag_name(arg)
        if name is None or (not arg.startswith("--") and len(name) == 1):
            continue
        hook = "hook" in name.lower()
        if not hook and not _SECRET_WORD_RE.search(name):
            continue
        if "=" in arg:
            flag, value = arg.split("=", 1)
            out[i] = f"{flag}={redact_url(value) if hook else (MASK if value else value)}"
        else:
            mask_next = redact_url if hook else (lambda v: MASK if v else v)
    return out


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY_RE.match(key))


def _is_webhook_key(key: str) -> bool:
    return "hook" in key.lower()


@functools.lru_cache(maxsize=4096)
def _redact_cached(text: str, home: str | None) -> str:
    # redact() is pure; state.json is rewritten every few seconds with mostly the same strings.
    return redact(text, home)


def redact_obj(obj: Any, home: str | None = None) -> Any:
    """Redact every string in a JSON-like structure; values under secret-looking keys are masked whole,
    webhook URLs keep only scheme and host, and a list of strings is treated as a command line first."""
    if isinstance(obj, dict):
        out: dict[Any, Any] = {}
        for k, v in obj.items():
            key = _redact_cached(k, home) if isinstance(k, str) else k
            if isinstance(k, str) and is_secret_key(k) and isinstance(v, str | int | float) and v != "":
                out[key] = MASK
            elif isinstance(k, str) and _is_webhook_key(k) and isinstance(v, str) and "://" in v:
                out[key] = redact_url(v, home)
            else:
                out[key] = redact_obj(v, home)
        return out
    if isinstance(obj, list | tuple):
        if obj and all(isinstance(v, str) for v in obj):
            obj = redact_argv(obj)
        return [redact_obj(v, home) for v in obj]
    if isinstance(obj, str):
        return _redact_cached(obj, home)
    return obj


# Identity, for evidence meant to be pasted in public (issue 24): who runs the gateway and where it is
# installed. Not applied to the daemon's own state.json, which must read its homes back.
USER_MASK = "<user>"
_USER_HOME_RE = re.compile(r"(?<![\w.~])/(?:home|Users)/[^/\s\"'<>()]+")
_INSTALL_RE = re.compile(r"(?<![\w.~])(?:/[^/\s\"'<>()]+)+?/(?P<tail>(?:site|dist)-packages|bin/python[\w.]*)(?=/|\b)")


def _identity_text(text: str, names: tuple[str, ...]) -> str:
    text = _INSTALL_RE.sub(lambda m: f"…/{m.group('tail')}", text)
    text = _USER_HOME_RE.sub(f"~{USER_MASK}", text)
    for name in names:
        if len(name) >= 3:  # a one- or two-letter name would mask half the text
            text = re.sub(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", USER_MASK, text)
    return text


def redact_identity(obj: Any, names: tuple[str, ...] = ()) -> Any:
    """Usernames (every ``username`` value, and each of ``names`` as a whole word), other users' home
    folders (``/home/alice`` -> ``~<user>``) and install prefixes (``/opt/x/venv/lib/python3.11/site-packages``
    -> ``…/site-packages``) masked in text or a JSON-like structure already through ``redact_obj``."""
    if isinstance(obj, dict):
        return {k: (USER_MASK if k == "username" and isinstance(v, str) and v else redact_identity(v, names))
                for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_identity(v, names) for v in obj]
    if isinstance(obj, str):
        return _identity_text(obj, names)
    return obj
