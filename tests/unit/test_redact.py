from __future__ import annotations

import json

import pytest

from hermes_watchdog.record.redact import MASK, redact, redact_obj
from hermes_watchdog.sim.gateway import PLANTED_SECRETS

CASES = [
    ("QQ_CLIENT_SECRET=abcDEF123456", "abcDEF123456"),
    ("export TELEGRAM_BOT_TOKEN='tok-value-1'", "tok-value-1"),
    ('OPENAI_API_KEY: "key-value-2"', "key-value-2"),
    ('{"client_secret": "js-secret-3", "x": 1}', "js-secret-3"),
    ("DB_PASSWORD=hunter2hunter2", "hunter2hunter2"),
    ("my_password = plainpass99", "plainpass99"),
    ("Authorization: Bearer abc.def.ghi-123", "abc.def.ghi-123"),
    ("headers {'Authorization': 'QQBot zyx987654321'}", "zyx987654321"),
    ("authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
    ("sending with Bearer tokentokentoken42", "tokentokentoken42"),
    ("QQBot 0123abcd9876 in header", "0123abcd9876"),
    ("key sk-proj-ABCDEFGHIJKLMNOPQRST123 used", "sk-proj-ABCDEFGHIJKLMNOPQRST123"),
    ("google AIzaSyA1234567890abcdefghijklmnopqrstu", "AIzaSyA1234567890abcdefghijklmnopqrstu"),
    ("slack xoxb-12345-67890-abcdefghij", "xoxb-12345-67890-abcdefghij"),
    ("gh ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", "ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"),
    ("GET https://api.telegram.org/bot123456789:AAH7abcdefghijklmnopqrstuvwxyz0123/getMe",
     "123456789:AAH7abcdefghijklmnopqrstuvwxyz0123"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
     "sflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"),
    ("wss://host/ws?access_token=urlTok3n&x=1", "urlTok3n"),
    ("https://h/p?foo=1&token=abc123xyz", "abc123xyz"),
    ("store postgresql://hermes:pw0rdXY@127.0.0.1/db", "pw0rdXY"),
    ("digest 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 end",
     "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
    ("blob Zm9vYmFyQmF6cXV4MTIzNDU2Nzg5MEFCQ0RFRkdISUpLTE1OT1A= end",
     "Zm9vYmFyQmF6cXV4MTIzNDU2Nzg5MEFCQ0RFRkdISUpLTE1OT1A="),
    ("b64 with slash AbCdEf0123456789xyz/QRSTuvwx98765432+abc= end", "AbCdEf0123456789xyz/QRSTuvwx98765432+abc="),
]


@pytest.mark.parametrize(("text", "secret"), CASES)
def test_secret_is_masked(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out
    assert MASK in out


@pytest.mark.parametrize("secret", PLANTED_SECRETS)
def test_simulated_gateway_secrets_are_masked_in_its_log_shapes(secret: str) -> None:
    lines = [
        f"INFO gateway.run: env OPENAI_API_KEY={secret}",
        f"token ok: {{\"access_token\": \"{secret}\", \"expires_in\": 7200}}",
        f"headers {{'Authorization': 'QQBot {secret}'}}",
    ]
    for line in lines:
        assert secret not in redact(line)


@pytest.mark.parametrize(
    "text",
    [
        "2026-05-16 10:00:00,123 INFO gateway.platforms.qqbot: [QQBot] Reconnecting in 2s (attempt 1)...",
        "QQAdapter._listen_loop (/srv/venv/lib/python3.11/site-packages/gateway/platforms/qqbot/adapter.py:492)",
        "gateway_state is 'running' while qqbot is 'disconnected'",
        "CPU 1.00 cores over 5.0 s; hottest thread 12345 at 0.99 cores",
        "key points: the monkey ate the keyboard",
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "evidence in state-hermes-gateway.service/incidents/20261124T191957Z-busy-loop",
        "incidents/20261124T191957Z-busy-loop-coder/report.md",
    ],
)
def test_ordinary_text_is_kept(text: str) -> None:
    assert redact(text) == text


def test_home_becomes_tilde() -> None:
    assert redact("/home/alice/.hermes/logs/gateway.log and /home/alice", "/home/alice") == \
        "~/.hermes/logs/gateway.log and ~"
    assert redact("/home/alicebob/x", "/home/alice") == "/home/alicebob/x"


def test_redact_obj_masks_values_under_secret_keys_and_walks_structures() -> None:
    data = {
        "platforms": {"qqbot": {"state": "connected"}},
        "QQ_CLIENT_SECRET": "plain",
        "env": ["TOKEN=abc", {"api_key": 12345}],
        "argv": ["python", "--token", "Bearer abcdef123456"],
    }
    out = redact_obj(data, None)
    text = json.dumps(out)
    assert "plain" not in text and "abcdef123456" not in text and "12345" not in text
    assert out["platforms"] == {"qqbot": {"state": "connected"}}
    assert out["QQ_CLIENT_SECRET"] == MASK


def test_redaction_is_idempotent() -> None:
    text = "QQ_CLIENT_SECRET=abc Authorization: Bearer xyz123456"
    once = redact(text)
    assert redact(once) == once
