from __future__ import annotations

import json
from pathlib import Path

from hermes_watchdog.observe import statefile
from hermes_watchdog.observe.statefile import MAX_BYTES, parse_pid, parse_state

GOOD = {
    "pid": 4242, "kind": "hermes-gateway", "argv": ["python", "-m", "hermes_cli.main", "gateway", "run"],
    "start_time": 123456, "gateway_state": "running", "exit_reason": None, "restart_requested": False,
    "active_agents": 0, "updated_at": "2026-05-16T10:00:00+00:00",
    "platforms": {"qqbot": {"state": "disconnected", "error_code": None, "error_message": None,
                            "updated_at": "2026-05-16T10:00:00+00:00"},
                  "telegram": {"state": "connected"}},
}


def test_good_state_file() -> None:
    st = parse_state("s", json.dumps(GOOD, separators=(",", ":")).encode())
    assert st.ok and st.gateway_state == "running" and st.pid == 4242 and st.start_time == 123456
    assert [p.name for p in st.not_connected] == ["qqbot"]
    assert {p.name: p.state for p in st.platforms} == {"qqbot": "disconnected", "telegram": "connected"}


def test_bad_files_are_observations() -> None:
    full = json.dumps(GOOD).encode()
    assert parse_state("s", None).read.status == "missing"
    assert parse_state("s", b"").read.status == "empty"
    assert parse_state("s", b"  \n").read.status == "empty"
    assert parse_state("s", full[: len(full) // 2]).read.status == "truncated"
    assert parse_state("s", b"{not json at all}").read.status == "garbage"
    assert parse_state("s", b"\xff\xfe\x00garbage").read.status == "garbage"
    assert parse_state("s", b"[1, 2]").read.status == "not-an-object"
    assert parse_state("s", b"[" * 100000 + b"]" * 100000).read.status in {"garbage", "oversized"}
    assert parse_state("s", b" " * (MAX_BYTES + 1)).read.status == "oversized"
    for status in ("truncated", "garbage"):
        st = parse_state("s", b'{"pid": 1, "platforms": ' if status == "truncated" else b"}{")
        assert st.read.problem and not st.ok and st.platforms == ()


def test_odd_field_types_do_not_crash() -> None:
    st = parse_state("s", json.dumps({"pid": "12", "start_time": "x", "platforms": {"a": "connected", "b": {}},
                                      "gateway_state": 3}).encode())
    assert st.ok and st.pid == 12 and st.start_time is None and st.gateway_state is None
    assert [(p.name, p.state) for p in st.platforms] == [("b", "unknown")]
    assert parse_state("s", b'{"pid": true, "platforms": []}').pid is None


def test_pid_file_json_or_bare_int() -> None:
    rec = parse_pid("p", json.dumps({"pid": 77, "kind": "hermes-gateway", "argv": ["a"], "start_time": 5}).encode())
    assert (rec.pid, rec.start_time, rec.argv, rec.kind) == (77, 5, ("a",), "hermes-gateway")
    assert parse_pid("p", b"4321\n").pid == 4321
    assert parse_pid("p", b"-3").pid is None
    assert parse_pid("p", b"abc").read.status == "garbage"


def test_read_state_from_disk(tmp_path: Path) -> None:
    assert statefile.read_state(tmp_path).read.status == "missing"
    (tmp_path / "gateway_state.json").mkdir()
    assert statefile.read_state(tmp_path).read.status == "unreadable"
