"""The systemd --user fixture's cgroups (tests/usermode.py), on folders standing in for a cgroupfs: it
removes only what it made, by recorded paths, and a read-only cgroupfs is a skip with its reason. The real
manager runs in tests/test_real_systemd.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.usermode import Hierarchy, Made, Unavailable, prepare_cgroups, systemd_hierarchies

MOUNTS = """tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/systemd cgroup ro,nosuid,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""
UID = 4242


def test_only_the_systemd_hierarchies_with_their_read_only_flag() -> None:
    assert systemd_hierarchies(MOUNTS) == [Hierarchy(Path("/sys/fs/cgroup/systemd"), True),
                                           Hierarchy(Path("/sys/fs/cgroup/unified"), False)]
    assert systemd_hierarchies("garbage\n\n") == []


def test_a_read_only_cgroupfs_is_unavailable_with_the_reason_and_nothing_is_made(tmp_path: Path) -> None:
    made, mounts = Made(), [tmp_path / "unified", tmp_path / "systemd"]
    for m in mounts:
        m.mkdir()
    with pytest.raises(Unavailable, match=r"read-only at .*systemd"):
        prepare_cgroups([Hierarchy(mounts[0], False), Hierarchy(mounts[1], True)], UID, made)
    assert [list(m.iterdir()) for m in mounts] == [[], []] and made.dirs == []


def test_the_end_removes_what_the_fixture_and_its_manager_made_and_nothing_else(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    hosts = [root / "user.slice" / "user-1000.slice" / "session-1.scope", root / "system.slice" / "cron.service"]
    for empty in hosts:  # the host's own empty cgroups
        empty.mkdir(parents=True)
    made = Made()
    uid = os.getuid()  # owners are another test: here only folders
    [group] = prepare_cgroups([Hierarchy(root, False)], uid, made)
    assert group == root / "user.slice" / f"user-{uid}.slice" / f"user@{uid}.service" and group.is_dir()
    # What systemd --user makes below its delegated cgroup once running.
    for sub in ("init.scope", "app.slice/hermes-gateway.service"):
        (group / sub).mkdir(parents=True)
    made.undo()
    assert not (root / "user.slice" / f"user-{uid}.slice").exists()
    assert all(p.is_dir() for p in hosts)  # the old teardown removed every empty cgroup under user.slice


def test_a_delegated_cgroup_found_there_keeps_what_was_in_it(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    group = root / "user.slice" / f"user-{UID}.slice" / f"user@{UID}.service"
    (group / "leftover.scope").mkdir(parents=True)
    made = Made()
    made.mkdir(group)
    made.watch(group)
    (group / "init.scope").mkdir()
    made.undo()
    assert (group / "leftover.scope").is_dir() and not (group / "init.scope").exists()


def test_owners_of_what_existed_are_given_back(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("not root: cannot give a folder to another user")
    root = tmp_path / "cgroup"
    (root / "user.slice").mkdir(parents=True)
    made = Made()
    prepare_cgroups([Hierarchy(root, False)], UID, made)
    assert (root / "user.slice").stat().st_uid == UID
    made.undo()
    assert (root / "user.slice").stat().st_uid == 0 and not (root / "user.slice" / f"user-{UID}.slice").exists()
