"""Issue 11: secrets that slipped past the redactor (Discord and QQ credentials, `token X` in prose, cookies,
unquoted passwords with spaces, argv flag/value pairs, restart/notify commands, webhook URLs, common token
shapes modelled on gitleaks' rules), and source `file:line` that was masked although it is no secret."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hermes_watchdog import diagnosis
from hermes_watchdog.config import Config
from hermes_watchdog.record import report
from hermes_watchdog.record.redact import MASK, redact, redact_argv, redact_obj, redact_url
from tests.helpers import all_files, cli, wait_for

DISCORD = "MTA4NzY1NDMyMTA5ODc2NTQzMg.GhIjKl.abcDEFghiJKLmnoPQRstuVWXyz0123456789"
QQ_APPSECRET = "Xy7Z2k9QaB3cD4eF5gH6iJ8kL1mN0pQr"
QQ_APPSECRET_LOWER = "x7z2k9qab3cd4ef5gh6ij8kl1mn0pqrs"
ERR_TOKEN = "q9Lw2ZxR7tY4uI0o"
COOKIE = "sessionid=s3ss10nV4lue"
ARGV_TOKEN = "argvTok3nValue77"
ARGV_QQ = "argvQQsecret55"
HOOK_PATH = "T0SECRET/B0SECRET/hookPathSecret42"


def _gone(out: str, *secrets: str) -> None:
    for s in secrets:
        assert s not in out, (s, out)


def test_discord_bot_token_in_a_hermes_log_line_is_masked() -> None:
    line = (f"2026-05-16 10:00:01,204 INFO gateway.platforms.discord: [Discord] login with {DISCORD} "
            "(gateway/platforms/discord/adapter.py:211)")
    out = redact(line)
    _gone(out, DISCORD, DISCORD.split(".")[0], DISCORD.split(".")[2])
    assert "2026-05-16 10:00:01,204" in out and "gateway/platforms/discord/adapter.py:211" in out


QQ_SHAPES = ["QQBot appsecret {} rejected", "using AppSecret {}", "secret {} for app 102345678", "app_secret：{}"]


# A bare all-lowercase run is only masked after a secret word; a bare mixed-case one anywhere.
@pytest.mark.parametrize(("shape", "secret"), [(s, q) for s in QQ_SHAPES for q in (QQ_APPSECRET, QQ_APPSECRET_LOWER)]
                         + [("bare value {} in a dump", QQ_APPSECRET)])
def test_qq_appsecret_is_masked(shape: str, secret: str) -> None:
    out = redact("2026-05-16 10:00:00,001 ERROR gateway.platforms.qqbot: " + shape.format(secret))
    _gone(out, secret)
    assert "gateway.platforms.qqbot" in out


def test_token_inside_an_error_message_of_the_state_file_is_masked() -> None:
    state = {"pid": 4242, "gateway_state": "running", "updated_at": "2026-05-16T10:00:00.123456+00:00",
             "platforms": {"qqbot": {"state": "fatal", "error_code": "auth_failed",
                                     "error_message": f"get access token failed: invalid token {ERR_TOKEN} (11244)",
                                     "updated_at": "2026-05-16T10:00:00.123456+00:00"}}}
    out = json.dumps(redact_obj(state, None))
    _gone(out, ERR_TOKEN)
    assert "auth_failed" in out and "2026-05-16T10:00:00.123456+00:00" in out and "11244" in out


def test_prose_about_tokens_is_kept() -> None:
    for text in ("QQ access token expired, refreshing", "token refresh failed: timeout after 30 s",
                 "secret rotation is due", "Bot connected to 3 guilds"):
        assert redact(text) == text


@pytest.mark.parametrize("line", [f"Cookie: {COOKIE}; csrftoken=abc", f"> cookie: {COOKIE}",
                                  f"Set-Cookie: {COOKIE}; Path=/; HttpOnly", f"headers {{'Cookie': '{COOKIE}'}}",
                                  "cookies={'sessionid': 's3ss10nV4lue'}"])
def test_cookie_values_are_masked(line: str) -> None:
    _gone(redact(line), "s3ss10nV4lue")


def test_every_word_of_an_unquoted_password_is_masked() -> None:
    out = redact("smtp:\n  user: bot@example.org\n  password: correct horse7 battery\n  port: 587")
    _gone(out, "correct", "horse7", "battery")
    assert "port: 587" in out and "user: bot@example.org" in out
    out = redact('{"password": "a b", "next": "kept"}')
    _gone(out, '"a b"')
    assert '"next": "kept"' in out


def test_argv_flag_value_pairs_are_masked_in_the_record_and_report() -> None:
    cmdline = ["/srv/venv/bin/python", "-m", "hermes_cli.main", "-p", "work", "--profile", "coder", "gateway", "run",
               "--token", ARGV_TOKEN, "--qq-secret", ARGV_QQ, "--api-key=argvKeyEq9", "--replace"]
    assert redact_argv(cmdline)[:9] == cmdline[:9]  # profiles and ordinary arguments stay
    rec = {"pid": 4242, "process": {"cmdline": cmdline, "looks_like_gateway": True}, "verdict": {"reasons": []}}
    pub = redact_obj(rec, None)
    text = report.render(pub, "", "")
    _gone(json.dumps(pub) + text, ARGV_TOKEN, ARGV_QQ, "argvKeyEq9")
    assert "-p work --profile coder gateway run --token" in text and "--replace" in text
    # The same pair written out as text (a joined command line, a list's repr) is masked too.
    _gone(redact(" ".join(cmdline)) + redact(str(cmdline)), ARGV_TOKEN, ARGV_QQ)


def test_restart_and_notify_command_secrets_leave_the_config_summary_masked() -> None:
    cfg = Config(restart_command=("/usr/local/bin/kick", "--token", ARGV_TOKEN, "gateway"),
                 notify_command=("/usr/local/bin/page-me", "--api-key", ARGV_QQ, "--json"),
                 notify_webhook=f"https://hooks.slack.com/services/{HOOK_PATH}")
    out = diagnosis.public(cfg.summary())
    _gone(json.dumps(out), ARGV_TOKEN, ARGV_QQ, HOOK_PATH, "hookPathSecret42")
    assert out["restart_command"][:2] == ["/usr/local/bin/kick", "--token"] and out["restart_command"][3] == "gateway"
    assert out["notify_webhook"].startswith("https://hooks.slack.com/")
    # How the daemon describes the command manager in events and incident notes: a list's repr.
    _gone(redact(f"would restart PID 4242 with command {list(cfg.restart_command)}"), ARGV_TOKEN)


@pytest.mark.parametrize("url", [
    f"https://hooks.slack.com/services/{HOOK_PATH}",
    "https://discord.com/api/webhooks/123456789012345678/hookPathSecret42-abc_DEF",
    "http://127.0.0.1:9/hooks/hookPathSecret42",
    "https://user:hookPathSecret42@example.org/notify",
    "https://example.org/notify?sig=hookPathSecret42",
])
def test_webhook_urls_keep_scheme_and_host_only(url: str) -> None:
    masked = redact_url(url)
    assert "hookPathSecret42" not in masked and masked.split("://")[0] in {"http", "https"}
    host = url.split("://")[1].split("/")[0].split("@")[-1]
    assert host in masked
    assert "hookPathSecret42" not in json.dumps(redact_obj({"notify_webhook": url}, None))
    if "/hook" in url or "hooks." in url:  # a webhook URL in a log line or error text
        _gone(redact(f"POST {url} failed: HTTP 500"), "hookPathSecret42")


# One planted value per rule family, in the shapes gitleaks' default rules describe.
SHAPES = [
    ("aws AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE"),
    ("sts ASIAY34FZKBOKMUTVV7A", "ASIAY34FZKBOKMUTVV7A"),
    ("GH ghs_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", "ghs_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
    ("pat github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTU",
     "github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTU"),
    ("gitlab glpat-abcDEF0123456789xyzW", "glpat-abcDEF0123456789xyzW"),
    ("slack xapp-1-A0123456789-1234567890123-abcdef0123456789", "xapp-1-A0123456789-1234567890123-abcdef0123456789"),
    ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("stripe rk_live_51Habcdefghijklmnopqrstu", "rk_live_51Habcdefghijklmnopqrstu"),
    ("anthropic sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789",
     "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789"),
    ("npm npm_abcdefghijklmnopqrstuvwxyz0123456789", "npm_abcdefghijklmnopqrstuvwxyz0123456789"),
    ("pypi pypi-AgEIcHlwaS5vcmcCJDU1ZjdmNmRhLTI4ZmQtNGMzZC1iNDFlLTEyYzNkNDc0YmM3ZQACKlsz",
     "pypi-AgEIcHlwaS5vcmcCJDU1ZjdmNmRhLTI4ZmQtNGMzZC1iNDFlLTEyYzNkNDc0YmM3ZQACKlsz"),
    ("sendgrid 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",
     "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"),
    ("twilio SK0123456789abcdef0123456789abcdef", "SK0123456789abcdef0123456789abcdef"),
    ("mailgun key-0123456789abcdefghijklmnopqrstuv", "key-0123456789abcdefghijklmnopqrstuv"),
    ("hf hf_abcdefghijklmnopqrstuvwxyzABCDEFGH", "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH"),
    ("google oauth ya29.a0AfH6SMBabcdefghijklmnopqrstuv", "ya29.a0AfH6SMBabcdefghijklmnopqrstuv"),
    ("do dop_v1_" + "a1" * 32, "a1" * 32),
    ("age AGE-SECRET-KEY-1" + "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"[:29] * 2, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"[:29]),
    ("https://api.telegram.org/bot7123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage",
     "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"),
    ("X-Api-Key: k3yValue0123", "k3yValue0123"),
    ("http basic https://bob:pa55word@git.example.org/repo.git", "pa55word"),
    ('{\\"access_token\\": \\"escapedTok3n\\"}', "escapedTok3n"),
]


@pytest.mark.parametrize(("text", "secret"), SHAPES)
def test_common_token_shapes_are_masked(text: str, secret: str) -> None:
    out = redact(f"2026-05-16 10:00:00,001 DEBUG gateway.run: {text}\n")
    _gone(out, secret)
    assert "2026-05-16 10:00:00,001 DEBUG gateway.run:" in out


def test_private_key_blocks_are_masked_whole() -> None:
    body = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u"
    text = f"loaded key:\n-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----\nnext line"
    out = redact(text)
    _gone(out, "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun", "VTLw7onLRnrq0")
    assert out.startswith("loaded key:") and out.endswith("next line")
    escaped = '{"key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----\\n"}'
    _gone(redact(escaped), "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC")


def test_source_file_and_line_in_a_stack_are_kept() -> None:
    stack = (
        "Thread 4242 (active): \"MainThread\"\n"
        "    _refresh (hermes_cli/nous_auth_keepalive.py:123)\n"
        "    _read_events (gateway/platforms/qqbot/adapter.py:654-659)\n"
        "    QQAdapter._listen_loop (/srv/venv/lib/python3.11/site-packages/gateway/platforms/qqbot/adapter.py:492)\n"
        "    get_token (gateway/platforms/qqbot/token_store.py:88)\n"
        '  File "/srv/venv/lib/python3.11/site-packages/hermes_cli/auth.py", line 41, in refresh\n'
        "    run_forever (asyncio/base_events.py:608)\n"
    )
    out = redact(stack)
    assert out == stack


def test_ordinary_text_survives() -> None:
    text = ("2026-05-16T10:00:00.123Z pid 0x1a2b request 123e4567-e89b-12d3-a456-426614174000 "
            "QQAdapter._read_events retried; see ~/.hermes/logs/gateway.log; token expired; "
            "https://docs.example.org/guide/setup#section uses keep_incidents=50")
    assert redact(text) == text


def test_redaction_of_argv_lists_is_idempotent_and_keeps_length() -> None:
    argv = ["x", "--token", "abc", "--secret=def", "--qq-secret", "--next"]
    once = redact_argv(argv)
    assert once == ["x", "--token", MASK, f"--secret={MASK}", "--qq-secret", MASK]
    assert redact_argv(once) == once
    assert redact_obj(redact_obj(argv, None), None) == redact_obj(argv, None)


# The child that runs redact(): 512 KiB of log (which secrets leak), then each shape at n and at 4n, the least
# CPU time (time.process_time: other processes loading the cores do not count) of three runs. JSON out.
_REDOS_CHILD = r"""
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_CPU, (60, 60))  # killed (SIGXCPU) after 60 s on a CPU, however loaded
from hermes_watchdog.record.redact import redact
log, secrets, shapes = json.load(sys.stdin)
out = redact(log)
leaked = [s for s in secrets if s in out]
took = {}
for name, (unit, count) in shapes.items():
    took[name] = []
    for n in (count, 4 * count):
        text = unit * n
        best = float("inf")
        for _ in range(3):
            t0 = time.process_time()
            redact(text)
            best = min(best, time.process_time() - t0)
        took[name].append(best)
print(json.dumps({"leaked": leaked, "took": took}))
"""
_LOG_LINE = ("2026-05-16 10:00:00,123 INFO gateway.platforms.qqbot: [QQBot] Reconnecting in 2s (attempt 1) "
             f"token {ERR_TOKEN} at gateway/platforms/qqbot/adapter.py:654 Cookie: {COOKIE}\n")
# An ordinary log and shapes that make backtracking regexes blow up, each about 64 KiB at n, 256 KiB at 4n.
_REDOS_SHAPES = {"log": (_LOG_LINE, 64 * 1024 // len(_LOG_LINE)), "dots": ("a.", 32768), "dashes": ("-", 65536),
                 "token words": ("token ", 11000), "letters": ("a", 65536), "path": ("x/", 32768),
                 "password spaces": ("password: ", 6500), "pem headers": ("-----BEGIN PRIVATE KEY-----", 2400),
                 "akia": ("AKIA", 16384), "equals": ("a=", 32768), "bearer": ("Bearer ", 9400)}


def test_a_big_log_is_redacted_in_linear_time() -> None:
    """512 KiB of log is redacted, and a catastrophic (exponential) backtracking rule fails this test in bounded
    time rather than hang CI: the redactor runs in a child stopped after 60 s of CPU time (about ten times
    what it needs here), or 600 s of wall time on a machine loaded beyond that. Growth is judged by the CPU
    time of the same shape at n and 4n (4x when linear, 16x when quadratic), which other processes loading
    the machine do not inflate the way they inflate wall time."""
    log = (_LOG_LINE * (512 * 1024 // len(_LOG_LINE) + 1))[:512 * 1024]
    arg = json.dumps([log, [ERR_TOKEN, "s3ss10nV4lue"], _REDOS_SHAPES])
    try:
        proc = subprocess.run([sys.executable, "-c", _REDOS_CHILD], input=arg, capture_output=True, text=True,
                              timeout=600, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("redact() did not finish 512 KiB of log and 22 inputs of at most 256 KiB in 600 s")
    assert proc.returncode not in (-signal.SIGXCPU, -signal.SIGKILL), \
        "redact() used 60 s of CPU on 512 KiB of log and 22 inputs of at most 256 KiB: catastrophic backtracking"
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["leaked"] == []
    print(f"\nredact() CPU seconds at n and 4n: {result['took']}")
    # 0.01 s of slack: a shape whose rules take a few milliseconds is at the mercy of the clock's resolution.
    superlinear = {name: (n, n4) for name, (n, n4) in result["took"].items() if n4 > 8 * n + 0.01}
    assert not superlinear, f"redact() grows faster than linearly (CPU seconds at n, 4n): {superlinear}"


# ----------------------------------------------------------------------------- end to end, real processes

E2E_SECRET = "e2eQQsecretV4lue9"


def test_diagnose_out_folder_has_no_argv_secret(sim, tmp_path: Path) -> None:
    g = sim("spin", "--spin-after", "1", "--qq-secret", E2E_SECRET).wait_running()
    out = tmp_path / "evidence"
    r = cli("diagnose", str(g.pid), "--seconds", "1", "--out", str(out))
    assert r.code in (0, 1), r.err
    files = all_files(out)
    assert {p.name for p in files} >= {"diagnosis.json", "report.md", "state.json"}
    for p in files:
        assert E2E_SECRET not in p.read_text(), p.name
    assert E2E_SECRET not in r.out + r.err
    by_name = {p.name: p for p in files}
    rec = json.loads(by_name["diagnosis.json"].read_text())
    assert "--qq-secret" in rec["process"]["cmdline"] and "--mode" in rec["process"]["cmdline"]
    assert "--qq-secret" in by_name["report.md"].read_text()


def test_run_state_status_and_incident_have_no_command_or_webhook_secret(sim, daemons, tmp_path: Path) -> None:
    home = tmp_path / "hermes"
    sim("spin", "--spin-after", "1", home=home).wait_running()
    state_dir = tmp_path / "state"
    d = daemons(state_dir, "--hermes-home", str(home), "--dry-run", "--interval", "0.5", "--window", "2",
                "--restart-with", "command", "--restart-command", f"/bin/true --token {ARGV_TOKEN}",
                "--notify-command", f"/bin/true --api-key {ARGV_QQ}",
                "--notify-webhook", "http://127.0.0.1:9/hooks/SECRETPATH0hook", "--notify-retries", "0",
                "--notify-timeout", "1")
    wait_for(lambda: d.incidents() and d.incident().get("result") == "dry-run", what="a dry-run incident")
    wait_for(lambda: "DRY-RUN" in d.events(), what="the DRY-RUN event")
    status = cli("status", "--state-dir", str(state_dir), "--json")
    assert status.code == 0, status.err
    texts = {"state.json": (state_dir / "state.json").read_text(), "status --json": status.out,
             "events": d.events()}
    texts.update({str(p): p.read_text() for p in all_files(state_dir / "incidents")})
    for name, text in texts.items():
        for secret in (ARGV_TOKEN, ARGV_QQ, "SECRETPATH0hook"):
            assert secret not in text, (name, secret)
    cfg = status.json()["daemon"]["config"]
    assert cfg["restart_command"] == ["/bin/true", "--token", MASK]
    assert cfg["notify_webhook"].startswith("http://127.0.0.1:9/")
