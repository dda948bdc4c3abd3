"""Issue 20, items 3 and 7: names from a user's files are data (no encoding error can end an output), the
stack-file parser stays linear on a crafted file, and JSON for other programs is strict."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from hermes_watchdog.commands import status as status_cmd
from hermes_watchdog.observe import discovery, faulthandler_text
from hermes_watchdog.record import jsonout, metrics, private
from hermes_watchdog.record.exporter import Exporter

ODD_NAMES = ("pl\udcffat", "\ud800lone", "new\nline", "esc\x1b[31m", "ok")


def _reject(constant: str) -> None:
    raise ValueError(f"not strict JSON: {constant}")


def test_odd_names_reach_the_textfile_and_the_scrape_escaped(tmp_path: Path) -> None:
    g = metrics.GatewayMetrics("prof\udcfe", True, 0.5, 0.4, dict.fromkeys(ODD_NAMES, True), "healthy")
    exporter = Exporter(0, "127.0.0.1", tmp_path / "hermes.prom")
    exporter.start()
    try:
        assert exporter.update(metrics.Snapshot((g,), 1000.0, 900.0)) is None
        text = (tmp_path / "hermes.prom").read_text(encoding="utf-8")
        from urllib.request import urlopen

        assert exporter.url is not None
        with urlopen(exporter.url, timeout=10) as resp:
            scraped = resp.read().decode("utf-8")
    finally:
        exporter.stop()
    for out in (text, scraped):
        assert 'profile="prof\\\\udcfe"' in out
        assert 'platform="pl\\\\udcffat"' in out and 'platform="\\\\ud800lone"' in out
        assert 'platform="new\\\\nline"' in out and "\x1b" not in out


def test_state_json_with_odd_names_and_non_finite_numbers_is_strict(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    data = {"gateways": [{"name": "\udcff", "cpu_now": float("nan"), "platforms": {"x\ud800": "connected"},
                          "nested": [float("inf"), (1.5, float("-inf"))]}], "daemon": {"pid": None}}
    private.write_json(tmp_path / "state.json", data)
    written = json.loads((tmp_path / "state.json").read_text(encoding="utf-8"), parse_constant=_reject)
    assert written["gateways"][0]["cpu_now"] is None and written["gateways"][0]["nested"] == [None, [1.5, None]]
    # A crafted state.json (NaN, Infinity) must not reach `status --json` as non-standard JSON.
    (tmp_path / "state.json").write_text('{"version": 1, "gateways": [{"cpu_now": NaN, "rss": Infinity}]}')
    assert status_cmd.main(tmp_path, None, True) == 0
    out = json.loads(capsys.readouterr().out, parse_constant=_reject)
    assert out["gateways"][0] == {"cpu_now": None, "rss": None}
    assert jsonout.dumps({"a": float("nan")}) == '{"a": null}'


def test_the_stack_parser_is_linear_in_distinct_thread_headers() -> None:
    """1 MiB of distinct thread headers (a file the user controls) took 8.7 s when each header was compared
    with every earlier one. Compared by CPU time of 1/4 and the whole, so a loaded machine does not matter:
    linear work grows about 4x, quadratic 16x."""

    def headers(size: int) -> str:
        out, n, total = [], 0, 0
        while total < size:
            line = f'Thread 0x{n:016x} (most recent call first):\n  File "/a.py", line 1 in f\n'
            out.append(line)
            total, n = total + len(line), n + 1
        return "\n".join(out)

    def cpu(text: str) -> float:
        best = float("inf")
        for _ in range(3):  # the best of three: a preemption only ever adds time
            start = time.process_time()
            dumps = faulthandler_text.parse(text)
            best = min(best, time.process_time() - start)
        assert len(dumps) == 1 and len(dumps[0].threads) > 1000
        return best

    small, big = headers(256 * 1024), headers(1024 * 1024)
    ratio = cpu(big) / max(cpu(small), 1e-4)
    assert ratio < 8, f"4x the input took {ratio:.1f}x the CPU: not linear"


def test_active_profile_is_never_waited_on_nor_read_unbounded(tmp_path: Path) -> None:
    root = tmp_path / ".hermes"
    root.mkdir()
    env = {"HOME": str(tmp_path)}
    os.mkfifo(root / "active_profile")  # a FIFO with no writer: a blocking open would hang for good
    assert discovery.home_claimed(env, ("hermes", "gateway", "run"), None) == root
    (root / "active_profile").unlink()
    (root / "active_profile").symlink_to("/dev/zero")  # a link: not followed, never read to the end
    assert discovery.home_claimed(env, ("hermes", "gateway", "run"), None) == root
    (root / "active_profile").unlink()
    (root / "active_profile").write_text("coder\n")
    assert discovery.home_claimed(env, ("hermes", "gateway", "run"), None) == root / "profiles" / "coder"
