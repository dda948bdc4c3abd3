"""One timestamp parser for Hermes' files (state platforms' updated_at and the heartbeat): naive is UTC."""

from __future__ import annotations

from hermes_watchdog.observe import heartbeat
from hermes_watchdog.timefmt import iso, parse_iso


def test_naive_stamps_are_utc_like_zoned_ones() -> None:
    assert parse_iso("2026-11-24T19:29:33") == parse_iso("2026-11-24T19:29:33Z") == \
        parse_iso("2026-11-24T19:29:33+00:00") == 1795548573.0
    assert parse_iso("2026-11-24T20:29:33+01:00") == 1795548573.0


def test_anything_else_is_none() -> None:
    for bad in (None, "", "yesterday", 12, "2026-13-01T00:00:00"):
        assert parse_iso(bad) is None, bad


def test_round_trip_with_what_the_watchdog_writes() -> None:
    assert parse_iso(iso(1795548573.0)) == 1795548573.0


def test_state_file_and_heartbeat_agree_on_a_naive_stamp() -> None:
    beat = heartbeat.parse("hb", b'{"pid": 5, "updated_at": "2026-11-24T19:29:33"}')
    assert beat is not None and beat.updated_at == parse_iso("2026-11-24T19:29:33Z")


def test_edges_of_the_calendar_never_raise() -> None:
    # An offset pushes these past year 1 or year 9999 in UTC, outside what datetime holds: still the right epoch.
    assert parse_iso("0001-01-01T00:00:00+23:59") == -62135596800.0 - (23 * 3600 + 59 * 60)
    assert parse_iso("9999-12-31T23:59:59-23:59") == 253402300799.0 + 23 * 3600 + 59 * 60
    assert parse_iso("0001-01-01T00:00:00") == -62135596800.0 and parse_iso("9999-12-31T23:59:59") == 253402300799.0
