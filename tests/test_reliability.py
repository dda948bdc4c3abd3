"""Issue 6 reliability: fuzzing of the file readers and the redactor, every bad PID form, a daemon
killed mid-incident, and a full state dir.

Hypothesis runs 1000 examples per property (derandomized under CI=true so a red CI run is repeatable;
random locally so new cases keep being tried).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hermes_watchdog.observe import heartbeat, statefile
from hermes_watchdog.record.redact import MASK, redact, redact_obj
from hermes_watchdog.sim.gateway import PLANTED_SECRETS
from tests.helpers import assert_one_line_error, cli, read_json, wait_for
from tests.unit.test_redact import CASES

settings.register_profile("fuzz", max_examples=1000, deadline=None, derandomize=os.environ.get("CI") == "true",
                          suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings.get_profile("fuzz")
STATUSES = {"ok", "missing", "empty", "truncated", "garbage", "oversized", "not-an-object", "unreadable"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20)
KEYS = st.sampled_from(["pid", "gateway_state", "platforms", "start_time", "updated_at", "kind", "argv", "state",
                        "error_code", "qqbot", "exit_reason"])
state_like = st.dictionaries(KEYS, json_values | st.dictionaries(st.text(max_size=8), st.dictionaries(KEYS, json_values,
                                                                                                      max_size=4),
                                                                 max_size=3), max_size=8)
GOOD_STATE = json.dumps({"pid": 42, "kind": "hermes-gateway", "gateway_state": "running", "start_time": 123,
                         "platforms": {"qqbot": {"state": "disconnected", "updated_at": "2027-01-01T00:00:00Z"}}})


def _check_state(raw: bytes | None) -> None:
    st_ = statefile.parse_state("f", raw)
    assert st_.read.status in STATUSES
    assert (st_.read.problem is None) == st_.ok
    for p in st_.platforms:
        assert isinstance(p.name, str) and isinstance(p.state, str)
    assert st_.pid is None or (isinstance(st_.pid, int) and st_.pid > 0)
    pid = statefile.parse_pid("f", raw)
    assert pid.read.status in STATUSES
    assert pid.pid is None or (isinstance(pid.pid, int) and pid.pid > 0)
    beat = heartbeat.parse("f", raw)
    if beat is not None:
        heartbeat.assess(beat, 42, 1.8e9)


@FUZZ
@given(st.binary(max_size=300))
def test_readers_never_raise_on_any_bytes(raw: bytes) -> None:
    _check_state(raw)


@FUZZ
@given(state_like)
def test_readers_never_raise_on_odd_json(data: dict) -> None:
    _check_state(json.dumps(data).encode())


@FUZZ
@given(st.integers(min_value=0, max_value=len(GOOD_STATE)), st.binary(max_size=8))
def test_torn_writes_are_classified(cut: int, tail: bytes) -> None:
    raw = GOOD_STATE.encode()[:cut] + (tail if cut < len(GOOD_STATE) else b"")
    s = statefile.parse_state("f", raw)
    if cut == len(GOOD_STATE):
        assert s.ok and s.pid == 42 and [p.name for p in s.not_connected] == ["qqbot"]
    elif cut < len(GOOD_STATE) - 1:
        assert not s.ok  # a cut-off object is never taken for a state


SECRETS = [secret for _, secret in CASES] + list(PLANTED_SECRETS)
SHAPES = [text for text, _ in CASES]
seps = st.sampled_from([" ", "\n", "\t", ", ", "; ", " | ", "\r\n", "  "])
noise = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)


@FUZZ
@given(st.sampled_from(range(len(CASES))), noise, noise, seps, seps)
def test_planted_secret_shapes_never_survive_in_any_surroundings(i: int, before: str, after: str, s1: str,
                                                                   s2: str) -> None:
    text, secret = CASES[i]
    out = redact(before + s1 + text + s2 + after)
    assert secret not in out


@FUZZ
@given(st.sampled_from(PLANTED_SECRETS), st.sampled_from([
    "QQ_CLIENT_SECRET={}", "TELEGRAM_BOT_TOKEN={}", "OPENAI_API_KEY={}", "Authorization: Bearer {}",
    '{{"access_token": "{}"}}', "WEBHOOK_SIGNING_KEY={}", "token={}", "MY_SERVICE_KEY: {}", "client_secret: {}",
    "Authorization: QQBot {}", "X_API_TOKEN='{}'", "https://u:{}@host/x"]), noise, noise, seps, seps)
def test_planted_secrets_in_secret_places_never_survive(secret: str, shape: str, before: str, after: str,
                                                        s1: str, s2: str) -> None:
    out = redact(before + s1 + shape.format(secret) + s2 + after)
    assert secret not in out


@FUZZ
@given(st.text(max_size=400))
def test_redact_any_text_is_safe_and_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once
    out = redact_obj({"x": [text, {"API_KEY": text}]}, "/home/u")
    # The structure is kept, strings are redacted like text, and a secret key's value is masked whole.
    assert out["x"][0] == redact(text, "/home/u") and set(out) == {"x"}
    assert out["x"][1]["API_KEY"] == (MASK if text else "")


@FUZZ
@given(json_values)
def test_redact_obj_any_json(value: object) -> None:
    out = redact_obj({"k": value, "DB_PASSWORD": value})
    assert set(out) == {"k", "DB_PASSWORD"} and json.loads(json.dumps(out)) == out  # still JSON, keys kept
    if isinstance(value, str | int | float) and value != "":
        assert out["DB_PASSWORD"] == MASK  # a secret key's scalar is masked whole, numbers and booleans too
    else:
        assert out["DB_PASSWORD"] == out["k"]  # "", null, a list or an object: redacted like any other value


# ---------------------------------------------------------------- every bad PID form
@pytest.mark.parametrize(("pid", "message"), [
    ("", "PID must be a whole number, not ''"),
    ("   ", "PID must be a whole number"),
    ("0x1f", "PID must be a whole number, not '0x1f'"),
    ("1e3", "PID must be a whole number, not '1e3'"),
    ("+5", "PID must be a whole number"),
    ("1_000", "PID must be a whole number"),
    ("٣", "PID must be a whole number"),
    ("12abc", "PID must be a whole number"),
    ("-1", "PID must be a positive number"),
    ("0", "PID must be a positive number"),
    ("99999999999999999999", "no process with PID 99999999999999999999"),
    ("4194303", "no process with PID 4194303"),
])
def test_every_bad_pid_form_is_one_line(pid: str, message: str) -> None:
    r = cli("diagnose", pid, "--seconds", "0.5")
    assert_one_line_error(r)
    assert message in r.err


def _a_kernel_thread() -> int | None:
    """A kernel thread of this machine (no executable, no command line); PID 2 is only usually kthreadd."""
    for p in psutil.process_iter(["pid", "cmdline", "exe"]):
        if p.info["pid"] > 1 and not p.info["cmdline"] and not p.info["exe"] and p.status() != psutil.STATUS_ZOMBIE:
            return p.info["pid"]
    return None


def test_kernel_thread_is_one_line() -> None:
    kthread = _a_kernel_thread()
    if kthread is None:
        pytest.skip("no kernel thread visible in this PID namespace")
    r = cli("diagnose", str(kthread), "--seconds", "0.5")
    assert_one_line_error(r)
    assert "not a Python process" in r.err


def test_zombie_is_one_line() -> None:
    z = subprocess.Popen(["true"])
    try:
        wait_for(lambda: Path(f"/proc/{z.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z",
                 what="a zombie")
        r = cli("diagnose", str(z.pid), "--seconds", "0.5")
        assert_one_line_error(r)
        assert "zombie" in r.err
    finally:
        z.wait()


# ---------------------------------------------------------------- the daemon killed mid-incident
def test_daemon_sigkilled_mid_restart_carries_it_on_and_restarts_once(tmp_path, supervised, daemons) -> None:
    home = tmp_path / "hermes"
    # The gateway ignores SIGTERM (starved loop); the supervisor would wait 120 s before killing it itself.
    sup = supervised(home, "--mode", "spin", "--spin-after", "1", "--hook",
                     "--spin-once-marker", str(tmp_path / "spun"),
                     stop_timeout=120)
    old = sup.wait_running()
    args = ("--hermes-home", str(home), "--restart-with", "signal", "--interval", "0.5", "--window", "3",
            "--grace", "4", "--cooldown", "0", "--start-timeout", "30", "--loop-proof", "3")
    first = daemons(tmp_path / "state", *args)
    first.wait_event(" RESTART ")  # SIGTERM sent, ignored; SIGKILL due in 4 s
    wait_for(lambda: (tmp_path / "state" / "pending.json").exists(), what="pending.json")
    first.proc.send_signal(signal.SIGKILL)  # no chance to clean up
    first.proc.wait(10)
    assert sup.child == old and sup.launches == 1  # the gateway is still the spinning one
    second = daemons(tmp_path / "state", *args)
    second.wait_event("RESUME")
    second.wait_event("restart verified")
    assert sup.launches == 2 and sup.child != old
    # state.json is written at the end of the tick that logged the verification.
    wait_for(lambda: (second.gateway().get("restart_history") or [{}])[-1].get("result") == "restarted",
             what="the verified restart in state.json")
    history = second.gateway()["restart_history"]
    assert len(history) == 1 and history[0]["result"] == "restarted" and history[0]["pid"] == old
    assert len(second.incidents()) == 1  # the same incident carried on, not a second one
    inc = second.incident()
    assert inc["result"] == "restarted" and "SIGKILL" in inc["restart"]["signals"]
    assert " RESTART " not in second.events()  # it never asked for a second restart
    assert not (tmp_path / "state" / "pending.json").exists()


# ---------------------------------------------------------------- a full state dir
@pytest.fixture
def tiny_fs(tmp_path: Path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mnt)],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip() or r.returncode}): needs root")
    yield mnt
    with contextlib.suppress(Exception):
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_state_dir_is_reported_and_watching_goes_on(tmp_path, tiny_fs, supervised, daemons) -> None:
    home = tmp_path / "hermes"
    sup = supervised(home, "--mode", "spin", "--spin-after", "1", "--hook",
                     "--spin-once-marker", str(tmp_path / "spun"))
    old = sup.wait_running()
    state_dir = tiny_fs / "state"
    state_dir.mkdir()
    fd = os.open(tiny_fs / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    with contextlib.suppress(OSError):  # fill it to the last block
        while True:
            os.write(fd, b"\0" * 512)
    os.close(fd)
    d = daemons(state_dir, "--hermes-home", str(home), "--restart-with", "signal", "--interval", "0.5",
                "--window", "3", "--grace", "1", "--cooldown", "0", "--start-timeout", "30")
    d.wait_event("No space left on device")
    d.wait_event("restart verified")  # no evidence could be kept, but the gateway still got restarted
    assert "still watching" in d.events() and d.proc.poll() is None
    assert sup.launches == 2 and sup.child != old
    (tiny_fs / "filler").unlink()  # room again: it says so and writes its state
    d.wait_event("writable again")
    wait_for(lambda: read_json(state_dir / "state.json"), what="state.json once there is room")
