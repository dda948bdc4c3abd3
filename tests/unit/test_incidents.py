"""Incident folders: names, collisions in the same second, and pruning to the newest N. Real files in a
temporary folder; no processes."""

from __future__ import annotations

import stat
from pathlib import Path

from hermes_watchdog.record import incidents

T = 1795548573.0  # 2026-11-24T19:29:33Z


def test_folder_name_is_utc_time_signature_and_profile(tmp_path: Path) -> None:
    a = incidents.new_folder(tmp_path, "busy-loop", None, T)
    b = incidents.new_folder(tmp_path, "busy-loop", "coder", T)
    assert a.name == "20261124T192933Z-busy-loop" and b.name == "20261124T192933Z-busy-loop-coder"
    assert stat.S_IMODE(a.stat().st_mode) == 0o700 and a.parent == incidents.incidents_dir(tmp_path)


def test_same_second_same_signature_gets_a_new_folder_never_an_old_one(tmp_path: Path) -> None:
    first = incidents.new_folder(tmp_path, "busy-loop", None, T)
    (first / "incident.json").write_text("{}")
    second = incidents.new_folder(tmp_path, "busy-loop", None, T)
    third = incidents.new_folder(tmp_path, "busy-loop", None, T)
    assert [p.name for p in (first, second, third)] == ["20261124T192933Z-busy-loop", "20261124T192933Z-busy-loop.2",
                                                       "20261124T192933Z-busy-loop.3"]
    assert (first / "incident.json").read_text() == "{}" and not any(second.iterdir())
    # Newest first: the later collisions sort after the first.
    assert incidents.latest(tmp_path, 2) == [third, second]


def test_prune_keeps_the_newest_and_touches_nothing_else(tmp_path: Path) -> None:
    made = [incidents.new_folder(tmp_path, "cpu-pegged", None, T + i * 60) for i in range(5)]
    for folder in made:
        (folder / "report.md").write_text("x")
    stray = incidents.incidents_dir(tmp_path) / "notes.txt"
    stray.write_text("a user's file")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (incidents.incidents_dir(tmp_path) / "zz-link").symlink_to(outside, target_is_directory=True)
    removed = incidents.prune(tmp_path, 2)
    assert sorted(removed) == made[:3]
    assert [p for p in made if p.exists()] == made[3:]
    assert stray.read_text() == "a user's file" and outside.is_dir()  # files and symlinks are not incidents


def test_prune_without_an_incidents_folder_does_nothing(tmp_path: Path) -> None:
    assert incidents.prune(tmp_path, 1) == [] and incidents.latest(tmp_path) == []
